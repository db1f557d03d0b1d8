from django.conf import settings
from django.db import models

from core.models import Manifest, Project


class LivePackages(models.Manager):
    """Packages that exist, without the tombstones of deleted ones."""

    def get_queryset(self):
        return super().get_queryset().filter(deleted_at=None)


class Package(models.Model):
    """An ML package of a project. Deleting one that finished runs used keeps its row as a
    tombstone (`deleted_at`; its versions tombstones too, their files gone), so those runs
    still name it; its name is free again. `Package.objects` and `project.packages` leave
    tombstones out; `Package.with_deleted` has them."""

    INPUT_TYPES = [("json", "JSON"), ("file", "File"), ("files", "Files")]

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="packages")
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    input_type = models.CharField(max_length=10, choices=INPUT_TYPES, default="json")
    input_description = models.TextField(blank=True)
    output_description = models.TextField(blank=True)
    language = models.CharField(max_length=20, help_text="Python version, e.g. 3.11")
    gpu_required = models.BooleanField(default=False)
    training_enabled = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )
    created_at = models.DateTimeField(auto_now_add=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    objects = LivePackages()
    with_deleted = models.Manager()  # noqa: DJ012 - a manager, which ruff takes for a field

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "name"],
                condition=models.Q(deleted_at=None),
                name="package_name_per_project",
            )
        ]
        ordering = ["name"]

    def __str__(self):
        return self.name


class LiveVersions(models.Manager):
    """Versions that exist, without the tombstones of deleted ones."""

    def get_queryset(self):
        return super().get_queryset().filter(deleted_at=None)


class PackageVersion(models.Model):
    """An immutable version N.m: its files are a manifest; it says where it came from.

    Deleting a version keeps its row as a tombstone (`deleted_at`, no files), so its number is
    never given again (the unique constraint below sees it) and runs that made it still name
    it. `PackageVersion.objects` and `package.versions` leave tombstones out;
    `PackageVersion.with_deleted` has them."""

    UPLOADED, TRAINED = "uploaded", "trained"

    package = models.ForeignKey(Package, on_delete=models.CASCADE, related_name="versions")
    major = models.PositiveIntegerField()
    minor = models.PositiveIntegerField()
    # None once deleted: the files go, the number stays
    manifest = models.OneToOneField(
        Manifest, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    source = models.CharField(
        max_length=10, choices=[(UPLOADED, "Uploaded"), (TRAINED, "Trained")], default=UPLOADED
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )
    parent = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="children"
    )
    # Lineage of a trained version, stored here only (a run finds its version through
    # `trained_version`). No database constraint and nothing done on delete: when the run is
    # deleted the version keeps its number, so its lineage still says "pipeline 12 (deleted)".
    pipeline_run = models.OneToOneField(
        "pipelines.PipelineRun",
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        blank=True,
        related_name="trained_version",
    )
    trained_on = models.CharField(max_length=1200, blank=True)
    file_count = models.PositiveIntegerField(default=0)
    size = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    # Tombstones are left out by default (`objects`, `package.versions`); a run's trained_version
    # and a version's parent still find theirs (Django follows those with a plain manager).
    objects = LiveVersions()
    with_deleted = models.Manager()  # noqa: DJ012 - a manager, which ruff takes for a field

    class Meta:
        constraints = [
            # Two runs finishing at once can never both get N.k, and a deleted N.k (a tombstone)
            # is never given again: the database refuses them.
            models.UniqueConstraint(fields=["package", "major", "minor"], name="version_once")
        ]
        ordering = ["-major", "-minor"]

    def __str__(self):
        return f"{self.package.name} {self.number}"

    @property
    def number(self):
        return f"{self.major}.{self.minor}"


class PackageAlias(models.Model):
    """A name such as `champion` or `staging` pointing at one version of a package, moved by
    people (packages/aliases.py). Wherever a version is chosen the name may stand for it, and
    a skill may follow it: it updates when the alias moves."""

    package = models.ForeignKey(Package, on_delete=models.CASCADE, related_name="aliases")
    name = models.CharField(max_length=40)
    version = models.ForeignKey(PackageVersion, on_delete=models.CASCADE, related_name="aliases")
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["package", "name"], name="alias_name_per_package")
        ]
        ordering = ["name"]

    def __str__(self):
        return f"{self.package.name}@{self.name}"

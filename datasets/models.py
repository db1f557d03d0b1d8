from django.conf import settings
from django.db import models

from core.models import Manifest, Project


class LiveDatasets(models.Manager):
    """Datasets that exist, without the tombstones of deleted ones."""

    def get_queryset(self):
        return super().get_queryset().filter(deleted_at=None)


class Dataset(models.Model):
    """A named folder tree of files inside a project; its files are a manifest. Deleting one
    that finished runs used keeps its row as a tombstone (`deleted_at`, no files), so those
    runs still name it (their snapshots keep what they read); its name is free again."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="datasets")
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    # None once deleted: the files go, the name stays with the runs that read it
    manifest = models.OneToOneField(
        Manifest, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )
    created_at = models.DateTimeField(auto_now_add=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    objects = LiveDatasets()
    with_deleted = models.Manager()  # noqa: DJ012 - a manager, which ruff takes for a field

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "name"],
                condition=models.Q(deleted_at=None),
                name="dataset_name_per_project",
            )
        ]
        ordering = ["name"]

    def __str__(self):
        return self.name

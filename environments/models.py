from django.db import models


class EnvironmentBuild(models.Model):
    """A package environment (a Python version and normalised requirements) as the workers last
    built it: status, the installer's reason when it failed, its live output while it builds.
    Shared by every version with the same requirements (environments/environments.py)."""

    PENDING, BUILDING, READY, FAILED = "pending", "building", "ready", "failed"
    STATUSES = [(PENDING, "Pending"), (BUILDING, "Building"), (READY, "Ready"), (FAILED, "Failed")]

    key = models.CharField(max_length=64, unique=True)
    python_version = models.CharField(max_length=20)
    status = models.CharField(max_length=10, choices=STATUSES, default=PENDING)
    detail = models.TextField(blank=True)
    output = models.TextField(blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    versions = models.ManyToManyField(
        "packages.PackageVersion", related_name="environment_builds", blank=True
    )

    class Meta:
        # Born in the pipelines app; its tables keep that name.
        db_table = "pipelines_environmentbuild"

    def __str__(self):
        return f"environment {self.key[:12]} ({self.status})"

from django.conf import settings
from django.db import models

from core.models import Manifest, Project


class Dataset(models.Model):
    """A named folder tree of files inside a project; its files are a manifest."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="datasets")
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    manifest = models.OneToOneField(Manifest, on_delete=models.PROTECT, related_name="+")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="dataset_name_per_project")
        ]
        ordering = ["name"]

    def __str__(self):
        return self.name

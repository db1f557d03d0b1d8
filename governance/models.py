from django.conf import settings
from django.db import models
from django.utils import timezone

from core.models import Project


class Event(models.Model):
    """One line of a project's ML Logs: who did what, when, to which object. Append-only:
    events are created (governance.events.record) and, past the retention, deleted by the
    sweeper; never changed."""

    SYSTEM = "system"  # the actor of what nobody did by hand (workers, schedules, the sweeper)

    time = models.DateTimeField(default=timezone.now)
    # None for events that belong to no project (a user's API tokens).
    project = models.ForeignKey(  # indexed by the indexes below, which all begin with it
        Project,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="events",
        db_index=False,
    )
    category = models.CharField(max_length=20)  # package, dataset, pipeline, schedule, skill, …
    action = models.CharField(max_length=30)  # uploaded, validated, refused, started, …
    # The user who did it (a page, or an API call with their token); None for "system". The
    # name stays when the user is deleted.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    actor_name = models.CharField(max_length=150, default=SYSTEM)
    # What it was done to: its kind ("pipeline", "version", …), its key within the project
    # (a pk or a name) and how people call it ("Pipeline 42", "my-package 1.2").
    object_type = models.CharField(max_length=20)
    object_key = models.CharField(max_length=200, blank=True)
    object_name = models.CharField(max_length=300, blank=True)
    # The object's page when the event was written; shown as a link while the object exists.
    url = models.CharField(max_length=500, blank=True)
    message = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-id"]
        # Newest first (keyset on id) within a project, and by each filter of the ML Logs page.
        indexes = [
            models.Index(fields=["project", "-id"], name="event_project_newest"),
            models.Index(fields=["project", "category", "-id"], name="event_category_newest"),
            models.Index(fields=["project", "actor_name", "-id"], name="event_actor_newest"),
            models.Index(
                fields=["project", "object_type", "object_key", "-id"], name="event_object_newest"
            ),
            # a key alone ("invoices": the package, the dataset, …), and the time range's
            # bounds (governance.selectors._time_ids)
            models.Index(fields=["project", "object_key", "-id"], name="event_key_newest"),
            models.Index(fields=["project", "time"], name="event_project_time"),
            models.Index(fields=["time"], name="event_time"),
        ]

    def __str__(self):
        return f"{self.time:%Y-%m-%d %H:%M:%S} {self.actor_name} {self.category} {self.action}"

    def save(self, *args, **kwargs):
        if self.pk is not None and not self._state.adding:
            raise ValueError("ML Logs are append-only: an event is never changed.")
        super().save(*args, **kwargs)

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from core.models import Project

# The events a webhook can subscribe to (dispatch.EVENT_NAMES maps ML Logs events to them).
EVENTS = [
    ("pipeline.started", "A pipeline run started"),
    ("pipeline.finished", "A pipeline run finished (any end)"),
    ("pipeline.failed", "A pipeline run failed"),
    ("pipeline.killed", "A pipeline run was killed"),
    ("version.created", "A package version was uploaded or trained"),
    ("skill.updated", "An ML Skill moved to another version"),
    ("skill.failed", "An ML Skill failed"),
    ("dataset.changed", "Files were uploaded to or deleted from a dataset"),
]
PING = "ping"  # "Send a test event": not subscribable, always sent


class Webhook(models.Model):
    """A URL of a project that hears of the events it subscribed to, signed with its secret."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="webhooks")
    url = models.CharField(max_length=2000)
    events = models.JSONField(default=list)
    # Kept as given: the worker signs each delivery with it. Shown once, when it is chosen.
    secret = models.CharField(max_length=200)
    active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        # dispatch.event_recorded asks for a project's active webhooks after every event.
        indexes = [models.Index(fields=["project", "active"], name="webhook_project_active")]

    def __str__(self):
        return self.url


class Delivery(models.Model):
    """One event for one webhook: attempted until the receiver answers 2xx, retried with
    exponential backoff for a day (webhooks.delivery)."""

    PENDING, SUCCEEDED, FAILED = "pending", "succeeded", "failed"
    STATUSES = [(PENDING, "Pending"), (SUCCEEDED, "Succeeded"), (FAILED, "Failed")]

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    # The ML Logs event it tells of (None for a test event). Not a foreign key: the sweeper
    # deletes events past their retention, deliveries stay with their webhook.
    event_id = models.BigIntegerField(null=True, blank=True)
    # X-AICenter-Delivery: the same on every attempt, so a receiver can drop repeats.
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    event = models.CharField(max_length=40)
    status = models.CharField(max_length=10, choices=STATUSES, default=PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    # The JSON body, made at the first attempt and sent as is on every retry (signed anew, with
    # the attempt's timestamp).
    body = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["webhook", "-id"], name="delivery_webhook_newest"),
            # the sweeper's look for pending deliveries Redis lost, every few seconds: only
            # the pending ones, however many were delivered
            models.Index(
                fields=["next_attempt_at", "created_at"],
                condition=models.Q(status="pending"),
                name="delivery_pending",
            ),
        ]
        verbose_name_plural = "deliveries"

    def __str__(self):
        return f"{self.event} → {self.webhook_id} ({self.status})"


class DeliveryAttempt(models.Model):
    """One POST of a delivery: what the receiver answered, or why it could not be reached."""

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempt_rows")
    time = models.DateTimeField(default=timezone.now)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    # The beginning of the receiver's answer, for telling why it refused; no more is kept.
    response_snippet = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self):
        return f"{self.delivery_id} at {self.time:%H:%M:%S}: {self.status_code or self.error}"


class RunMailPreference(models.Model):
    """When a user is e-mailed about the pipeline runs they started."""

    NEVER, FAILED, FINISHED = "never", "failed", "finished"
    CHOICES = [
        (NEVER, "Never"),
        (FAILED, "When a run of mine fails"),
        (FINISHED, "When a run of mine finishes (successful, failed or killed)"),
    ]

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="run_mail_preference"
    )
    runs = models.CharField(max_length=10, choices=CHOICES, default=NEVER)

    def __str__(self):
        return f"{self.user}: {self.runs}"

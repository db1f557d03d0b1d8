"""ML Logs retention: events older than AICENTER_LOG_RETENTION_DAYS are deleted by the workers'
sweep (pipelines/sweeper.py), a batch at a time, so that no sweep holds the database long."""

import time
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from core.models import Event

BATCH = 5000
# Per sweep: the sweep's Redis lock lasts seconds. A backlog (the setting just lowered) is
# worked off over the next sweeps, a few seconds apart.
MOST_BATCHES = 20
EVERY_SECONDS = 3600  # once nothing is left, look again an hour later (per process)
_next_at = 0.0


def events_expire(*, now=None) -> tuple[int, bool]:
    """Delete the events older than the retention, oldest first, up to MOST_BATCHES batches:
    (how many were deleted, whether none older is left)."""
    if settings.LOG_RETENTION_DAYS <= 0:
        return 0, True
    cutoff = (now or timezone.now()) - timedelta(days=settings.LOG_RETENTION_DAYS)
    expired = Event.objects.filter(time__lt=cutoff).order_by("time")  # the (time) index
    deleted = 0
    for _ in range(MOST_BATCHES):
        ids = list(expired.values_list("id", flat=True)[:BATCH])
        if ids:
            _, per_model = Event.objects.filter(id__in=ids).delete()
            deleted += per_model.get(Event._meta.label, 0)
        if len(ids) < BATCH:
            return deleted, True
    return deleted, False


def events_expire_hourly() -> int:
    """events_expire() at most once an hour in this process, or at the next sweep while a
    backlog is left: what the sweep calls."""
    global _next_at
    if time.monotonic() < _next_at:
        return 0
    deleted, caught_up = events_expire()
    _next_at = time.monotonic() + EVERY_SECONDS if caught_up else 0.0
    return deleted

"""Deliveries on the workers: sign, POST, record the attempt, retry with exponential backoff.

Jobs go to the `pipelines` queue, which every worker already serves (`manage.py start`, the
README's `rqworker pipelines`): no process to add. The price: a delivery waits while every
worker is busy with a run. Retries are RQ scheduled jobs (every worker runs RQ's scheduler).
The Delivery row is the truth; a job only carries its id."""

import hashlib
import hmac
import logging
import time
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

from core.models import Event
from core.queue import enqueue, jobs_alive
from webhooks.models import Delivery, DeliveryAttempt
from webhooks.outbound import post
from webhooks.payloads import delivery_body

logger = logging.getLogger(__name__)
QUEUE = "pipelines"
JOB_TIMEOUT_SECONDS = 60  # one attempt: a 5 s timeout per connect and read, and the bookkeeping
# Past the first retries the waits stop doubling, so a receiver down for most of the day is
# still tried every few hours until the day is over.
LONGEST_WAIT_SECONDS = 4 * 3600


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """X-AICenter-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>" with the webhook's
    secret>. The time is signed with the body: a receiver that refuses old timestamps (the
    README's recipe: older than 5 minutes) can't be fed a recorded delivery again."""
    signed = str(timestamp).encode() + b"." + body
    return "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def _job_id(delivery) -> str:
    """One job id per attempt, so deliveries_requeue_lost can ask Redis whether it is there."""
    return f"webhook-delivery-{delivery.uuid}-{delivery.attempts}"


def delivery_enqueue(delivery, at=None) -> None:
    """A job for the delivery's next attempt, now or `at`. Redis unreachable: the delivery
    stays pending (and says so) instead of failing its caller; deliveries_requeue_lost queues
    it again later."""
    try:
        enqueue(
            QUEUE,
            "webhooks.tasks.deliver",
            delivery.pk,
            at=at,
            job_id=_job_id(delivery),
            job_timeout=JOB_TIMEOUT_SECONDS,
            description=f"webhook delivery {delivery.uuid} ({delivery.event})",
        )
    except Exception as error:  # noqa: BLE001 - Redis away: the row keeps the delivery
        logger.warning("webhook delivery %s not queued: %s", delivery.pk, error)
        Delivery.objects.filter(pk=delivery.pk).update(
            last_error=f"Not queued (Redis unreachable: {error})"[:500]
        )


def retry_wait(attempts: int) -> float:
    """Seconds before the next attempt after `attempts` failed ones: the first wait, doubled
    after each failure, at most LONGEST_WAIT_SECONDS."""
    first = settings.WEBHOOKS_RETRY_FIRST_SECONDS
    return min(first * 2 ** (attempts - 1), max(first, LONGEST_WAIT_SECONDS))


def delivery_attempt(delivery_id: int) -> None:
    """Attempt a pending delivery once; on failure, schedule the next attempt or, past
    WEBHOOKS_RETRY_FOR_SECONDS since the delivery was made, give up (status failed)."""
    delivery = (
        Delivery.objects.select_related("webhook__project")
        .filter(pk=delivery_id, status=Delivery.PENDING)
        .first()
    )
    if delivery is None:  # done already, or its webhook deleted
        return
    webhook = delivery.webhook
    if not webhook.active and delivery.event != "ping":
        _give_up(delivery, "The webhook was turned off.")
        return
    if not delivery.body:
        event = Event.objects.filter(pk=delivery.event_id).first() if delivery.event_id else None
        delivery.body = delivery_body(delivery, event)
        Delivery.objects.filter(pk=delivery.pk).update(body=delivery.body)
    body = delivery.body.encode()
    timestamp = int(time.time())  # each attempt's own: a retry hours later is still fresh
    answer = post(
        webhook.url,
        body,
        {
            "Content-Type": "application/json",
            "X-AICenter-Event": delivery.event,
            "X-AICenter-Delivery": str(delivery.uuid),
            "X-AICenter-Timestamp": str(timestamp),
            "X-AICenter-Signature": signature(webhook.secret, timestamp, body),
        },
    )
    now = timezone.now()
    DeliveryAttempt.objects.create(
        delivery=delivery,
        time=now,
        status_code=answer.status_code,
        error=answer.error,
        duration_ms=answer.duration_ms,
        response_snippet=answer.snippet,
    )
    attempts = delivery.attempts + 1
    succeeded = answer.status_code is not None and 200 <= answer.status_code < 300
    error = answer.error or ("" if succeeded else f"The receiver answered {answer.status_code}.")
    fields = {"attempts": attempts, "last_status_code": answer.status_code, "last_error": error}
    if succeeded:
        Delivery.objects.filter(pk=delivery.pk).update(
            status=Delivery.SUCCEEDED, next_attempt_at=None, **fields
        )
        return
    # Counted from when the last attempt was due, not from now: the schedule of attempts is
    # the same however late workers take them up.
    due = delivery.next_attempt_at or delivery.created_at
    next_at = max(due, delivery.created_at) + timedelta(seconds=retry_wait(attempts))
    if next_at - delivery.created_at > timedelta(seconds=settings.WEBHOOKS_RETRY_FOR_SECONDS):
        Delivery.objects.filter(pk=delivery.pk).update(
            status=Delivery.FAILED, next_attempt_at=None, **fields
        )
        return
    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=next_at, **fields)
    delivery.attempts = attempts
    delivery_enqueue(delivery, at=max(next_at, now))


def _give_up(delivery, reason: str) -> None:
    Delivery.objects.filter(pk=delivery.pk).update(
        status=Delivery.FAILED, next_attempt_at=None, last_error=reason
    )


def deliveries_requeue_lost(*, older_than_seconds: float = 60) -> int:
    """Queue again the pending deliveries whose job is not in Redis (Redis was unreachable
    when they were made, or restarted empty), due for more than `older_than_seconds`; how
    many. For the sweeper: one query, and one Redis round trip."""
    due_before = timezone.now() - timedelta(seconds=older_than_seconds)
    pending = list(
        Delivery.objects.filter(status=Delivery.PENDING)
        .filter(
            models.Q(next_attempt_at__lt=due_before)
            | models.Q(next_attempt_at=None, created_at__lt=due_before)
        )
        .only("pk", "uuid", "attempts")[:1000]
    )
    alive = jobs_alive([(QUEUE, _job_id(d)) for d in pending])
    lost = [d for d in pending if _job_id(d) not in alive]
    for delivery in lost:
        delivery_enqueue(delivery)
    return len(lost)

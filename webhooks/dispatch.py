"""Webhooks and e-mail hear of every committed ML Logs event here (core.events.record).
It runs in the request or the worker that recorded the event: it must be quick and never
raise, and it only enqueues deliveries; sending happens on the workers.

The cost on the hot path (every run transition, every upload): no query at all for an event
no webhook can subscribe to, nor for a project without an active webhook, nor for a run's end
when nobody wants e-mail about runs. Who listens at all is known in each process (_listening)
and asked again only when a webhook or an e-mail preference changed somewhere: their services
call listeners_changed(), which bumps a number in Redis. Otherwise one indexed query (the
project's active webhooks), and one more for a run's end (does its creator want an e-mail?).
Rows and jobs only when someone listens."""

import logging

import redis
from django.db import connection as db_connection
from django.db import transaction

from core import queue
from pipelines.models import PipelineRun
from webhooks.models import Delivery, RunMailPreference, Webhook

logger = logging.getLogger(__name__)
# Bumped (after the commit) by every change of a webhook or an e-mail preference.
LISTENERS_GENERATION_KEY = "aicenter:webhooks:listeners"

# (category, action) → the webhook events it is; pipeline.failed is added by the run's status.
# Every end of a run is a pipeline.finished: a kill too (the ML Logs record it as "killed"
# only, by the person who killed it).
EVENT_NAMES = {
    ("pipeline", "started"): ["pipeline.started"],
    ("pipeline", "finished"): ["pipeline.finished"],
    ("pipeline", "killed"): ["pipeline.finished", "pipeline.killed"],
    ("package", "uploaded"): ["version.created"],
    ("package", "validated"): ["version.created"],
    ("package", "trained"): ["version.created"],
    ("skill", "updated"): ["skill.updated"],
    ("skill", "failed"): ["skill.failed"],
    ("skill", "update_failed"): ["skill.update_failed"],
    ("dataset", "files_uploaded"): ["dataset.changed"],
    ("dataset", "files_deleted"): ["dataset.changed"],
}


def webhook_events(event) -> list[str]:
    """The webhook event names an ML Logs event is."""
    names = list(EVENT_NAMES.get((event.category, event.action), []))
    if names == ["pipeline.finished"] and (event.data or {}).get("status") == "failed":
        names.append("pipeline.failed")
    return names


def on_event_recorded(sender, event, **kwargs) -> None:
    event_recorded(event)


def event_recorded(event) -> None:
    try:
        _deliveries_enqueue(event)
    except Exception:  # the change it tells of is committed already: it must not fail now
        logger.exception("webhooks: event %s not dispatched", event.pk)
    try:
        _run_mail_enqueue(event)
    except Exception:
        logger.exception("e-mail: event %s not dispatched", event.pk)


# This process's answer to "who listens?": {"generation": the number in Redis when asked,
# "projects": ids of the projects with an active webhook, "mail": does anyone want run e-mail}.
_listening = {}


def listeners_changed() -> None:
    """A webhook or an e-mail preference changed: this process asks again at once (it sees
    its own transaction), the others once it commits."""
    _listening.clear()

    def bump():
        try:
            queue.connection("pipelines").incr(LISTENERS_GENERATION_KEY)
        except redis.RedisError:  # Redis away: its number is gone too when it comes back empty
            logger.warning("webhooks: Redis unreachable; other processes ask again later")

    transaction.on_commit(bump)


def _listeners() -> dict:
    if db_connection.in_atomic_block:  # it may see a change not committed yet, or never to be
        return _listeners_now()
    try:
        generation = queue.connection("pipelines").get(LISTENERS_GENERATION_KEY)
    except redis.RedisError:  # nothing to tell a change by: asked, not kept
        return _listeners_now()
    if not _listening or _listening["generation"] != generation:
        # the number first, then the rows: a change committed meanwhile bumps it again
        _listening.update(generation=generation, **_listeners_now())
    return _listening


def _listeners_now() -> dict:
    return {
        "projects": set(
            Webhook.objects.filter(active=True)
            .order_by()
            .values_list("project_id", flat=True)
            .distinct()
        ),
        "mail": RunMailPreference.objects.exclude(runs=RunMailPreference.NEVER).exists(),
    }


def _deliveries_enqueue(event) -> None:
    # imported once someone listens, not as every process starts: deliveries build their
    # payloads from every app's API
    from webhooks.delivery import delivery_enqueue

    names = webhook_events(event)
    if not names or event.project_id is None:
        return
    if event.project_id not in _listeners()["projects"]:
        return
    webhooks = Webhook.objects.filter(project_id=event.project_id, active=True).only("events")
    deliveries = [
        Delivery(webhook=webhook, event_id=event.pk, event=name)
        for webhook in webhooks
        for name in names
        if name in webhook.events
    ]
    if not deliveries:
        return
    for delivery in Delivery.objects.bulk_create(deliveries):
        delivery_enqueue(delivery)


def _run_mail_enqueue(event) -> None:
    """A run that ended (finished, or killed) whose creator asked for e-mail (for every end,
    or for failures when it failed): the worker sends it (webhooks.mail)."""
    if event.category != "pipeline" or event.action not in ("finished", "killed"):
        return
    if not _listeners()["mail"]:
        return
    wanted = [RunMailPreference.FINISHED]
    if (event.data or {}).get("status") == PipelineRun.FAILED:
        wanted.append(RunMailPreference.FAILED)
    run = PipelineRun.objects.filter(
        pk=event.object_key, created_by__run_mail_preference__runs__in=wanted
    ).values_list("pk", flat=True)
    for run_id in run:
        queue.enqueue("pipelines", "webhooks.tasks.mail_run_end", run_id, job_timeout=120)

"""Webhooks and e-mail hear of every committed ML Logs event here (governance.events.record).
It runs in the request or the worker that recorded the event: it must be quick and never
raise, and it only enqueues deliveries; sending happens on the workers.

The cost on the hot path (every run transition, every upload): no query at all for an event
no webhook can subscribe to; one indexed query (the project's active webhooks) for the others;
one more for a run's end (does its creator want an e-mail?). Rows and jobs only when
someone listens."""

import logging

from webhooks.models import Delivery, RunMailPreference, Webhook

logger = logging.getLogger(__name__)

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
    ("dataset", "files_uploaded"): ["dataset.changed"],
    ("dataset", "files_deleted"): ["dataset.changed"],
}


def webhook_events(event) -> list[str]:
    """The webhook event names an ML Logs event is."""
    names = list(EVENT_NAMES.get((event.category, event.action), []))
    if names == ["pipeline.finished"] and (event.data or {}).get("status") == "failed":
        names.append("pipeline.failed")
    return names


def event_recorded(event) -> None:
    try:
        _deliveries_enqueue(event)
    except Exception:  # the change it tells of is committed already: it must not fail now
        logger.exception("webhooks: event %s not dispatched", event.pk)
    try:
        _run_mail_enqueue(event)
    except Exception:
        logger.exception("e-mail: event %s not dispatched", event.pk)


def _deliveries_enqueue(event) -> None:
    from webhooks.delivery import delivery_enqueue  # the worker's side, with its imports

    names = webhook_events(event)
    if not names or event.project_id is None:
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
    from pipelines.models import PipelineRun
    from pipelines.queue import enqueue

    wanted = [RunMailPreference.FINISHED]
    if (event.data or {}).get("status") == PipelineRun.FAILED:
        wanted.append(RunMailPreference.FAILED)
    run = PipelineRun.objects.filter(
        pk=event.object_key, created_by__run_mail_preference__runs__in=wanted
    ).values_list("pk", flat=True)
    for run_id in run:
        enqueue("pipelines", "webhooks.tasks.mail_run_end", run_id, job_timeout=120)

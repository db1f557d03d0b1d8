"""ML Logs are written here, and only here: every service that changes something calls record().

    record(project=run.project, category="pipeline", action="finished", actor=None,
           object_type="pipeline", object_key=run.pk, object_name=f"Pipeline {run.pk}",
           url=reverse("pipeline-detail", args=[run.project.slug, run.pk]),
           message="Successful in 12 s", data={"status": "successful"})

`actor` is the user who did it (a page, or an API call with their token), or None for
"system". The event is part of the caller's transaction when there is one: a change that is
rolled back leaves no event. Once it is committed, the signal event_recorded tells whoever
listens (webhooks and e-mail connect to it as their app starts): the ground floor writes, the
floors above hear, and nothing here knows who they are."""

from django.db import transaction
from django.dispatch import Signal

from core.models import Event

# Sent once each event's transaction commits, with event=the Event; listeners must be quick
# and never raise (they run in the request or worker that wrote it).
event_recorded = Signal()

CATEGORIES = (
    "package",
    "dataset",
    "pipeline",
    "schedule",
    "skill",
    "member",
    "token",
    "storage",
)


def record(
    *,
    project,
    category: str,
    action: str,
    actor=None,
    object_type: str = "",
    object_key="",
    object_name: str = "",
    url: str = "",
    message: str = "",
    data: dict | None = None,
) -> Event:
    if category not in CATEGORIES:
        raise ValueError(f"'{category}' is not an ML Logs category: one of {CATEGORIES}")
    actor = actor if actor is not None and actor.is_authenticated else None
    event = Event.objects.create(
        project=project,
        category=category,
        action=action,
        actor=actor,
        actor_name=actor.get_username() if actor else Event.SYSTEM,
        object_type=object_type or category,
        object_key=str(object_key),
        object_name=object_name[:300],
        url=url,
        message=message,
        data=data or {},
    )
    transaction.on_commit(lambda: event_recorded.send(sender=Event, event=event))
    return event

"""ML Logs are written here, and only here: every service that changes something calls record().

    record(project=run.project, category="pipeline", action="finished", actor=None,
           object_type="pipeline", object_key=run.pk, object_name=f"Pipeline {run.pk}",
           url=reverse("pipeline-detail", args=[run.project.slug, run.pk]),
           message="Successful in 12 s", data={"status": "successful"})

`actor` is the user who did it (a page, or an API call with their token), or None for
"system". The event is part of the caller's transaction when there is one: a change that is
rolled back leaves no event. Webhooks and e-mail hear of each event once it is committed
(webhooks.dispatch.event_recorded)."""

from django.db import transaction

from governance.models import Event

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
    transaction.on_commit(lambda: _heard(event))
    return event


def _heard(event) -> None:
    from webhooks.dispatch import event_recorded  # webhooks build on events, not the reverse

    event_recorded(event)

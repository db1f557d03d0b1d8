from datetime import datetime

from ninja import Router, Schema

from core.errors import ErrorOut
from core.services import project_get_for_user
from governance.selectors import MOST_EVENTS_PER_PAGE, PAGE_OF_EVENTS, event_links, event_page

router = Router(tags=["ML Logs"])


class EventOut(Schema):
    time: datetime
    category: str
    action: str
    actor: str  # a username, or "system"
    object: str  # how people call it: "Pipeline 42", "invoices 1.2"
    object_type: str
    object_key: str
    message: str
    url: str  # the object's page while it exists, else ""
    data: dict


class EventsOut(Schema):
    items: list[EventOut]
    next: str | None  # the cursor of the older events, None at the end


def event_out(event) -> dict:
    return {
        "time": event.time,
        "category": event.category,
        "action": event.action,
        "actor": event.actor_name,
        "object": event.object_name,
        "object_type": event.object_type,
        "object_key": event.object_key,
        "message": event.message,
        "url": event.link,
        "data": event.data,
    }


@router.get("/{project}/logs", response={200: EventsOut, 400: ErrorOut})
def list_logs(
    request,
    project: str,
    category: str = "",
    actor: str = "",
    object: str = "",
    since: str = "",
    until: str = "",
    q: str = "",
    cursor: str = "",
    limit: int = PAGE_OF_EVENTS,
):
    """The project's ML Logs, newest first, `limit` (1 to 500) at a time; any member may read
    them. Give `next` back as `cursor` for the older ones (null: there are none): as fast deep
    down as at the top, and nothing is skipped or repeated when events arrive meanwhile.

    Filters, all optional: `category` (package, dataset, pipeline, schedule, skill, member, storage,
    token); `actor` (a username, or `system`); `object`, either `type:key` for one object
    (`pipeline:42`, `version:invoices 1.2`, `member:bob`) or a key alone (`42`, `invoices`)
    for every object with that key, whatever its type, and the versions of the package of
    that name; `since` and `until`, a day
    (`2026-11-27`, the whole day, in the server's zone) or an ISO 8601 date and time, both
    ends included; `q`, text found (ignoring case) in the message or the object's name. No
    index serves `q`: each answer searches 100,000 events at most, so it may hold fewer items
    than `limit`, none even, while `next` is not null: follow `next` to search on."""
    project = project_get_for_user(user=request.user, slug=project)
    page = event_page(
        project=project,
        category=category,
        actor=actor,
        object=object,
        since=since,
        until=until,
        text=q,
        cursor=cursor,
        per_page=max(1, min(limit, MOST_EVENTS_PER_PAGE)),
    )
    event_links(project, page.events)
    return {"items": [event_out(event) for event in page], "next": page.next_cursor}

"""Reads of a project's ML Logs: the filtered list, its pages (keyset, newest first on id) and
which of a page's objects still exist (their links).

Every filter and the cursor come in as the text a person or a client gave; what cannot be read
is a ValidationError on that field, saying what is wrong (a 400 page, a 400 in the API)."""

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from django.core.exceptions import ValidationError
from django.db.models import Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from core.events import CATEGORIES
from core.models import Event, Membership
from datasets.models import Dataset
from packages.models import Package, PackageVersion
from pipelines.models import PipelineRun, Schedule
from pipelines.run_pages import RunPage
from skills.models import Skill

PAGE_OF_EVENTS = 50
MOST_EVENTS_PER_PAGE = 500  # the API's `limit`
# An event's time and id are both set as it is inserted, so they grow together but for the
# clocks of different machines (a worker's against the web server's). A time range is found
# among ids bounded by the events a little outside it, so that the newest-first index is read
# from the range on rather than from the top; this is how far apart those clocks may be.
CLOCK_SLACK = timedelta(hours=1)
# No index serves a text search: a page of it reads the events of this many ids at most (so a
# page answers quickly however many events there are), and when it found fewer than a page
# there, its next cursor searches on.
SEARCH_SPAN = 100_000
_OBJECT = re.compile(r"(?P<type>[a-z_]{1,20}):(?P<key>.+)", re.S)


@dataclass(frozen=True)
class EventFilters:
    """The list's filters, read and checked (see event_filters)."""

    category: str = ""
    actor: str = ""
    object_type: str = ""
    object_key: str = ""
    since: datetime | None = None
    until: datetime | None = None  # inclusive
    text: str = ""


def _moment(raw: str, name: str, *, end_of_day: bool) -> datetime | None:
    """'2026-11-27' (the day, in the site's zone: its start, or with `end_of_day` its last
    instant) or an ISO 8601 date and time (without a zone: the site's)."""
    raw = (raw or "").strip()
    if not raw:
        return None
    try:
        if len(raw) == 10:
            day = date.fromisoformat(raw)
            moment = datetime.combine(day, time.min)
            if end_of_day:
                moment = datetime.combine(day, time.max)
            return timezone.make_aware(moment)
        moment = parse_datetime(raw)
    except ValueError:
        moment = None
    if moment is None:
        raise ValidationError(
            {
                name: f"'{raw[:40]}' is not a date (2026-11-27) or a date and time in ISO 8601 "
                "(2026-11-27T14:30:00Z)."
            }
        )
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    try:
        return moment.astimezone(UTC)  # as the database compares it
    except OverflowError:  # 0001-01-01T00:30+01:00 is in year 0 there
        raise ValidationError({name: "This moment is out of the calendar's range."}) from None


def event_filters(
    *, category=None, actor=None, object=None, since=None, until=None, text=None
) -> EventFilters:
    """The filters as given (text; None or "" for none), checked: every problem at once, as a
    ValidationError per field."""
    errors = {}
    given = {"category": category, "actor": actor, "object": object, "q": text}
    given |= {"since": since, "until": until}
    for name, value in given.items():
        if value and "\x00" in value:  # PostgreSQL refuses it even in a lookup
            errors[name] = "This text contains a NUL character."
    if errors:
        raise ValidationError(errors)
    category = (category or "").strip()
    if category and category not in CATEGORIES:
        errors["category"] = f"'{category[:40]}' is not a category: one of {', '.join(CATEGORIES)}."
    object_type, object_key = "", (object or "").strip()
    if found := _OBJECT.fullmatch(object_key):
        object_type, object_key = found["type"], found["key"].strip()
    moments = {}
    for name, raw, end in (("since", since, False), ("until", until, True)):
        try:
            moments[name] = _moment(raw, name, end_of_day=end)
        except ValidationError as error:
            errors.update(error.message_dict)
    if moments.get("since") and moments.get("until") and moments["until"] < moments["since"]:
        errors["until"] = "The end of the time range is before its start."
    if errors:
        raise ValidationError(errors)
    return EventFilters(
        category=category,
        actor=(actor or "").strip(),
        object_type=object_type,
        object_key=object_key,
        since=moments["since"],
        until=moments["until"],
        text=(text or "").strip(),
    )


def _time_ids(project, filters: EventFilters) -> tuple[int | None, int | None]:
    """Ids a little outside the time range (CLOCK_SLACK), each found on the (project, time)
    index in one step: the range's events have ids between them (exclusive; None: no bound)."""
    events = Event.objects.filter(project=project)
    low = high = None
    # (at year 1 or 9999 the slack would leave the calendar: there is nothing beyond, then)
    if filters.since and filters.since.year > 1:
        before = events.filter(time__lt=filters.since - CLOCK_SLACK).order_by("-time", "-id")
        low = before.values_list("id", flat=True).first()
    if filters.until and filters.until.year < 9999:
        after = events.filter(time__gt=filters.until + CLOCK_SLACK).order_by("time", "id")
        high = after.values_list("id", flat=True).first()
    return low, high


def event_list(
    *, project, category=None, actor=None, object=None, since=None, until=None, text=None
):
    """The project's events that pass the filters, newest first; ValidationError per field for
    a filter that cannot be read (see event_filters):

    - category: one of core.events.CATEGORIES;
    - actor: a username, or "system";
    - object: "type:key" ("pipeline:42", "version:invoices 1.2", "member:bob") for one object,
      or a key alone ("42", "invoices", "bob") for every object with that key, whatever its
      type (a package and a dataset of the same name both), and the versions of the package
      of that name, while the package exists;
    - since, until: a day (2026-11-27, in the site's zone, the whole day included) or an ISO
      8601 date and time; both ends included;
    - text: found, ignoring case, in the message or the object's name. No index serves it:
      listed whole (the CSV), a word that few events hold reads every event of the project;
      event_page reads SEARCH_SPAN ids a page at most (see docs/benchmarks.md)."""
    filters = event_filters(
        category=category, actor=actor, object=object, since=since, until=until, text=text
    )
    return _filtered(project, filters, *_time_ids(project, filters))


def _filtered(project, filters: EventFilters, low: int | None, high: int | None):
    events = Event.objects.filter(project=project)
    if low is not None:
        events = events.filter(id__gt=low)
    if high is not None:
        events = events.filter(id__lt=high)
    if filters.since:
        events = events.filter(time__gte=filters.since)
    if filters.until:
        events = events.filter(time__lte=filters.until)
    if filters.category:
        events = events.filter(category=filters.category)
    if filters.actor:
        events = events.filter(actor_name=filters.actor)
    if filters.object_type:
        events = events.filter(object_type=filters.object_type)
    if filters.object_key and filters.object_type:
        events = events.filter(object_key=filters.object_key)
    elif filters.object_key:  # a name alone: a package's versions are its own too
        events = events.filter(object_key__in=_keys_named(project, filters.object_key))
    if filters.text:
        events = events.filter(
            Q(message__icontains=filters.text) | Q(object_name__icontains=filters.text)
        )
    return events.order_by("-id")


def _keys_named(project, name: str) -> list[str]:
    """`name`, and the keys of the versions ("name 1.2") of the project's package `name`, the
    deleted ones too: an equality each on the (project, object_key) index."""
    versions = PackageVersion.with_deleted.filter(package__project=project, package__name=name)
    numbers = versions.order_by("major", "minor").values_list("major", "minor")
    return [name, *(f"{name} {major}.{minor}" for major, minor in numbers)]


# A cursor says where a page starts: after the event with that id (the next, older, page) or
# before it (the previous, newer, one). Opaque to clients, so its form may change.
def event_cursor(*, before: bool, event_id: int) -> str:
    text = f"{'b' if before else 'a'}{event_id}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _cursor_read(cursor: str) -> tuple[bool, int]:
    try:
        text = base64.urlsafe_b64decode(cursor[:40] + "=" * (-len(cursor) % 4)).decode("ascii")
    except (ValueError, binascii.Error):
        text = ""
    direction, number = text[:1], text[1:]
    if len(cursor) > 40 or direction not in ("a", "b") or not number.isdigit() or len(number) > 18:
        raise ValidationError(
            {"cursor": "This cursor is not one the ML Logs gave: start again from the first page."}
        )
    return direction == "b", int(number)


class EventPage(RunPage):
    """One page of events, newest first, with the cursors of the pages after (older) and before
    (newer) it, None at either end: the runs list's keyset page, which partials/pagination.html
    shows, its place uncounted (first=None: "50 events")."""

    @property
    def events(self):
        return self.runs


def event_page(
    *,
    project,
    category=None,
    actor=None,
    object=None,
    since=None,
    until=None,
    text=None,
    cursor: str = "",
    per_page: int = PAGE_OF_EVENTS,
) -> EventPage:
    """`per_page` events of event_list's, from `cursor` (an EventPage's next or previous
    cursor; "" for the newest): one query on an index that ends in id, however deep the page.
    With `text`, a page searches SEARCH_SPAN ids at most, and may show fewer events than
    `per_page` (none, even) with a next cursor that searches on. ValidationError on a filter's
    field or on 'cursor', saying what is wrong."""
    filters = event_filters(
        category=category, actor=actor, object=object, since=since, until=until, text=text
    )
    low, high = _time_ids(project, filters)
    span = _Span(project, low, high) if filters.text else None
    events = _filtered(project, filters, low, high)
    before, start = _cursor_read(cursor) if cursor else (False, None)
    if before:
        page = _newer(events, above=start, per_page=per_page, span=span)
        if page is not None:
            return page
        start = None  # back at the top: the first page, whole
    return _older(events, below=start, per_page=per_page, span=span)


class _Span:
    """The ids a text search may still find events among (those of the time range, if any):
    the first and last, each read once from the (project, id) index."""

    def __init__(self, project, low, high):
        ids = Event.objects.filter(project=project).order_by("id").values_list("id", flat=True)
        first, last = ids.first() or 0, ids.last() or 0
        self.lowest = first if low is None else max(first, low + 1)
        self.highest = last if high is None else min(last, high - 1)


def _older(events, *, below: int | None, per_page: int, span: _Span | None) -> EventPage:
    """The page of the events with ids under `below` (None: from the newest)."""
    window, floor = events, None
    if span is not None:
        top = span.highest + 1 if below is None else below
        floor = top - SEARCH_SPAN
        window = window.filter(id__gte=floor)
    if below is not None:
        window = window.filter(id__lt=below)
    found = list(window[: per_page + 1])
    page = EventPage(found[:per_page], first=None)
    if len(found) > per_page:
        page.next_cursor = event_cursor(before=False, event_id=found[per_page - 1].pk)
    elif floor is not None and floor > span.lowest:  # not searched yet: the next page's
        page.next_cursor = event_cursor(before=False, event_id=floor)
    if below is not None:  # the events from `below` up
        page.previous_cursor = event_cursor(before=True, event_id=below - 1)
    return page


def _newer(events, *, above: int, per_page: int, span: _Span | None) -> EventPage | None:
    """The page of the events with ids over `above`, the nearest ones; None when they are
    fewer than a page and nothing above is left unsearched (the first page is then shown)."""
    window, ceiling = events.filter(id__gt=above), None
    if span is not None:
        ceiling = above + SEARCH_SPAN
        window = window.filter(id__lte=ceiling)
    newer = list(window.order_by("id")[: per_page + 1])
    if len(newer) > per_page:
        newer = newer[:per_page]
        previous = newer[-1].pk
    elif ceiling is not None and ceiling < span.highest:
        previous = ceiling
    else:
        return None
    newer.reverse()
    return EventPage(
        newer,
        first=None,
        next_cursor=event_cursor(before=False, event_id=above + 1),
        previous_cursor=event_cursor(before=True, event_id=previous),
    )


def _version_keys(keys):
    """'invoices 1.2' → ('invoices', 1, 2); keys of another form are left out."""
    for key in keys:
        name, _, number = key.rpartition(" ")
        major, _, minor = number.partition(".")
        if name and major.isdigit() and minor.isdigit() and len(major + minor) < 18:
            yield key, Q(package__name=name, major=int(major), minor=int(minor))


def _numbers(keys):
    return [int(key) for key in keys if key.isascii() and key.isdigit() and len(key) < 18]


def _present(project, object_type: str, keys: set[str]) -> set[str]:
    """Which of `keys` name an object of `object_type` that the project still has: one query."""
    if object_type == "pipeline":
        found = PipelineRun.objects.filter(project=project, pk__in=_numbers(keys))
        return {str(pk) for pk in found.values_list("pk", flat=True)}
    if object_type == "schedule":
        found = Schedule.objects.filter(project=project, pk__in=_numbers(keys))
        return {str(pk) for pk in found.values_list("pk", flat=True)}
    named = {"package": Package, "dataset": Dataset, "skill": Skill}
    if object_type in named:
        found = named[object_type].objects.filter(project=project, name__in=keys)
        return set(found.values_list("name", flat=True))
    if object_type == "member":
        found = Membership.objects.filter(project=project, user__username__in=keys)
        return set(found.values_list("user__username", flat=True))
    if object_type == "version":
        wanted = dict(_version_keys(keys))
        if not wanted:
            return set()
        condition = Q()
        for q in wanted.values():
            condition |= q
        found = PackageVersion.objects.filter(condition, package__project=project)
        return {
            f"{name} {major}.{minor}"
            for name, major, minor in found.values_list("package__name", "major", "minor")
        }
    return set()  # a kind of object without a page here: never a link


def event_links(project, events) -> None:
    """Set `link` on each event: its object's page while the object exists, else "". At most
    one query per kind of object among `events`."""
    wanted: dict[str, set[str]] = {}
    for event in events:
        if event.url:
            wanted.setdefault(event.object_type, set()).add(event.object_key)
    present = {kind: _present(project, kind, keys) for kind, keys in wanted.items()}
    for event in events:
        exists = event.object_key in present.get(event.object_type, ())
        event.link = event.url if event.url and exists else ""

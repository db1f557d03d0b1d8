"""The runs list, a page at a time: filters, orders, cursors and the capped count."""

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from django.core.exceptions import ValidationError
from django.db.models import Exists, F, FilteredRelation, OuterRef, Q, Subquery

from packages.models import Package
from pipelines.models import MetricSeries, PipelineRun, RunTag
from pipelines.run_search import runs_matching

# The list's orders besides the newest first: ?sort=score, -score, metric, -metric (the chosen
# metric's last value); runs without a value come last either way.
RUN_SORTS = {"score": "score", "metric": "metric_last"}
PAGE_OF_RUNS = 50
# The list counts its runs up to here and then says "10,000+": counting every run of a big
# project is what made its filtered pages slow (issue 13).
COUNTED_RUNS = 10_000


def _runs_filtered(*, project, status="", type="", package="", schedule="", search=""):
    """The project's runs that pass the filters: no join, so each filter is read from an index
    of PipelineRun.Meta in the list's order (a `search` expression: pipelines/run_search.py).
    Returns (runs, whether counting them is cheap)."""
    runs, countable = runs_matching(
        PipelineRun.objects.filter(project=project), search, project=project
    )
    if status:
        runs = runs.filter(status=status)
    if type:
        runs = runs.filter(type=type)
    if package:
        # the package's id, found once (a join on its name would be read in the wrong order)
        named = Package.objects.filter(project=project, name=package).values("pk")[:1]
        runs = runs.filter(package_id=Subquery(named))
    schedule = str(schedule)
    if schedule.isascii() and schedule.isdigit():
        runs = runs.filter(schedule_id=int(schedule) if len(schedule) < 19 else 0)  # none
    return runs, countable


def _with_metric(runs, metric):
    """Each run with `metric`'s last value as `metric_last`: a join, not a subquery per run
    (sorted by it, PostgreSQL hashes the metric's rows once)."""
    if not metric:
        return runs
    chosen = FilteredRelation("metrics", condition=Q(metrics__name=metric))
    return runs.annotate(chosen_metric=chosen).annotate(metric_last=F("chosen_metric__last"))


@dataclass(frozen=True)
class RunOrder:
    """One order of the list: `field` first (None: newest first only), highest first when
    `descending`, runs without it last; then newest first. `name` is what cursors carry."""

    name: str
    field: str | None = None
    descending: bool = True


def run_order(*, sort="", metric="") -> RunOrder:
    """The list's order for ?sort= and ?metric=, or ValidationError saying what is wrong."""
    if len(metric) > MetricSeries._meta.get_field("name").max_length:
        raise ValidationError({"metric": "No metric has a name this long."})
    if sort and sort.removeprefix("-") not in RUN_SORTS:
        raise ValidationError({"sort": "Sort by score, -score, metric or -metric."})
    field = RUN_SORTS.get(sort.removeprefix("-"))
    if field is None or (field == "metric_last" and not metric):
        return RunOrder("newest")  # no metric chosen: nothing to sort by
    name = sort if field == "score" else f"{sort}:{metric}"
    return RunOrder(name, field, sort.startswith("-"))


def pipeline_run_list(*, project, status="", type="", package="", schedule="", sort="", metric=""):
    """The project's runs, newest first or in `sort`'s order; with `metric`, each run carries
    that metric's last value as `metric_last` (a join: the same queries for any page)."""
    order = run_order(sort=sort, metric=metric)
    runs, _ = _runs_filtered(
        project=project, status=status, type=type, package=package, schedule=schedule
    )
    runs = _with_metric(runs, metric).select_related(
        "package", "version", "trained_version", "dataset", "evaluation_dataset", "created_by"
    )
    if order.field is None:
        return runs.order_by("-created_at", "-id")
    value = F(order.field)
    value = value.desc(nulls_last=True) if order.descending else value.asc(nulls_last=True)
    return runs.order_by(value, "-created_at", "-id")


def with_tags(runs: list) -> list:
    """`runs`, each with its tags as `tag_map` (sorted by key), in one query."""
    tags = {run.pk: {} for run in runs}
    for run_id, key, value in (
        RunTag.objects.filter(run__in=list(tags))
        .order_by("key")
        .values_list("run_id", "key", "value")
    ):
        tags[run_id][key] = value
    for run in runs:
        run.tag_map = tags[run.pk]
    return runs


def pipeline_runs_in_order(runs, ids) -> list[PipelineRun]:
    """The runs of `runs` whose ids are `ids`, in that order: a page's ids are found on the
    list's indexes alone, then only its runs are read whole, with what the table shows."""
    found = {run.pk: run for run in runs.order_by().filter(pk__in=list(ids))}
    return [found[pk] for pk in ids if pk in found]


# A page of the list is read by keyset ("the 50 runs after this one"), not by counting rows
# from the top: page 1,000 costs what page 1 costs. The list is read in parts, each in the
# order of one index: with a sort, the runs that have the value, then those without it.
NEWEST_FIRST = (("created_at", True), ("pk", True))


@dataclass
class RunPage:
    """One page of the list: its runs, the cursors of the pages before and after it (None at
    either end), where it starts (1-based, None when unknown) and the count, up to
    COUNTED_RUNS (`count_capped`: there are more)."""

    runs: list
    previous_cursor: str | None = None
    next_cursor: str | None = None
    first: int | None = 1
    count: int | None = None
    count_capped: bool = False
    keyset = True  # for partials/pagination.html

    def __iter__(self):
        return iter(self.runs)

    def __len__(self):
        return len(self.runs)

    def __getitem__(self, index):
        return self.runs[index]

    @property
    def object_list(self):
        return self.runs

    @property
    def has_previous(self):
        return self.previous_cursor is not None

    @property
    def has_next(self):
        return self.next_cursor is not None

    @property
    def last(self):
        return None if self.first is None else self.first + len(self.runs) - 1

    @property
    def count_at_least(self):
        """The count to show: past COUNTED_RUNS, at least as many as this page goes down to
        ("Runs 49,951–50,000 of 50,000+")."""
        if self.count is None or not self.count_capped:
            return self.count
        return max(self.count, self.last or 0)


def _cursor_error() -> ValidationError:
    return ValidationError(
        {"cursor": "This cursor is not one the list gave: start again from the first page."}
    )


def run_cursor(order: RunOrder, *, before: bool, key: tuple, first: int | None) -> str:
    """An opaque cursor: the order, a direction and the key (value, created_at, pk) of the
    run it starts from (the value only in a sorted order)."""
    value, created_at, pk = key
    data = {"o": order.name, "d": "before" if before else "after"}
    value = [value] if order.field else []
    data |= {"k": [*value, created_at.isoformat(), pk], "n": first}
    text = json.dumps(data, separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _cursor_read(cursor: str, order: RunOrder) -> tuple[bool, tuple, int | None]:
    """(before, key, first) of a cursor given back, or ValidationError on 'cursor' saying what
    is wrong. A cursor only says where to start: the project and the filters are the request's,
    so one made up shows nothing it could not list anyway."""
    if len(cursor) > 400:
        raise _cursor_error()
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        direction, key, first = data["d"], data["k"], data.get("n")
        *value, created_at, pk = key
        created_at = datetime.fromisoformat(created_at)
    except (ValueError, TypeError, KeyError, AttributeError, binascii.Error):
        raise _cursor_error() from None
    if data.get("o") != order.name:
        raise ValidationError(
            {
                "cursor": "This cursor belongs to another order of the list: start again from "
                "its first page."
            }
        )
    valid = (
        direction in ("after", "before")
        and created_at.tzinfo is not None
        and len(value) == (order.field is not None)
        and all(v is None or _is_number(v, float) for v in value)
        and _is_number(pk, int)
        and 0 < pk < 2**63
        and (first is None or (_is_number(first, int) and 0 < first < 2**31))
    )
    if not valid:
        raise _cursor_error()
    value = [None if v is None else float(v) for v in value]
    return direction == "before", (*value, created_at, pk), first


def _is_number(value, kind) -> bool:
    """An int (or, for float, a float too) that a database column can hold: JSON has no
    bounds."""
    if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else int):
        return False
    return isinstance(value, float) or abs(value) < 2**63


def _beyond(keys, values, *, before: bool) -> Q:
    """The rows after `values` in the order of `keys` ((field, descending) pairs), or before
    them. The first key's own bound comes first, so that the index is read from there on."""

    def lookup(descending, strict):
        smaller = descending != before
        return ("lt" if strict else "lte") if smaller else ("gt" if strict else "gte")

    condition = None
    for (field, descending), value in reversed(list(zip(keys, values, strict=True))):
        past = Q(**{f"{field}__{lookup(descending, True)}": value})
        condition = past if condition is None else past | (Q(**{field: value}) & condition)
    (field, descending), value = keys[0], values[0]
    return Q(**{f"{field}__{lookup(descending, False)}": value}) & condition


def _list_parts(runs, order: RunOrder, metric: str, *, project, filtered: bool):
    """The list as consecutive parts, each (rows, keys) read in the order of one index: with
    a sort, the runs that have the value, then those without it. The runs that logged the
    metric are its rows in the project, read from their own index (MetricSeries.Meta); only
    a filter joins them to their runs."""
    if order.field is None:
        return [(runs, NEWEST_FIRST)]
    if order.field == "score":
        keys = (("score", order.descending), *NEWEST_FIRST)
        with_value, without = runs.filter(score__isnull=False), runs.filter(score__isnull=True)
        return [(with_value, keys), (without, NEWEST_FIRST)]
    logged = MetricSeries.objects.filter(name=metric, last__isnull=False)
    with_value = logged.filter(project=project)
    if filtered:
        with_value = with_value.filter(run__in=runs)
    keys = (("last", order.descending), ("run_created_at", True), ("run_id", True))
    without = runs.exclude(Exists(logged.filter(run=OuterRef("pk"))))
    return [(with_value, keys), (without, NEWEST_FIRST)]


def _read_keys(parts, order: RunOrder, *, start, before: bool, offset: int, limit: int):
    """Up to `limit` keys (value, created_at, pk) of the runs after `start` (a key, or None
    for the top of the list; with `before`, the runs before it, nearest first, or the bottom
    of the list), `offset` runs skipped. At most one query per part, and a count when the
    offset skips a whole part."""
    # the part the start key is in: runs without a value are the list's last part
    if start is None:
        at = len(parts) - 1 if before else 0
    else:
        at = 1 if order.field and start[0] is None else 0
    found = []
    for index in range(at, -1, -1) if before else range(at, len(parts)):
        part, keys = parts[index]
        if start is not None and index == at:
            part = part.filter(_beyond(keys, start[-len(keys) :], before=before))
        ordering = [F(f).desc() if d != before else F(f).asc() for f, d in keys]
        need = limit - len(found)
        fields = [field for field, _ in keys]
        rows = list(part.order_by(*ordering).values_list(*fields)[offset : offset + need])
        if offset and not rows:
            offset = max(0, offset - part.count())  # the offset goes past this whole part
            continue
        offset = 0
        found += [row if len(keys) == 3 else (None, *row) for row in rows]  # without value
        if len(found) >= limit:
            break
    return found


def _metric_last(runs, metric: str, keys=None) -> None:
    """Each run's last value of `metric` as `metric_last`: from the page's keys when the list
    is sorted by it, else one query on metric_once. Not a join in the page's query: with its
    dozen joins PostgreSQL took longer (10 ms) to plan it than to run it."""
    if keys is not None:
        values = {key[-1]: key[0] for key in keys}
    else:
        found = MetricSeries.objects.filter(run__in=runs, name=metric)
        values = dict(found.values_list("run_id", "last"))
    for run in runs:
        run.metric_last = values.get(run.pk)


def _capped_count(runs) -> tuple[int, bool]:
    counted = runs.order_by().values("pk")[: COUNTED_RUNS + 1].count()
    return min(counted, COUNTED_RUNS), counted > COUNTED_RUNS


def pipeline_run_page(
    *,
    project,
    status="",
    type="",
    package="",
    schedule="",
    search="",
    sort="",
    metric="",
    cursor: str = "",
    offset: int = 0,
    per_page: int = PAGE_OF_RUNS,
    last: bool = False,
    count: bool = True,
) -> RunPage:
    """A page of the list of runs (pipeline_run_list's filters and orders): the `per_page`
    runs from `cursor` (a RunPage's next or previous cursor), then `offset` runs on; `last`:
    the last page. The same few queries for page 1 and page 1,000 of 100,000 runs: keys from
    the indexes, then the page's runs whole; with `count`, the runs counted up to
    COUNTED_RUNS. ValidationError on 'cursor', 'sort' or 'metric' saying what is wrong."""
    order = run_order(sort=sort, metric=metric)
    filters = {"status": status, "type": type, "package": package, "schedule": schedule}
    filters["search"] = search
    runs, countable = _runs_filtered(project=project, **filters)
    before, start, first = last, None, None
    if cursor:
        before, start, first = _cursor_read(cursor, order)
        if offset:  # counted from the cursor (the API)
            first = first + offset if first and not before else None
    elif not last:
        first = offset + 1
    parts = _list_parts(runs, order, metric, project=project, filtered=any(filters.values()))
    read = partial(_read_keys, parts, order, offset=offset, limit=per_page + 1)
    keys = read(start=start, before=before)
    if before and start is not None and len(keys) <= per_page:
        first = 1  # the top of the list
        if len(keys) < per_page:  # fewer runs before the cursor than a page: the first page
            before, start = False, None
            keys = read(start=None, before=False)
    more = len(keys) > per_page  # in the direction read
    keys = keys[:per_page]
    if before:
        keys.reverse()
    at_top = not before and start is None and not offset
    has_previous = more if before else not at_top
    has_next = start is not None if before else more
    page = RunPage(runs=[], first=first)
    if count and countable:  # else the page says where it is without a total
        page.count, page.count_capped = _capped_count(runs)
        if last and not page.count_capped:
            page.first = page.count - len(keys) + 1
    if page.first == 1 and has_previous:  # runs came in above it since: its place is unknown
        page.first = None
    if keys:
        ids = [key[-1] for key in keys]
        page.runs = with_tags(pipeline_runs_in_order(pipeline_run_list(project=project), ids))
        if metric:
            _metric_last(page.runs, metric, keys if order.field == "metric_last" else None)
        known = page.first is not None
        if has_previous:
            back = max(1, page.first - per_page) if known else None
            page.previous_cursor = run_cursor(order, before=True, key=keys[0], first=back)
        if has_next:
            after = page.first + len(keys) if known else None
            page.next_cursor = run_cursor(order, before=False, key=keys[-1], first=after)
    return page

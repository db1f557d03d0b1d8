"""Reads for pipeline runs and the create form's choices."""

import base64
import binascii
import json
import zoneinfo
from dataclasses import dataclass
from datetime import datetime
from functools import partial

import redis
from django.core.exceptions import ValidationError
from django.db.models import Exists, F, FilteredRelation, OuterRef, Q, Subquery
from django.http import Http404

from core import queue as queues
from environments.models import EnvironmentBuild
from packages.models import Package
from pipelines.metrics import metric_summaries
from pipelines.models import MetricSeries, PipelineRun, RunTag, Schedule
from pipelines.run_search import runs_matching
from pipelines.worker_counts import live_worker_count, waiting_workers

# The list's orders besides the newest first: ?sort=score, -score, metric, -metric (the chosen
# metric's last value); runs without a value come last either way.
RUN_SORTS = {"score": "score", "metric": "metric_last"}
# The metric column's choices are read from this many of the project's newest runs, so that
# listing them costs the same in a project of 100 runs and one of 100,000.
METRIC_NAMES_FROM_RUNS = 1000
MOST_METRIC_NAMES = 500  # in alphabetical order: a select longer than this helps nobody
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


def metric_names(*, project) -> list[str]:
    """The names of the metrics logged by the project's newest runs (METRIC_NAMES_FROM_RUNS of
    them), for the list's metric column: one query whose cost does not grow with the project."""
    newest = PipelineRun.objects.filter(project=project).order_by("-created_at")
    names = MetricSeries.objects.filter(
        run__in=Subquery(newest.values("pk")[:METRIC_NAMES_FROM_RUNS])
    )
    names = names.order_by("name").values_list("name", flat=True).distinct()
    return list(names[:MOST_METRIC_NAMES])


def pipeline_run_get(*, project, run_id, outputs_only: bool = False) -> PipelineRun:
    """One run of the project with what its page shows; `outputs_only`: with its output
    folders alone, for the file browsers (the page's dozen joins cost PostgreSQL more to plan,
    about 6 ms, than browsing a folder of a big tree costs)."""
    try:
        run_id = int(run_id)
    except (TypeError, ValueError):
        raise Http404(f"'{run_id}' is not a pipeline run number.") from None
    outputs = ("artifacts", "snapshot", "evaluation_snapshot")
    if outputs_only:
        runs = PipelineRun.objects.filter(project=project).select_related(*outputs)
    else:
        runs = pipeline_run_list(project=project).select_related(
            *outputs, "version__manifest", "schedule"
        )
    run = runs.filter(pk=run_id).first()
    if run is None:
        raise Http404(f"There is no pipeline run {run_id} in this project.")
    return run


def pipeline_run_results(run) -> str:
    """The run's _results.json, for the page's download and the API alike: written at the end
    of every run, so an unfinished one has none yet (404, in both)."""
    if not run.results_text:
        raise Http404(f"Pipeline run {run.pk} has not finished: _results.json comes at the end.")
    return run.results_text


def dataset_folders(dataset, limit=2000) -> list[str]:
    """Every folder of a dataset ('a', 'a/b', ...), for the sub-folder choice."""
    folders = set()
    for path in dataset.manifest.entries.values_list("path", flat=True).iterator():
        parts = path.rstrip("/").split("/")
        stop = len(parts) if path.endswith("/") else len(parts) - 1
        for i in range(1, stop + 1):
            folders.add("/".join(parts[:i]))
        if len(folders) > limit:
            break
    return sorted(folders)[:limit]


def schedule_list(*, project):
    return (
        Schedule.objects.filter(project=project)
        .select_related("created_by")
        .order_by("paused", "next_run_at", "id")
    )


def schedule_get(*, project, schedule_id):
    schedule = schedule_list(project=project).filter(pk=schedule_id).first()
    if schedule is None:
        raise Http404(f"There is no recurring pipeline {schedule_id} in this project.")
    return schedule


def queue_worker_count(queue: str) -> int:
    """Live workers listening on `queue`: not those that died without unregistering. Counted
    once every few seconds per process (pipelines/worker.py), not at each page's poll."""
    try:
        return live_worker_count(queues.connection(queue), queue)
    except redis.exceptions.RedisError:  # Redis away: we can't tell
        return -1


def queue_waiting_workers(queue: str) -> list[str]:
    """Why the live workers on `queue` that take no job wait (their data disk is low)."""
    try:
        return waiting_workers(queues.connection(queue), queue)
    except redis.exceptions.RedisError:
        return []


def waiting_for(run, worker_counts: dict | None = None) -> str | None:
    """What a queued run waits for, in words, when it is not just its turn. Pass one dict for
    many runs: each queue's workers are then counted once."""
    if run.status == PipelineRun.SCHEDULED and run.scheduled_for:
        zone = run.timezone or "UTC"  # the zone its author gave
        local = run.scheduled_for.astimezone(zoneinfo.ZoneInfo(zone))
        return f"scheduled for {local:%Y-%m-%d %H:%M:%S} {zone}"
    if run.status != PipelineRun.QUEUED:
        return None
    counts = {} if worker_counts is None else worker_counts
    if run.queue not in counts:
        counts[run.queue] = queue_worker_count(run.queue)
    if counts[run.queue] == 0:
        if waiting := queue_waiting_workers(run.queue):  # there are workers, but they can't
            return waiting[0]
        if run.queue == "gpu":
            return "waiting for a GPU worker (none is serving the gpu queue)"
        return f"waiting for a worker (none is serving the {run.queue} queue)"
    return None


def queue_place(run) -> dict | None:
    """Where a queued run stands on its queue, when workers serve it: the runs queued ahead of
    it (this project's by number; other projects' only counted, they are not the user's to
    see), and how many runs its workers are busy with. None when no worker serves the queue
    (waiting_for says so) or the run is not queued."""
    if run.status != PipelineRun.QUEUED:
        return None
    workers = queue_worker_count(run.queue)
    if workers <= 0:  # none (or Redis away: -1)
        return None
    others = PipelineRun.objects.filter(
        status__in=(PipelineRun.QUEUED, PipelineRun.PACKAGING, PipelineRun.RUNNING),
        queue=run.queue,
    ).exclude(pk=run.pk)
    # a Packaging run no worker has taken yet waits for a build, in line like a queued one
    waiting = Q(status=PipelineRun.QUEUED) | Q(status=PipelineRun.PACKAGING, started_at=None)
    mine = run.enqueued_at or run.created_at
    ahead = list(
        others.filter(waiting)
        .filter(Q(enqueued_at__lt=mine) | Q(enqueued_at=None, created_at__lt=mine))
        .order_by("enqueued_at", "pk")
        .values_list("pk", "project_id")
    )
    return {
        "ahead": [pk for pk, project in ahead if project == run.project_id],
        "others": sum(1 for _, project in ahead if project != run.project_id),
        "busy": others.exclude(waiting).count(),
        "workers": workers,
    }


PHASE_LABELS = {
    "queued": ("Queued", "waiting"),
    "environment": ("Python environment", "platform"),
    "materialise": ("Package and data in place", "platform"),
    "python": ("Python started", "platform"),
    "import": ("import train", "code"),
    "__init__": ("Main()", "code"),
    "process_data": ("process_data()", "code"),
    "train": ("train()", "code"),
    "evaluate": ("evaluate()", "code"),
    "save": ("save()", "code"),
    "upload": ("Outputs stored", "platform"),
}


def run_timeline(run) -> dict | None:
    """The run's phases as rows for a bar chart, and where the time went."""
    phases = [p for p in run.phases or [] if p.get("end") is not None]
    if not phases:
        return None
    first = min(p["start"] for p in phases)
    last = max(p["end"] for p in phases)
    total = max(last - first, 1e-6)
    rows, spent = [], {"waiting": 0.0, "platform": 0.0, "code": 0.0}
    for phase in phases:
        label, kind = PHASE_LABELS.get(phase["name"], (phase["name"], "code"))
        seconds = phase["end"] - phase["start"]
        spent[kind] += seconds
        rows.append(
            {
                "label": label,
                "kind": kind,
                "seconds": seconds,
                "offset": phase["start"] - first,
                "left": 100 * (phase["start"] - first) / total,
                "width": max(100 * seconds / total, 0.4),
            }
        )
    reason = run.failure_reason
    if (
        run.status == PipelineRun.FAILED
        and not reason.startswith("platform error")
        and "has no method" not in reason  # a call missing from train.py never started
    ):
        # the package's call that raised (or ran out of time): the last one of its code
        failed = [row for row in rows if row["kind"] == "code"][-1:]
        for row in failed:
            row["failed"] = True
    return {"rows": rows, "total": total, **spent}


def environment_built_elsewhere(run):
    """The environment build a Packaging run waits for while another job runs it (the build
    queued at upload, or another run's), or None."""
    if run.status != PipelineRun.PACKAGING or run.started_at:
        return None
    return EnvironmentBuild.objects.filter(versions=run.version_id).first()


def environment_of_version(version):
    """The version's environment as last built ('pending' before any build)."""
    return EnvironmentBuild.objects.filter(versions=version).first()


# A run's output folders, by the name pages and the API give them: the run's field, a title,
# and why it may be missing.
RUN_OUTPUTS = {
    "artifacts": ("artifacts", "Artifacts", ""),
    "snapshot": ("snapshot", "Dataset snapshot", "save_training_data was not true"),
    "evaluation-snapshot": (
        "evaluation_snapshot",
        "Evaluation data snapshot",
        "save_test_data was not true",
    ),
}


def run_output(run, which: str):
    """(manifest, title) of one of the run's output folders; Http404 saying why when it has
    none."""
    if which not in RUN_OUTPUTS:
        raise Http404(f"A pipeline run has no '{which}'.")
    field, title, why = RUN_OUTPUTS[which]
    manifest = getattr(run, field)
    if manifest is None:
        because = f" ({why})" if why else ""
        raise Http404(f"Pipeline run {run.pk} has no {title.lower()}{because}.")
    return manifest, title


# The Compare page overlays at most this many runs; the API compares as many.
MOST_COMPARED_RUNS = 10


def compared_run_ids(raw: str) -> list[int]:
    """'1,2,3' → [1, 2, 3]: 1 to MOST_COMPARED_RUNS run numbers, each once, in the given order;
    ValidationError on 'ids' saying what is wrong."""
    parts = [part.strip() for part in str(raw or "").split(",") if part.strip()]
    if not parts:
        raise ValidationError({"ids": "Give the runs to compare as ids=1,2,3."})
    if not all(part.isascii() and part.isdigit() and len(part) <= 18 for part in parts):
        raise ValidationError({"ids": "ids are run numbers separated by commas, like 1,2,3."})
    ids = list(dict.fromkeys(int(part) for part in parts))
    if len(ids) > MOST_COMPARED_RUNS:
        raise ValidationError({"ids": f"Compare at most {MOST_COMPARED_RUNS} runs at once."})
    return ids


def run_comparison(*, project, ids: list[int]) -> list[dict]:
    """The runs side by side, in the given order: inputs, logged parameters, score and each
    metric's last, min, max and number of steps (from the summaries: two queries in all)."""
    runs = {run.pk: run for run in pipeline_run_list(project=project).filter(pk__in=ids)}
    if missing := [str(pk) for pk in ids if pk not in runs]:
        raise Http404(f"No pipeline run {', '.join(missing)} in this project.")
    summaries = metric_summaries(ids)
    return [
        {
            "id": pk,
            "name": runs[pk].name,
            "status": runs[pk].status,
            "package": runs[pk].package.name,
            "version": runs[pk].version.number,
            "parameters": runs[pk].ordered_parameters,
            "logged_params": dict(sorted(runs[pk].logged_params.items())),  # jsonb keeps no order
            "score": runs[pk].score,
            "metrics": summaries[pk],
        }
        for pk in ids
    ]

"""Reads for pipeline runs and the create form's choices."""

import zoneinfo

import redis
from django.core.exceptions import ValidationError
from django.db.models import F, FilteredRelation, Q, Subquery
from django.http import Http404

from pipelines import queue as queues
from pipelines.metrics import metric_summaries
from pipelines.models import EnvironmentBuild, MetricSeries, PipelineRun, Schedule
from pipelines.worker import live_worker_count

# The list's orders besides the newest first: ?sort=score, -score, metric, -metric (the chosen
# metric's last value); runs without a value come last either way.
RUN_SORTS = {"score": "score", "metric": "metric_last"}
# The metric column's choices are read from this many of the project's newest runs, so that
# listing them costs the same in a project of 100 runs and one of 100,000.
METRIC_NAMES_FROM_RUNS = 1000
MOST_METRIC_NAMES = 500  # in alphabetical order: a select longer than this helps nobody


def pipeline_run_list(*, project, status="", type="", package="", schedule="", sort="", metric=""):
    """The project's runs, newest first or in `sort`'s order; with `metric`, each run carries
    that metric's last value as `metric_last` (a subquery: the same queries for any page)."""
    runs = PipelineRun.objects.filter(project=project).select_related(
        "package", "version", "trained_version", "dataset", "evaluation_dataset", "created_by"
    )
    if status:
        runs = runs.filter(status=status)
    if type:
        runs = runs.filter(type=type)
    if package:
        runs = runs.filter(package__name=package)
    if str(schedule).isdigit():
        runs = runs.filter(schedule_id=int(schedule))
    if len(metric) > MetricSeries._meta.get_field("name").max_length:
        raise ValidationError({"metric": "No metric has a name this long."})
    if metric:
        # a join, not a subquery per run: sorted by it, PostgreSQL hashes the metric's rows once
        chosen = FilteredRelation("metrics", condition=Q(metrics__name=metric))
        runs = runs.annotate(chosen_metric=chosen).annotate(metric_last=F("chosen_metric__last"))
    if sort and sort.removeprefix("-") not in RUN_SORTS:
        raise ValidationError({"sort": "Sort by score, -score, metric or -metric."})
    field = RUN_SORTS.get(sort.removeprefix("-"))
    if field == "metric_last" and not metric:
        field = None  # no metric chosen: nothing to sort by
    if field is None:
        return runs.order_by("-created_at", "-id")
    value = F(field).desc(nulls_last=True) if sort[0] == "-" else F(field).asc(nulls_last=True)
    return runs.order_by(value, "-created_at", "-id")


def pipeline_runs_in_order(runs, ids) -> list[PipelineRun]:
    """The runs of `runs` whose ids are `ids`, in that order. A page of the list is found by
    sorting ids alone, then only its runs are read whole, with what the table shows: sorted by
    a metric, page 1,000 of 100,000 runs sorts 50,000 narrow rows, not 50,000 wide ones (on
    SQLite, 0.28 s instead of 1 s)."""
    found = {run.pk: run for run in runs.order_by().filter(pk__in=list(ids))}
    return [found[pk] for pk in ids if pk in found]


def metric_names(*, project) -> list[str]:
    """The names of the metrics logged by the project's newest runs (METRIC_NAMES_FROM_RUNS of
    them), for the list's metric column: one query whose cost does not grow with the project."""
    newest = PipelineRun.objects.filter(project=project).order_by("-created_at")
    names = MetricSeries.objects.filter(
        run__in=Subquery(newest.values("pk")[:METRIC_NAMES_FROM_RUNS])
    )
    names = names.order_by("name").values_list("name", flat=True).distinct()
    return list(names[:MOST_METRIC_NAMES])


def pipeline_run_get(*, project, run_id) -> PipelineRun:
    try:
        run_id = int(run_id)
    except (TypeError, ValueError):
        raise Http404(f"'{run_id}' is not a pipeline run number.") from None
    run = (
        pipeline_run_list(project=project)
        .select_related(
            "artifacts", "snapshot", "evaluation_snapshot", "version__manifest", "schedule"
        )
        .filter(pk=run_id)
        .first()
    )
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
        if run.queue == "gpu":
            return "waiting for a GPU worker (none is serving the gpu queue)"
        return f"waiting for a worker (none is serving the {run.queue} queue)"
    return None


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

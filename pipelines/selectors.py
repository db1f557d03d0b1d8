"""Reads for pipeline runs and the create form's choices."""

from django.db.models import Subquery
from django.http import Http404

from environments.models import EnvironmentBuild
from pipelines.models import MetricSeries, PipelineRun, Schedule
from pipelines.run_pages import pipeline_run_list

# The metric column's choices are read from this many of the project's newest runs, so that
# listing them costs the same in a project of 100 runs and one of 100,000.
METRIC_NAMES_FROM_RUNS = 1000
MOST_METRIC_NAMES = 500  # in alphabetical order: a select longer than this helps nobody


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

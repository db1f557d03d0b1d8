"""Reads for pipeline runs and the create form's choices."""

from django.http import Http404

from pipelines.models import PipelineRun


def pipeline_run_list(*, project, status="", type="", package=""):
    runs = PipelineRun.objects.filter(project=project).select_related(
        "package", "version", "output_version", "dataset", "evaluation_dataset", "created_by"
    )
    if status:
        runs = runs.filter(status=status)
    if type:
        runs = runs.filter(type=type)
    if package:
        runs = runs.filter(package__name=package)
    return runs.order_by("-created_at", "-id")


def pipeline_run_get(*, project, run_id) -> PipelineRun:
    try:
        run_id = int(run_id)
    except (TypeError, ValueError):
        raise Http404(f"'{run_id}' is not a pipeline run number.") from None
    run = (
        pipeline_run_list(project=project)
        .select_related("artifacts", "snapshot", "evaluation_snapshot", "version__manifest")
        .filter(pk=run_id)
        .first()
    )
    if run is None:
        raise Http404(f"There is no pipeline run {run_id} in this project.")
    return run


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

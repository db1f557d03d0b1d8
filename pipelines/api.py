from datetime import datetime

from django.http import Http404, HttpResponse
from ninja import Router, Schema, Status

from aicenter.downloads import file_response
from aicenter.manifests import clean_folder, clean_path, manifest_files
from aicenter.services import RUN, project_get_for_user
from pipelines.logs import run_log_text
from pipelines.selectors import pipeline_run_get, pipeline_run_list
from pipelines.services import pipeline_run_create, pipeline_run_delete

router = Router(tags=["pipelines"])


class PipelineIn(Schema):
    type: str = "train"
    name: str = ""
    package: str
    version: str = "1.0"
    dataset: str | None = None
    dataset_folder: str | None = None
    evaluation_dataset: str | None = None
    evaluation_folder: str | None = None
    parameters: dict[str, str | int | float | bool] = {}
    gpu: bool = False
    schedule: None = None


class PipelineOut(Schema):
    id: int
    name: str
    type: str
    status: str
    package: str
    version: str
    output_version: str | None
    dataset: str | None
    dataset_folder: str
    evaluation_dataset: str | None
    evaluation_folder: str
    score: float | None
    failure_reason: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration: float | None
    parameters: dict[str, str]
    gpu: bool
    queue: str
    created_by: str | None
    phases: list[dict]


def pipeline_out(run) -> dict:
    return {
        "id": run.pk,
        "name": run.name,
        "type": run.type,
        "status": run.status,
        "package": run.package.name,
        "version": run.version.number,
        "output_version": run.output_version.number if run.output_version else None,
        "dataset": run.dataset.name if run.dataset else None,
        "dataset_folder": run.dataset_folder,
        "evaluation_dataset": run.evaluation_dataset.name if run.evaluation_dataset else None,
        "evaluation_folder": run.evaluation_folder,
        "score": run.score,
        "failure_reason": run.failure_reason,
        "created_at": run.created_at,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "duration": run.duration,
        "parameters": run.ordered_parameters,
        "gpu": run.gpu,
        "queue": run.queue,
        "created_by": run.created_by.username if run.created_by else None,
        "phases": run.phases,
    }


class FileOut(Schema):
    path: str
    size: int


class FilesOut(Schema):
    files: list[FileOut]


@router.get("/{project}/pipelines", response=list[PipelineOut])
def list_pipelines(
    request,
    project: str,
    status: str = "",
    type: str = "",
    package: str = "",
    limit: int = 100,
    offset: int = 0,
):
    project = project_get_for_user(user=request.user, slug=project)
    runs = pipeline_run_list(project=project, status=status, type=type, package=package)
    limit = max(1, min(limit, 1000))
    return [pipeline_out(run) for run in runs[max(offset, 0) : max(offset, 0) + limit]]


@router.post("/{project}/pipelines", response={201: PipelineOut})
def create_pipeline(request, project: str, payload: PipelineIn):
    project = project_get_for_user(user=request.user, slug=project, need=RUN)
    run = pipeline_run_create(
        project=project,
        user=request.user,
        type=payload.type,
        name=payload.name,
        package=payload.package,
        version=payload.version,
        dataset=payload.dataset or "",
        dataset_folder=payload.dataset_folder or "",
        evaluation_dataset=payload.evaluation_dataset or "",
        evaluation_folder=payload.evaluation_folder or "",
        parameters=payload.parameters,
        gpu=payload.gpu,
    )
    return Status(201, pipeline_out(pipeline_run_get(project=project, run_id=run.pk)))


@router.get("/{project}/pipelines/{run_id}", response=PipelineOut)
def get_pipeline(request, project: str, run_id: int):
    project = project_get_for_user(user=request.user, slug=project)
    return pipeline_out(pipeline_run_get(project=project, run_id=run_id))


@router.delete("/{project}/pipelines/{run_id}", response={204: None})
def delete_pipeline(request, project: str, run_id: int):
    project = project_get_for_user(user=request.user, slug=project, need=RUN)
    pipeline_run_delete(run=pipeline_run_get(project=project, run_id=run_id))
    return Status(204, None)


@router.get("/{project}/pipelines/{run_id}/results", response={200: None})
def get_results(request, project: str, run_id: int):
    project = project_get_for_user(user=request.user, slug=project)
    run = pipeline_run_get(project=project, run_id=run_id)
    if not run.results_text:
        raise Http404(f"Pipeline run {run.pk} has not finished: _results.json comes at the end.")
    return HttpResponse(run.results_text, content_type="application/json")


@router.get("/{project}/pipelines/{run_id}/logs", response={200: None})
def get_logs(request, project: str, run_id: int):
    project = project_get_for_user(user=request.user, slug=project)
    run = pipeline_run_get(project=project, run_id=run_id)
    return HttpResponse(run_log_text(run)[0], content_type="text/plain; charset=utf-8")


OUTPUTS = {
    "artifacts": "artifacts",
    "snapshot": "data snapshot (save_training_data was not true)",
}


def _output(request, project, run_id, field):
    project = project_get_for_user(user=request.user, slug=project)
    run = pipeline_run_get(project=project, run_id=run_id)
    manifest = getattr(run, field)
    if manifest is None:
        raise Http404(f"Pipeline run {run.pk} has no {OUTPUTS[field]}.")
    return manifest


def _files(manifest, prefix):
    return {"files": [{"path": p, "size": s} for p, s in manifest_files(manifest, prefix)]}


@router.get("/{project}/pipelines/{run_id}/artifacts", response=FilesOut)
def list_artifacts(request, project: str, run_id: int, prefix: str = ""):
    return _files(_output(request, project, run_id, "artifacts"), clean_folder(prefix))


@router.get("/{project}/pipelines/{run_id}/artifacts/{path:path}", response={200: None})
def get_artifact(request, project: str, run_id: int, path: str):
    return file_response(_output(request, project, run_id, "artifacts"), clean_path(path))


@router.get("/{project}/pipelines/{run_id}/snapshot", response=FilesOut)
def list_snapshot(request, project: str, run_id: int, prefix: str = ""):
    return _files(_output(request, project, run_id, "snapshot"), clean_folder(prefix))


@router.get("/{project}/pipelines/{run_id}/snapshot/{path:path}", response={200: None})
def get_snapshot_file(request, project: str, run_id: int, path: str):
    return file_response(_output(request, project, run_id, "snapshot"), clean_path(path))

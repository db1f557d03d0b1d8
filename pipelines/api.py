from datetime import datetime

from django.http import HttpResponse
from ninja import Query, Router, Schema, Status
from pydantic import ConfigDict

from core.downloads import FilesOut, file_response, files_listing
from core.errors import ErrorOut
from core.manifests import clean_folder, clean_path
from core.services import project_get_for_user
from environments.records import environment_rebuild
from packages.selectors import package_get, version_get
from pipelines.forms import LAST_LOG_CHUNK
from pipelines.logs import run_log_text
from pipelines.models import Schedule
from pipelines.schedules import (
    schedule_delete,
    schedule_pause,
    schedule_resume,
    schedule_update,
)
from pipelines.selectors import (
    pipeline_run_get,
    pipeline_run_page,
    pipeline_run_results,
    run_output,
    schedule_get,
    schedule_list,
    waiting_for,
)
from pipelines.services import (
    pipeline_run_delete,
    pipeline_run_kill,
    pipeline_run_retry,
)
from pipelines.start import pipeline_start
from pipelines.when import clean_when

router = Router(tags=["pipelines"])


class PipelineIn(Schema):
    model_config = ConfigDict(strict=True, extra="forbid")

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
    max_run_seconds: int | None = None
    schedule: dict | None = None


class PipelineOut(Schema):
    id: int
    name: str
    type: str
    status: str
    package: str
    version: str
    output_version: str | None
    output_version_deleted: bool  # its number stays the run's lineage; its files are gone
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
    max_run_seconds: int
    scheduled_for: datetime | None
    schedule: int | None
    waiting_for: str | None
    sandbox: dict
    logged_params: dict[str, str]
    worker: str  # "<host>:<pid>" of the worker that claimed it ("" before)


def pipeline_out(run, worker_counts=None) -> dict:
    return {
        "id": run.pk,
        "name": run.name,
        "type": run.type,
        "status": run.status,
        "package": run.package.name,
        "version": run.version.number,
        "output_version": run.output_version.number if run.output_version else None,
        "output_version_deleted": bool(run.output_version and run.output_version.deleted_at),
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
        "max_run_seconds": run.max_run_seconds,
        "scheduled_for": run.scheduled_for,
        "schedule": run.schedule_id,
        "waiting_for": waiting_for(run, worker_counts),
        "sandbox": run.sandbox,
        "logged_params": run.logged_params,
        "worker": run.worker,
    }


class ScheduleOut(Schema):
    id: int
    name: str
    status: str
    rule: str
    every: int | None
    unit: str
    cron: str
    timezone: str
    starts_at: datetime
    next_run_at: datetime | None
    last_run_at: datetime | None
    inputs: dict
    runs: list[int]


def schedule_out(schedule) -> dict:
    return {
        "id": schedule.pk,
        "name": schedule.name,
        "status": "paused" if schedule.paused else "active",
        "rule": schedule.rule,
        "every": schedule.every,
        "unit": schedule.unit,
        "cron": schedule.cron,
        "timezone": schedule.timezone,
        "starts_at": schedule.starts_at,
        "next_run_at": None if schedule.paused else schedule.next_run_at,
        "last_run_at": schedule.last_run_at,
        "inputs": schedule.inputs,
        "runs": list(schedule.runs.order_by("-id").values_list("id", flat=True)[:100]),
    }


@router.get("/{project}/pipelines", response={200: list[PipelineOut], 400: ErrorOut})
def list_pipelines(
    request,
    response: HttpResponse,
    project: str,
    status: str = "",
    type: str = "",
    package: str = "",
    schedule: str = "",
    limit: int = 100,
    offset: int = 0,
    cursor: str = "",
):
    """Runs newest first, `limit` (1 to 1,000) of them from `offset`. When more follow, the
    header `Link: <URL>; rel="next"` gives the URL of the next ones: the same query with a
    `cursor`, which stays as fast on the 1,000th page as on the first and neither skips nor
    repeats a run when new ones arrive meanwhile (an offset counts from the cursor)."""
    project = project_get_for_user(user=request.user, slug=project)
    limit = max(1, min(limit, 1000))
    page = pipeline_run_page(
        project=project,
        status=status,
        type=type,
        package=package,
        schedule=schedule,
        cursor=cursor,
        offset=min(max(offset, 0), 2**31),  # past any list, and a number SQL can take
        per_page=limit,
        count=False,
    )
    if page.next_cursor:
        query = request.GET.copy()
        query.pop("offset", None)
        query["cursor"] = page.next_cursor
        response["Link"] = f'<{request.build_absolute_uri("?" + query.urlencode())}>; rel="next"'
    counts = {}
    return [pipeline_out(run, counts) for run in page]


def _inputs(payload: PipelineIn) -> dict:
    """A run's inputs as pipeline_start and schedule_update take them."""
    return {
        "type": payload.type,
        "package": payload.package,
        "version": payload.version,
        "dataset": payload.dataset or "",
        "dataset_folder": payload.dataset_folder or "",
        "evaluation_dataset": payload.evaluation_dataset or "",
        "evaluation_folder": payload.evaluation_folder or "",
        "parameters": payload.parameters,
        "gpu": payload.gpu,
        "max_run_seconds": payload.max_run_seconds,
    }


@router.post("/{project}/pipelines", response={201: PipelineOut | ScheduleOut})
def create_pipeline(request, project: str, payload: PipelineIn):
    """A run now (`schedule`: null), at a moment (`{"at": "2026-12-01T08:00", "timezone":
    "Europe/Paris"}`: status scheduled), or a recurring pipeline (`{"every": 6, "unit": "hours"}`
    or `{"cron": "0 3 * * 1-5"}`, with optional "timezone" and "starts_at"): then the answer is
    the schedule, whose firings create ordinary runs."""
    project = project_get_for_user(user=request.user, slug=project)
    started = pipeline_start(
        project=project,
        user=request.user,
        when=clean_when(payload.schedule),
        name=payload.name,
        **_inputs(payload),
    )
    if isinstance(started, Schedule):
        return Status(201, schedule_out(started))
    return Status(201, pipeline_out(started))  # as created: a warm worker may be on it already


@router.post("/{project}/pipelines/{run_id}/kill", response={200: PipelineOut, 409: ErrorOut})
def kill_pipeline(request, project: str, run_id: int):
    project = project_get_for_user(user=request.user, slug=project)
    run = pipeline_run_kill(run=pipeline_run_get(project=project, run_id=run_id), user=request.user)
    return pipeline_out(pipeline_run_get(project=project, run_id=run.pk))


@router.post("/{project}/pipelines/{run_id}/retry", response={201: PipelineOut, 409: ErrorOut})
def retry_pipeline(request, project: str, run_id: int):
    project = project_get_for_user(user=request.user, slug=project)
    run = pipeline_run_retry(
        run=pipeline_run_get(project=project, run_id=run_id), user=request.user
    )
    return Status(201, pipeline_out(pipeline_run_get(project=project, run_id=run.pk)))


@router.get("/{project}/schedules", response=list[ScheduleOut], tags=["schedules"])
def list_schedules(request, project: str):
    project = project_get_for_user(user=request.user, slug=project)
    return [schedule_out(s) for s in schedule_list(project=project)]


@router.get("/{project}/schedules/{schedule_id}", response=ScheduleOut, tags=["schedules"])
def get_schedule(request, project: str, schedule_id: int):
    project = project_get_for_user(user=request.user, slug=project)
    return schedule_out(schedule_get(project=project, schedule_id=schedule_id))


@router.put("/{project}/schedules/{schedule_id}", response=ScheduleOut, tags=["schedules"])
def update_schedule(request, project: str, schedule_id: int, payload: PipelineIn):
    """Edit a recurring pipeline as the page's Edit does: its name, inputs and rule, all given
    again (`schedule` as when creating it, recurring: `every` and `unit`, or `cron`). Its next
    run is counted from now by the new rule; the runs it already started stay as they are."""
    project = project_get_for_user(user=request.user, slug=project)
    schedule = schedule_get(project=project, schedule_id=schedule_id)
    schedule = schedule_update(
        schedule=schedule,
        user=request.user,
        when=clean_when(payload.schedule),
        name=payload.name,
        inputs=_inputs(payload),
    )
    return schedule_out(schedule)


@router.post("/{project}/schedules/{schedule_id}/pause", response=ScheduleOut, tags=["schedules"])
def pause_schedule(request, project: str, schedule_id: int):
    project = project_get_for_user(user=request.user, slug=project)
    schedule = schedule_get(project=project, schedule_id=schedule_id)
    schedule_pause(schedule=schedule, user=request.user)
    return schedule_out(schedule)


@router.post("/{project}/schedules/{schedule_id}/resume", response=ScheduleOut, tags=["schedules"])
def resume_schedule(request, project: str, schedule_id: int):
    project = project_get_for_user(user=request.user, slug=project)
    schedule = schedule_get(project=project, schedule_id=schedule_id)
    schedule_resume(schedule=schedule, user=request.user)
    return schedule_out(schedule)


@router.delete("/{project}/schedules/{schedule_id}", response={204: None}, tags=["schedules"])
def delete_schedule(request, project: str, schedule_id: int):
    project = project_get_for_user(user=request.user, slug=project)
    schedule_delete(
        schedule=schedule_get(project=project, schedule_id=schedule_id), user=request.user
    )
    return Status(204, None)


@router.get("/{project}/pipelines/{run_id}", response=PipelineOut)
def get_pipeline(request, project: str, run_id: int):
    project = project_get_for_user(user=request.user, slug=project)
    return pipeline_out(pipeline_run_get(project=project, run_id=run_id))


@router.delete("/{project}/pipelines/{run_id}", response={204: None, 409: ErrorOut})
def delete_pipeline(request, project: str, run_id: int):
    project = project_get_for_user(user=request.user, slug=project)
    pipeline_run_delete(run=pipeline_run_get(project=project, run_id=run_id), user=request.user)
    return Status(204, None)


@router.get("/{project}/pipelines/{run_id}/results", response={200: None})
def get_results(request, project: str, run_id: int):
    project = project_get_for_user(user=request.user, slug=project)
    run = pipeline_run_get(project=project, run_id=run_id)
    return HttpResponse(pipeline_run_results(run), content_type="application/json")


@router.get("/{project}/pipelines/{run_id}/logs", response={200: None})
def get_logs(
    request,
    project: str,
    run_id: int,
    after: int = Query(0, ge=0, le=LAST_LOG_CHUNK),  # noqa: B008
):
    """The run's log as text; with `after`, only what came after that log chunk. The header
    `X-Log-Last-Chunk` numbers the last chunk sent: pass it as `after` to read on."""
    project = project_get_for_user(user=request.user, slug=project)
    run = pipeline_run_get(project=project, run_id=run_id)
    text, last = run_log_text(run, after=after)
    response = HttpResponse(text, content_type="text/plain; charset=utf-8")
    response["X-Log-Last-Chunk"] = str(last)
    return response


def _output(request, project, run_id, which):
    project = project_get_for_user(user=request.user, slug=project)
    run = pipeline_run_get(project=project, run_id=run_id)
    return run_output(run, which)[0]


@router.get("/{project}/pipelines/{run_id}/artifacts", response={200: FilesOut, 400: ErrorOut})
def list_artifacts(request, project: str, run_id: int, prefix: str = ""):
    return files_listing(_output(request, project, run_id, "artifacts"), clean_folder(prefix))


@router.get(
    "/{project}/pipelines/{run_id}/artifacts/{path:path}", response={200: None, 400: ErrorOut}
)
def get_artifact(request, project: str, run_id: int, path: str):
    return file_response(_output(request, project, run_id, "artifacts"), clean_path(path))


@router.get("/{project}/pipelines/{run_id}/snapshot", response={200: FilesOut, 400: ErrorOut})
def list_snapshot(request, project: str, run_id: int, prefix: str = ""):
    return files_listing(_output(request, project, run_id, "snapshot"), clean_folder(prefix))


@router.get(
    "/{project}/pipelines/{run_id}/snapshot/{path:path}", response={200: None, 400: ErrorOut}
)
def get_snapshot_file(request, project: str, run_id: int, path: str):
    return file_response(_output(request, project, run_id, "snapshot"), clean_path(path))


@router.get(
    "/{project}/pipelines/{run_id}/evaluation-snapshot",
    response={200: FilesOut, 400: ErrorOut},
)
def list_evaluation_snapshot(request, project: str, run_id: int, prefix: str = ""):
    """The evaluation data the run was given, kept when `save_test_data` was true."""
    manifest = _output(request, project, run_id, "evaluation-snapshot")
    return files_listing(manifest, clean_folder(prefix))


@router.get(
    "/{project}/pipelines/{run_id}/evaluation-snapshot/{path:path}",
    response={200: None, 400: ErrorOut},
)
def get_evaluation_snapshot_file(request, project: str, run_id: int, path: str):
    manifest = _output(request, project, run_id, "evaluation-snapshot")
    return file_response(manifest, clean_path(path))


class EnvironmentOut(Schema):
    status: str
    detail: str


@router.post(
    "/{project}/packages/{package}/versions/{version}/rebuild",
    response=EnvironmentOut,
    tags=["packages"],
)
def rebuild_environment(request, project: str, package: str, version: str):
    """Build the version's Python environment again (after a failed build: its failure is
    remembered for a while, and runs are refused with its reason meanwhile)."""
    project = project_get_for_user(user=request.user, slug=project)
    version = version_get(package=package_get(project=project, name=package), number=version)
    return environment_rebuild(version=version, user=request.user)

"""What the pipelines API reads and answers: a run to start, a run, a recurring pipeline."""

from datetime import datetime

from ninja import Schema
from pydantic import ConfigDict

from pipelines.queue_places import queue_place, waiting_for
from pipelines.tracking import run_tags


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


class QueuePlaceOut(Schema):
    ahead: list[int]  # this project's runs queued ahead, first in line first
    others: int  # other projects' runs queued ahead (not the caller's to see)
    busy: int  # runs the queue's workers are on now
    workers: int  # live workers serving the queue


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
    queue_place: QueuePlaceOut | None  # only while queued and some worker serves the queue
    sandbox: dict
    logged_params: dict[str, str]
    description: str  # Markdown
    tags: dict[str, str]
    worker: str  # "<host>:<pid>" of the worker that claimed it ("" before)


def pipeline_out(run, worker_counts=None) -> dict:
    worker_counts = {} if worker_counts is None else worker_counts
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
        "queue_place": queue_place(run, worker_counts),
        "sandbox": run.sandbox,
        "logged_params": run.logged_params,
        "description": run.description,
        "tags": run.tag_map if hasattr(run, "tag_map") else run_tags(run),
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

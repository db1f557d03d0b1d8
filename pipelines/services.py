"""Writes for pipeline runs. Views and the API both call these."""

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from aicenter.manifests import clean_folder, manifest_delete, manifest_folder_exists
from datasets.models import Dataset
from packages.models import Package
from pipelines import queue, transitions
from pipelines.models import PipelineRun
from pipelines.parameters import clean_parameters

logger = logging.getLogger(__name__)
TYPES = dict(PipelineRun.TYPES)
# RQ wakes a scheduled job up to a second early (rq_moment); the job waits out at most this
# much: more would be a clock apart from the scheduler's.
EARLY_WAKE_SECONDS = 1.0
# RQ's time limit for a run's job: the run's own limit plus this, so the runner's limit (which
# ends the run and says why) fires first.
JOB_TIMEOUT_SLACK_SECONDS = 3600
# How long RQ keeps a finished job, for its dashboard only: the run's row is the record.
JOB_RESULT_TTL_SECONDS = 3600
JOB_FAILURE_TTL_SECONDS = 7 * 24 * 3600
# "at" a moment this far in the past is refused; less is a form sent within seconds of it.
PAST_MOMENT_SECONDS = 5


def _dataset(project, name, folder, field, errors):
    if not name:
        return None, ""
    dataset = Dataset.objects.filter(project=project, name=name).select_related("manifest").first()
    if dataset is None:
        errors[field] = f"There is no dataset '{name}' in this project."
        return None, ""
    try:
        folder = clean_folder(folder)
    except ValidationError:
        errors[f"{field}_folder"] = f"'{folder}' is not a valid folder."
        return dataset, ""
    if folder and not manifest_folder_exists(dataset.manifest, folder):
        errors[f"{field}_folder"] = f"Dataset {name} has no folder '{folder}'."
    elif not dataset.manifest.entries.filter(blob__isnull=False).exists():
        errors[field] = f"Dataset {name} is empty: upload data first."
    return dataset, folder


def _methods(version) -> set[str]:
    """class Main's methods in the version's train.py, or every name when unknowable (then the
    run itself says what is missing)."""
    from aicenter.manifests import blob_open, manifest_file
    from packages.validation import main_methods

    entry = manifest_file(version.manifest, "train.py")
    if entry is None:
        return set()
    with blob_open(entry.blob) as stored:
        methods = main_methods(stored.read())
    return {"process_data"} if methods is None else methods


def clean_run_inputs(
    *,
    project,
    type: str,
    package: str,
    version: str,
    dataset: str = "",
    dataset_folder: str = "",
    evaluation_dataset: str = "",
    evaluation_folder: str = "",
    parameters: dict | None = None,
    gpu: bool = False,
    max_run_seconds: int | None = None,
) -> dict:
    """Check a run's inputs; return PipelineRun field values, or raise a ValidationError naming
    every problem field by field."""
    errors = {}
    if type not in TYPES:
        errors["type"] = f"'{type}' is not a pipeline type; use train, evaluate or full."
    package_obj = Package.objects.filter(project=project, name=package).first()
    version_obj = None
    if not package:
        errors["package"] = "Choose a package."
    elif package_obj is None:
        errors["package"] = f"There is no package '{package}' in this project."
    else:
        try:
            major, minor = (int(part) for part in str(version).split("."))
            version_obj = package_obj.versions.filter(major=major, minor=minor).first()
        except ValueError:
            pass
        if version_obj is None:
            errors["version"] = f"Package {package} has no version '{version}'."
        elif not package_obj.training_enabled:
            errors["version"] = (
                f"Package {package} does not have training enabled, so it can't run "
                "pipelines; upload it with 'Enable training' and a train.py."
            )
        elif type == PipelineRun.FULL and "process_data" not in _methods(version_obj):
            errors["version"] = (
                f"train.py of {package} {version_obj.number} has no method process_data, "
                "which a full pipeline run calls first (it writes the training and test splits "
                "into training_data_directory and test_data_directory); run a training run, "
                "or add process_data(data_directory)."
            )
    dataset_obj, dataset_folder = _dataset(project, dataset, dataset_folder, "dataset", errors)
    evaluation_obj, evaluation_folder = _dataset(
        project, evaluation_dataset, evaluation_folder, "evaluation_dataset", errors
    )
    if type in (PipelineRun.TRAIN, PipelineRun.FULL) and not dataset:
        errors["dataset"] = "Choose the input dataset."
    if type == PipelineRun.EVALUATE and not evaluation_dataset:
        errors["evaluation_dataset"] = "Choose the evaluation dataset."
    if type == PipelineRun.TRAIN and evaluation_dataset:
        errors["evaluation_dataset"] = "A training run takes no evaluation dataset."
    if type == PipelineRun.EVALUATE and dataset:
        errors["dataset"] = "An evaluation run takes only an evaluation dataset."
    limit = settings.PIPELINE_MAX_RUN_SECONDS
    if max_run_seconds is None or max_run_seconds == "":
        max_run_seconds = limit
    try:
        max_run_seconds = int(max_run_seconds)
        if not 1 <= max_run_seconds <= limit:
            raise ValueError
    except (TypeError, ValueError):
        errors["max_run_seconds"] = (
            f"The time limit must be a whole number of seconds from 1 to {limit:,}."
        )
    try:
        parameters = clean_parameters(parameters)
    except ValidationError as error:
        errors.update(error.message_dict)
    if errors:
        raise ValidationError(errors)
    return {
        "type": type,
        "package": package_obj,
        "version": version_obj,
        "dataset": dataset_obj,
        "dataset_folder": dataset_folder,
        "evaluation_dataset": evaluation_obj,
        "evaluation_folder": evaluation_folder,
        "parameters": parameters,
        "gpu": bool(gpu),
        "queue": "gpu" if gpu else "pipelines",
        "max_run_seconds": max_run_seconds,
    }


def run_inputs(run) -> dict:
    """A run's inputs as clean_run_inputs takes them: for Retry and for schedules."""
    return {
        "type": run.type,
        "package": run.package.name,
        "version": run.version.number,
        "dataset": run.dataset.name if run.dataset else "",
        "dataset_folder": run.dataset_folder,
        "evaluation_dataset": run.evaluation_dataset.name if run.evaluation_dataset else "",
        "evaluation_folder": run.evaluation_folder,
        "parameters": dict(run.parameters),
        "gpu": run.gpu,
        "max_run_seconds": run.max_run_seconds,
    }


def pipeline_run_create(
    *,
    project,
    user,
    name: str = "",
    start_at: datetime | None = None,
    zone: str = "",
    schedule=None,
    **inputs,
) -> PipelineRun:
    """Check every input, then store the run and enqueue it once the transaction commits (or,
    with `start_at`, keep it Scheduled until then; `zone` is the time zone it was given in).
    Nothing is stored on error."""
    fields = clean_run_inputs(project=project, **inputs)
    scheduled = start_at is not None and start_at > timezone.now()
    with transaction.atomic():
        run = PipelineRun.objects.create(
            project=project,
            name=(name or "").strip()[:200],
            status=PipelineRun.SCHEDULED if scheduled else PipelineRun.QUEUED,
            scheduled_for=start_at if scheduled else None,
            timezone=zone or (schedule.timezone if schedule else ""),
            created_by=user,
            schedule=schedule,
            **fields,
        )
        if not run.name:
            run.name = default_run_name(run)
            run.save(update_fields=["name"])
        transaction.on_commit(lambda: pipeline_run_enqueue(run=run))
    return run


def default_run_name(run) -> str:
    """The name of a run its user didn't name: package, version, type and its own number."""
    return f"{run.package.name}-{run.version.number}-{run.type}-{run.pk}"


def own_run_name(run) -> str:
    """The name the user gave the run, or "" when it has the default (which names its number,
    so a new run from it gets a default of its own)."""
    return "" if run.name == default_run_name(run) else run.name


def rq_moment(moment: datetime) -> datetime:
    """When to arm RQ's scheduler for `moment`: the start of its second. RQ keeps whole
    seconds and looks once a second, so rounding up could start a run two seconds late; this
    wakes the job up to a second early instead, and the job waits out the rest
    (`wait_for_moment`), so it starts within about a second of its moment, never before."""
    return moment.replace(microsecond=0)


def wait_for_moment(moment: datetime | float | None) -> None:
    """Sleep until `moment` (a datetime or epoch seconds), for a job RQ woke early (see
    rq_moment). At most a second: more would be a clock apart from the scheduler's, not RQ."""
    if moment is None:
        return
    if isinstance(moment, datetime):
        moment = moment.timestamp()
    time.sleep(min(max(0.0, moment - time.time()), EARLY_WAKE_SECONDS))


def pipeline_run_enqueue(*, run) -> None:
    """Hand a queued run to RQ (or arm RQ's scheduler for a scheduled one). The row stays the
    truth: if Redis is unreachable now, the sweeper enqueues it later."""
    job_id = f"pipeline-run-{run.pk}-{run.enqueue_count + 1}"
    options = {
        "job_id": job_id,
        # RQ's name; `timeout` would go to the run
        "job_timeout": run.max_run_seconds + JOB_TIMEOUT_SLACK_SECONDS,
        "result_ttl": JOB_RESULT_TTL_SECONDS,
        "failure_ttl": JOB_FAILURE_TTL_SECONDS,
        "description": f"pipeline run {run.pk}",
    }
    try:
        if run.status == PipelineRun.SCHEDULED:
            moment = run.scheduled_for
            queue.enqueue(
                run.queue,
                "pipelines.tasks.execute_run",
                run.pk,
                at=rq_moment(moment),
                not_before=moment.timestamp(),
                **options,
            )
        else:
            queue.enqueue(run.queue, "pipelines.tasks.execute_run", run.pk, **options)
    except Exception:  # Redis down: the run stays queued in the database, the sweeper retries
        logger.exception("could not enqueue pipeline run %s; the sweeper will retry", run.pk)
        return
    run.job_id, run.enqueue_count = job_id, run.enqueue_count + 1
    PipelineRun.objects.filter(pk=run.pk).update(
        job_id=job_id, enqueue_count=run.enqueue_count, enqueued_at=timezone.now()
    )


def pipeline_run_kill(*, run, user) -> PipelineRun:
    """Stop a scheduled, queued or running run: status Killed at once; a running one's worker
    sees it within a second and ends the user's whole process tree (SIGTERM, then SIGKILL)."""
    try:
        run, was_running = transitions.kill(run.pk, by=user.username)
    except ValueError as refused:
        raise ValidationError(str(refused)) from None
    if not was_running and run.job_id:
        transaction.on_commit(lambda: queue.cancel(run.queue, run.job_id))
    return run


def pipeline_run_retry(*, run, user) -> PipelineRun:
    """A new run with the same inputs (checked again: a dataset may have gone since) and the
    same name, unless it had the default one."""
    return pipeline_run_create(
        project=run.project, user=user, name=own_run_name(run), **run_inputs(run)
    )


def pipeline_run_delete(*, run) -> None:
    """Delete a finished run with its outputs (artifacts, snapshots, logs). Versions it produced
    stay; their lineage then says the run was deleted."""
    if not run.is_finished:
        raise ValidationError(
            f"Pipeline run {run.pk} is {run.get_status_display().lower()}; "
            "kill it or wait for it to finish before deleting it."
        )
    manifests = [m for m in (run.artifacts, run.snapshot, run.evaluation_snapshot) if m]
    with transaction.atomic():
        run.delete()
        for manifest in manifests:
            manifest_delete(manifest)


@dataclass
class When:
    """'When to run': now, at a moment, or recurring (every N units, or cron) in a time zone."""

    kind: str = "now"  # now | at | recurring
    at: datetime | None = None
    every: int | None = None
    unit: str = ""
    cron: str = ""
    timezone: str = "UTC"


def pipeline_start(*, project, user, when: When | None = None, name: str = "", **inputs):
    """The create form and the API's POST: a run now or at a moment, or a recurring schedule.
    Returns the PipelineRun, or the Schedule for recurring pipelines."""
    when = when or When()
    if when.kind == "recurring":
        from pipelines.schedules import schedule_create

        return schedule_create(project=project, user=user, when=when, name=name, inputs=inputs)
    if when.kind == "at" and when.at <= timezone.now() - timedelta(seconds=PAST_MOMENT_SECONDS):
        raise ValidationError({"schedule": "That moment has passed; pick a time in the future."})
    return pipeline_run_create(
        project=project,
        user=user,
        name=name,
        start_at=when.at,
        zone=when.timezone if when.kind == "at" else "",
        **inputs,
    )

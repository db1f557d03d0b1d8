"""Writes for pipeline runs. Views and the API both call these."""

import logging
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from core import queue
from core.errors import conflict
from core.manifests import manifest_delete
from core.services import RUN, require
from pipelines import transitions
from pipelines.events import run_event
from pipelines.inputs import clean_run_inputs, deleted_inputs, run_inputs
from pipelines.models import PipelineRun
from pipelines.run_values import default_run_name, run_params_index

logger = logging.getLogger(__name__)
# RQ's time limit for a run's job: the run's own limit plus this, so the runner's limit (which
# ends the run and says why) fires first.
JOB_TIMEOUT_SLACK_SECONDS = 3600
# RQ keeps no finished job (0: deleted as it ends): the run's row is the record, and at 80,000
# runs an hour an hour of finished jobs would be 80,000 hashes in Redis. A job that failed in
# RQ itself (never a failing package: the runner records those) is kept a day, to look at.
JOB_RESULT_TTL_SECONDS = 0
JOB_FAILURE_TTL_SECONDS = 24 * 3600


def pipeline_run_create(
    *,
    project,
    user,
    name: str = "",
    start_at: datetime | None = None,
    zone: str = "",
    schedule=None,
    retry_of=None,
    **inputs,
) -> PipelineRun:
    """Check every input, then store the run and enqueue it once the transaction commits (or,
    with `start_at`, keep it Scheduled until then; `zone` is the time zone it was given in).
    Nothing is stored on error. No role check: pipeline_start, Retry and a schedule's firing
    check who may start it. ML Logs: "created" by `user`, by the system for a schedule's
    firing, or "retried" (by `user`) when it is a new run of `retry_of`."""
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
            retry_of=retry_of,
            **fields,
        )
        if not run.name:
            run.name = default_run_name(run)
            run.save(update_fields=["name"])
        run_params_index(run)
        # on commit, queued first: a worker can start it while the event's webhooks are looked up
        transaction.on_commit(lambda: pipeline_run_enqueue(run=run))
        _record_created(run, user=user, schedule=schedule, retry_of=retry_of)
    return run


def _record_created(run, *, user, schedule, retry_of) -> None:
    what = f"{run.get_type_display()} of {run.package.name} {run.version.number}"
    if run.scheduled_for:
        what += f", scheduled for {run.scheduled_for:%Y-%m-%d %H:%M} UTC"
    if retry_of is not None:
        run_event(
            run,
            "retried",
            actor=user,
            message=f"Retry of pipeline {retry_of.pk}: {what}",
            data={"from": retry_of.pk},
        )
    elif schedule is not None:  # a firing: nobody clicked anything just now
        run_event(run, "created", message=f"{what}, by recurring pipeline {schedule.pk}")
    else:
        run_event(run, "created", actor=user, message=what)


def own_run_name(run) -> str:
    """The name the user gave the run, or "" when it has the default (which names its number,
    so a new run from it gets a default of its own)."""
    return "" if run.name == default_run_name(run) else run.name


def pipeline_run_enqueue(*, run, at_front: bool = False) -> None:
    """Hand a queued run to RQ (or arm RQ's scheduler for a scheduled one), at the back of its
    queue or, `at_front`, at its front. The row stays the truth: if Redis is unreachable now,
    the sweeper enqueues it later."""
    job_id = f"pipeline-run-{run.pk}-{run.enqueue_count + 1}"
    options = {
        "at_front": at_front,
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
                at=queue.rq_moment(moment),
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
    require(user=user, project=run.project, need=RUN)
    try:
        run, was_running = transitions.kill(run.pk, by=user)
    except ValueError as refused:
        raise conflict(str(refused)) from None
    if not was_running and run.job_id:
        transaction.on_commit(lambda: queue.cancel(run.queue, run.job_id))
    return run


def pipeline_run_retry(*, run, user) -> PipelineRun:
    """A new run with the same inputs (checked again: a dataset may have gone since) and the
    same name, unless it had the default one."""
    require(user=user, project=run.project, need=RUN)
    if gone := deleted_inputs(run):
        # by name, a retry would take another package or dataset that has the name since
        raise conflict(
            f"Pipeline run {run.pk} can't be retried: it read {' and '.join(gone)}, deleted "
            "since. Start a new run with other inputs."
        )
    return pipeline_run_create(
        project=run.project, user=user, name=own_run_name(run), retry_of=run, **run_inputs(run)
    )


def pipeline_run_delete(*, run, user) -> None:
    """Delete a finished run with its outputs (artifacts, snapshots, logs). Versions it produced
    stay; their lineage then says the run was deleted."""
    require(user=user, project=run.project, need=RUN)
    if not run.is_finished:
        raise conflict(
            f"Pipeline run {run.pk} is {run.get_status_display().lower()}; "
            "kill it or wait for it to finish before deleting it."
        )
    manifests = [m for m in (run.artifacts, run.snapshot, run.evaluation_snapshot) if m]
    with transaction.atomic():
        run_event(run, "deleted", actor=user, message=run.name, url=False)
        run.delete()
        for manifest in manifests:
            manifest_delete(manifest)

"""Every change of a pipeline run's status happens here, and only here.

As NetBox's Job.start()/terminate(): each transition is one conditional UPDATE, or one
transaction with the run's row locked, and says whether it happened. A worker, a person who
kills the run and the sweeper may act at the same moment: exactly one of them wins, and the
others learn it from the answer instead of overwriting it.

    Scheduled → Queued → (Packaging ⇄ Running) → Successful | Failed | Killed

A run's creation (Scheduled or Queued) is its service's (pipeline_run_create).

The transitions that start and end a run write its ML Logs event (pipelines.events) in their
own transaction, and only when they happen: of a kill and a worker's finish of the same run,
only the one that wins records an end.
"""

import json
import os
import socket

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from core.database import retry_when_locked
from pipelines.events import run_ended, run_event
from pipelines.models import PipelineRun
from pipelines.results import results_json

# Not yet claimed by a worker: Packaging without a start is a run whose environment another job
# is building (the build ahead at upload, or another run's).
UNCLAIMED = Q(status__in=[PipelineRun.QUEUED, PipelineRun.SCHEDULED]) | Q(
    status=PipelineRun.PACKAGING, started_at__isnull=True
)


def claim(run, *, status: str) -> bool:
    """Unclaimed → Packaging (its environment must be built first) or Running, by this worker,
    unless someone killed or deleted it first. Sets the run's fields only when it won, and
    then records "started" (`run.project` must be loaded) in the UPDATE's transaction."""
    now = timezone.now()
    worker = f"{socket.gethostname()}:{os.getpid()}"
    devices = settings.CUDA_VISIBLE_DEVICES if run.gpu and run.queue == "gpu" else ""

    def write():
        with transaction.atomic():
            updated = PipelineRun.objects.filter(UNCLAIMED, pk=run.pk).update(
                status=status, started_at=now, heartbeat_at=now, worker=worker, gpu_devices=devices
            )
            if updated:
                run_event(run, "started", message=f"Started on {worker}", data={"worker": worker})
        return updated

    claimed = retry_when_locked(write)
    if claimed:
        run.status, run.started_at, run.worker, run.gpu_devices = status, now, worker, devices
    return bool(claimed)


def packaging(run_id: int) -> bool:
    """Running → Packaging: its worker found it must build the environment first."""
    return _move(run_id, PipelineRun.RUNNING, PipelineRun.PACKAGING)


def running(run_id: int) -> bool:
    """Packaging → Running: the environment is there."""
    return _move(run_id, PipelineRun.PACKAGING, PipelineRun.RUNNING)


def due(run_id: int) -> bool:
    """Scheduled → Queued: its moment passed while nobody listened (the sweeper re-enqueues)."""
    return _move(run_id, PipelineRun.SCHEDULED, PipelineRun.QUEUED)


def waiting_for_build(environment_key: str) -> int:
    """Queued runs of versions with this environment → Packaging, while another job builds it;
    their own jobs claim them when it is ready. Returns how many moved."""
    return retry_when_locked(
        lambda: PipelineRun.objects.filter(
            status=PipelineRun.QUEUED, version__environment_builds__key=environment_key
        ).update(status=PipelineRun.PACKAGING)
    )


def build_started(sender, key, **kwargs) -> None:
    """An environment is being built (environments.builds.environment_building): the runs that
    wait for it show Packaging."""
    waiting_for_build(key)


def _move(run_id: int, source: str, target: str) -> bool:
    return bool(
        retry_when_locked(
            lambda: PipelineRun.objects.filter(pk=run_id, status=source).update(status=target)
        )
    )


def kill(run_id: int, *, by):
    """Anything unfinished → Killed, at once, by the user `by` (recorded as "killed", their
    act). Returns (the run, whether a worker had claimed it: that worker then stops the
    package's processes and writes the results). Raises PipelineRun.DoesNotExist, or
    ValueError with the reason when it has already finished."""
    with transaction.atomic():
        run = (
            PipelineRun.objects.select_for_update(of=("self",))
            .select_related("project", "package", "version")
            .get(pk=run_id)
        )
        if run.is_finished:
            raise ValueError(
                f"Pipeline run {run.pk} is already {run.get_status_display().lower()}; "
                "there is nothing to kill."
            )
        claimed = run.started_at is not None and run.status in (
            PipelineRun.PACKAGING,
            PipelineRun.RUNNING,
        )
        run.status = PipelineRun.KILLED
        run.finished_at = timezone.now()
        run.failure_reason = f"killed by {by.get_username()}"
        fields = ["status", "finished_at", "failure_reason"]
        if not claimed:  # no worker will write its results
            run.results_text = _results(run)
            fields.append("results_text")
        run.save(update_fields=fields)
        run_ended(run, actor=by, action="killed")
    return run, claimed


def finish(run, *, status: str, reason: str = "", new_version=None):
    """The run's worker ends it: Successful, Failed or Killed, with its outputs (already set
    on `run`), in one transaction with the row locked. An end that came first keeps its
    status, reason and time: a kill, or the sweeper's "worker lost" when this worker was cut
    off for a while and came back. Then `new_version()` is not called: nothing of a killed or
    failed run becomes a version. Returns the final (status, reason), or None if the run was
    deleted meanwhile. A locked database is waited out: the whole transaction is tried again.
    Records "finished" (by the system) only when this is the end that counts: an earlier end
    recorded its own."""

    def record():
        with transaction.atomic():
            current = (
                PipelineRun.objects.select_for_update()
                .filter(pk=run.pk)
                .values_list("status", "failure_reason", "finished_at")
                .first()
            )
            if current is None:
                return None
            if current[0] == PipelineRun.SUCCESSFUL:
                # only its worker ends a run so: this end, committed by an earlier try whose
                # answer was lost with its connection (outages.during_outage tries again)
                return current[0], current[1]
            final, why = status, reason
            ended_earlier = current[0] in PipelineRun.FINISHED
            if ended_earlier:  # killed, or found lost, meanwhile
                final, why, run.finished_at = current
                run.snapshot = run.evaluation_snapshot = run.score = None
            elif new_version is not None and status == PipelineRun.SUCCESSFUL:
                run.trained_version = new_version()  # stored on the version; cached here
            run.status, run.failure_reason = final, why
            run.finished_at = run.finished_at or timezone.now()
            run.results_text = _results(run)
            PipelineRun.objects.filter(pk=run.pk).update(
                status=final,
                failure_reason=why,
                finished_at=run.finished_at,
                phases=run.phases,
                results_text=run.results_text,
                artifacts=run.artifacts,
                snapshot=run.snapshot,
                evaluation_snapshot=run.evaluation_snapshot,
                score=run.score,
            )
            if not ended_earlier:
                run_ended(run)
            return final, why

    return retry_when_locked(record)


def lost(run, *, reason: str):
    """The sweeper ends a run whose worker or job is gone: Failed, if it is still in the state
    the sweeper saw. Returns the ended run, or None when something else moved it first."""
    with transaction.atomic():
        locked = (
            PipelineRun.objects.select_for_update(of=("self",))
            .select_related("project", "package", "version", "dataset", "evaluation_dataset")
            .filter(pk=run.pk, status=run.status)
            .first()
        )
        if locked is None:
            return None
        locked.status, locked.failure_reason = PipelineRun.FAILED, reason
        locked.finished_at = timezone.now()
        locked.results_text = _results(locked)
        locked.save(update_fields=["status", "failure_reason", "finished_at", "results_text"])
        run_ended(locked)
    return locked


def _results(run) -> str:
    return json.dumps(results_json(run), indent=2, ensure_ascii=False)

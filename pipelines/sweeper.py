"""Runs that never get stuck. Every worker calls sweep() every few seconds (one at a time, under
a Redis lock); it only needs the database and Redis, so any worker on any machine can do it.

- a running run whose heartbeat stopped (its worker was SIGKILLed or its machine lost power)
  ends Failed with reason "worker lost"; unless its worker says it is alive but can't reach
  the database (outages.py): then it waits, up to AICENTER_DATABASE_OUTAGE_SECONDS, and past
  that ends Failed saying the database was unreachable;
- a queued run whose job vanished from Redis (Redis restarted empty, or enqueueing failed) is
  enqueued again, at the front of its queue and oldest first, so runs keep their order; lost
  three times while Redis and the database were there, it ends Failed saying so (a loss an
  outage may explain is not counted);
- schedules whose wake-up RQ lost are re-armed, and missed firings happen now;
- workspaces that finished runs left on this machine (their removal failed) are removed, and
  so are those of sandboxes started ahead by workers that are gone, and the disks of runs'
  workspaces (sandbox/disks.py) that killed workers left mounted; then the sandbox uids their
  holders could not give back are given back, once nothing of theirs is left;
- then the chores other apps registered (core/housekeeping.py): lost webhook deliveries
  queued again, ML Logs past their retention deleted, unreferenced storage reclaimed.
"""

import logging
import os
import signal
import socket
from datetime import timedelta

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from core import housekeeping, queue
from core.processes import process_alive
from pipelines import outages, transitions
from pipelines.logs import RunLog
from pipelines.models import PipelineRun, Schedule
from pipelines.runner import ahead
from pipelines.schedules import schedule_arm, schedule_fire
from pipelines.services import pipeline_run_enqueue
from sandbox import disks, sandbox_uids
from sandbox.sandbox import remove_leftovers
from sandbox.workspace import Workspace, workspace_folders

logger = logging.getLogger(__name__)
# A queued run whose job vanished this many times while nothing was down ends Failed.
MAX_LOSSES = 3
# A run created this recently may not have reached Redis yet (its enqueue waits for the commit):
# not lost, just young.
ENQUEUE_SETTLE_SECONDS = 5
# A scheduled run still Scheduled this long after its moment: RQ's scheduler lost its job.
SCHEDULED_OVERDUE_SECONDS = 10
# A recurring pipeline's firing missed by this much (every process down, or Redis forgot it)
# happens now rather than waiting for RQ.
SCHEDULE_MISSED_SECONDS = 30


def sweep() -> None:
    # Short-lived: a worker killed while sweeping must not stop the others for long.
    timeout = max(2, 2 * settings.PIPELINE_SWEEP_SECONDS)
    lock = queue.lock("aicenter:sweep", timeout=timeout)
    if not lock.acquire(blocking=False):
        return  # another worker is sweeping right now
    try:
        fail_lost_runs()
        requeue_vanished_runs()
        arm_schedules()
        remove_finished_workspaces()
        remove_ahead_leftovers()
        remove_lost_disks()
        sandbox_uids.release_left()
        housekeeping.run_chores()
    finally:
        try:
            lock.release()
        except Exception:  # noqa: BLE001 - expired: harmless
            pass


def _end_lost(run, reason) -> bool:
    ended = transitions.lost(run, reason=reason)
    if ended is None:
        return False
    log = RunLog(ended)
    log.platform(f"Failed: {reason}")
    log.flush()
    return True


def fail_lost_runs() -> None:
    stale = timezone.now() - timedelta(seconds=settings.PIPELINE_LOST_AFTER_SECONDS)
    lost = list(
        PipelineRun.objects.filter(
            status__in=[PipelineRun.RUNNING, PipelineRun.PACKAGING], heartbeat_at__lt=stale
        )
    )
    cut_off = outages.workers_unreachable(run.worker for run in lost)
    for run in lost:
        if run.worker in cut_off and cut_off[run.worker] is None:
            continue  # its worker is alive, waiting for the database: not lost
        reason = _lost_reason(run, cut_off.get(run.worker))
        # leftovers first, as a worker removes its workspace before the final status: once a
        # run shows Failed, nothing of it is left on this machine
        _kill_leftovers(run)
        if _end_lost(run, reason):
            logger.warning("pipeline run %s: %s", run.pk, reason)


def _lost_reason(run, cut_off) -> str:
    """Why a run whose heartbeat stopped has ended: its worker died, or (`cut_off`, a
    DatabaseUnreachable) said it can't reach the database, for longer than it waits."""
    if cut_off is not None:
        return cut_off.reason
    silent = (timezone.now() - run.heartbeat_at).total_seconds()
    return (
        f"worker lost: {run.worker or 'its worker'} stopped sending heartbeats "
        f"{silent:.0f} s ago (killed, or its machine went down)"
    )


def _kill_leftovers(run) -> None:
    """If the lost run was on this machine: end its processes still alive and remove its
    workspace, so a crashed worker's disk does not grow."""
    if run.worker.rsplit(":", 1)[0] != socket.gethostname():
        return
    if run.process_group:
        try:
            os.killpg(run.process_group, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    for workspace in workspace_folders(f"run-{run.pk}-*"):
        remove_leftovers(workspace.name)  # its sandbox's cgroup bears the workspace's name
        Workspace(workspace).remove()


def remove_finished_workspaces() -> None:
    """Workspaces on this machine of runs that finished here: their worker's removal failed
    (a busy mount, say) and is tried again now. Nothing of a run still going is touched, nor of
    a run another machine ran, nor of a run this database does not know."""
    folders = {}
    for folder in workspace_folders("run-*-*"):  # run-<id>-<random>, see Workspace
        run_id = folder.name.split("-")[1]
        if run_id.isdigit():
            folders.setdefault(int(run_id), []).append(folder)
    if not folders:
        return
    finished = PipelineRun.objects.filter(pk__in=folders, status__in=PipelineRun.FINISHED)
    for run_id, worker in finished.values_list("pk", "worker"):
        if worker.rsplit(":", 1)[0] != socket.gethostname():
            continue
        for folder in folders[run_id]:
            remove_leftovers(folder.name)  # any process still in its sandbox's cgroup
            if Workspace(folder).remove():
                logger.warning("removed the workspace %s left by run %s", folder.name, run_id)


def remove_ahead_leftovers() -> None:
    """Sandboxes started ahead by workers of this machine that are gone (runner/ahead.py):
    bwrap ended with its worker, its workspace and cgroup are left."""
    for folder in workspace_folders(f"{ahead.KIND}-*-*"):  # ahead-<pid>-<random>
        pid = folder.name.split("-")[1]
        if pid.isdigit() and not process_alive(int(pid)):
            remove_leftovers(folder.name)
            Workspace(folder).remove()


def remove_lost_disks() -> None:
    """Disks of runs' workspaces whose worker was killed: the processes of the sandboxes
    they held ended (their cgroups), unmounted, their loop devices detached, deleted."""
    for image, mount in disks.lost_disks():
        for folder in mount.glob("*-*-*") if mount.is_dir() else ():  # its workspaces
            remove_leftovers(folder.name)  # a sandbox's cgroup bears its workspace's name
        disks.reclaim(image, mount)
        logger.warning("removed the disk %s left by a worker that is gone", image.name)


def requeue_vanished_runs() -> None:
    settle = timezone.now() - timedelta(seconds=ENQUEUE_SETTLE_SECONDS)
    overdue = timezone.now() - timedelta(seconds=SCHEDULED_OVERDUE_SECONDS)
    # every waiting run is looked at every sweep: a narrow read of them all, then one question
    # to Redis for all their jobs, and only the lost ones are read whole
    waiting = PipelineRun.objects.filter(transitions.UNCLAIMED, created_at__lt=settle)
    waiting = list(waiting.values_list("pk", "queue", "job_id", "status", "scheduled_for"))
    alive = queue.jobs_alive([(queue_name, job_id) for _, queue_name, job_id, _, _ in waiting])
    lost = [
        pk
        for pk, _, job_id, status, scheduled_for in waiting
        if job_id not in alive or (status == PipelineRun.SCHEDULED and scheduled_for < overdue)
    ]
    if not lost:
        return
    runs = (
        PipelineRun.objects.filter(transitions.UNCLAIMED, pk__in=lost)
        .select_related("project", "package", "version", "dataset", "evaluation_dataset")
        .order_by("created_at", "pk")
    )
    outage = outages.last_outage()
    again = []
    for run in runs:
        counted = run.job_id not in alive and _lost_while_up(run, outage)
        if counted and run.lost_count + 1 >= MAX_LOSSES:
            _end_lost(
                run,
                f"its job was lost from Redis {run.lost_count + 1} times; "
                "use Retry to start it again",
            )
            continue
        logger.warning(
            "pipeline run %s lost its job %r (or is late): enqueueing it again%s",
            run.pk,
            run.job_id,
            "" if counted else " (not counted: an outage may explain it)",
        )
        if counted:
            PipelineRun.objects.filter(pk=run.pk).update(lost_count=F("lost_count") + 1)
        if run.status == PipelineRun.SCHEDULED and run.scheduled_for <= timezone.now():
            if transitions.due(run.pk):  # its moment passed while nobody listened
                run.status = PipelineRun.QUEUED
        again.append(run)
    # each at the front of its queue, the newest first, so the oldest is taken first: runs
    # that waited longest (before the runs queued since) go first, in their order
    for run in reversed(again):
        pipeline_run_enqueue(run=run, at_front=True)


def _lost_while_up(run, outage: float) -> bool:
    """Was the run's job lost while Redis and the database were there? Not if it was never
    enqueued (Redis was away when it was created), nor enqueued before the last outage
    (Redis restarted, or a worker found the database unreachable: it may have gone with it)."""
    return run.enqueued_at is not None and run.enqueued_at.timestamp() > outage


def arm_schedules() -> None:
    for schedule in Schedule.objects.filter(paused=False, next_run_at__isnull=False):
        if schedule.next_run_at <= timezone.now() - timedelta(seconds=SCHEDULE_MISSED_SECONDS):
            # missed while every process was down (or Redis forgot it): fire it now
            schedule_fire(schedule.pk, int(schedule.next_run_at.timestamp()))
            continue
        if not schedule.job_id or not queue.job_exists("pipelines", schedule.job_id):
            schedule_arm(schedule)

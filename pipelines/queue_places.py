"""Where a queued run stands: the workers that could take it and the runs ahead of it."""

import zoneinfo

import redis
from django.db.models import Q

from core import queue as queues
from pipelines.models import PipelineRun
from pipelines.worker_counts import live_worker_count, waiting_workers


def queue_worker_count(queue: str) -> int:
    """Live workers listening on `queue`: not those that died without unregistering. Counted
    once every few seconds per process (pipelines/worker.py), not at each page's poll."""
    try:
        return live_worker_count(queues.connection(queue), queue)
    except redis.exceptions.RedisError:  # Redis away: we can't tell
        return -1


def queue_waiting_workers(queue: str) -> list[str]:
    """Why the live workers on `queue` that take no job wait (their data disk is low)."""
    try:
        return waiting_workers(queues.connection(queue), queue)
    except redis.exceptions.RedisError:
        return []


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
        if waiting := queue_waiting_workers(run.queue):  # there are workers, but they can't
            return waiting[0]
        if run.queue == "gpu":
            return "waiting for a GPU worker (none is serving the gpu queue)"
        return f"waiting for a worker (none is serving the {run.queue} queue)"
    return None


def queue_place(run, worker_counts: dict | None = None) -> dict | None:
    """Where a queued run stands on its queue, when workers serve it: the runs queued ahead of
    it (this project's by number; other projects' only counted, they are not the user's to
    see), and how many runs its workers are busy with. None when no worker serves the queue
    (waiting_for says so) or the run is not queued. Pass one dict for many runs (as to
    waiting_for): each queue's workers and line are then read once."""
    if run.status != PipelineRun.QUEUED:
        return None
    counts = {} if worker_counts is None else worker_counts
    if run.queue not in counts:
        counts[run.queue] = queue_worker_count(run.queue)
    if counts[run.queue] <= 0:  # none (or Redis away: -1)
        return None
    if ("line", run.queue) not in counts:
        counts["line", run.queue] = _line(run.queue)
    line, busy = counts["line", run.queue]
    mine = run.enqueued_at or run.created_at
    ahead = [
        (pk, project)
        for pk, project, enqueued_at, created_at in line
        if pk != run.pk and (enqueued_at < mine if enqueued_at else created_at < mine)
    ]
    return {
        "ahead": [pk for pk, project in ahead if project == run.project_id],
        "others": sum(1 for _, project in ahead if project != run.project_id),
        "busy": busy,
        "workers": counts[run.queue],
    }


def _line(queue: str) -> tuple[list[tuple], int]:
    """The runs waiting on `queue` in their order, and how many its workers are busy with."""
    live = PipelineRun.objects.filter(
        status__in=(PipelineRun.QUEUED, PipelineRun.PACKAGING, PipelineRun.RUNNING), queue=queue
    )
    # a Packaging run no worker has taken yet waits for a build, in line like a queued one
    waiting = Q(status=PipelineRun.QUEUED) | Q(status=PipelineRun.PACKAGING, started_at=None)
    line = live.filter(waiting).order_by("enqueued_at", "pk")
    fields = ("pk", "project_id", "enqueued_at", "created_at")
    return list(line.values_list(*fields)), live.exclude(waiting).count()

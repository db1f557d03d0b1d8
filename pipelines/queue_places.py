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


def queue_place(run) -> dict | None:
    """Where a queued run stands on its queue, when workers serve it: the runs queued ahead of
    it (this project's by number; other projects' only counted, they are not the user's to
    see), and how many runs its workers are busy with. None when no worker serves the queue
    (waiting_for says so) or the run is not queued."""
    if run.status != PipelineRun.QUEUED:
        return None
    workers = queue_worker_count(run.queue)
    if workers <= 0:  # none (or Redis away: -1)
        return None
    others = PipelineRun.objects.filter(
        status__in=(PipelineRun.QUEUED, PipelineRun.PACKAGING, PipelineRun.RUNNING),
        queue=run.queue,
    ).exclude(pk=run.pk)
    # a Packaging run no worker has taken yet waits for a build, in line like a queued one
    waiting = Q(status=PipelineRun.QUEUED) | Q(status=PipelineRun.PACKAGING, started_at=None)
    mine = run.enqueued_at or run.created_at
    ahead = list(
        others.filter(waiting)
        .filter(Q(enqueued_at__lt=mine) | Q(enqueued_at=None, created_at__lt=mine))
        .order_by("enqueued_at", "pk")
        .values_list("pk", "project_id")
    )
    return {
        "ahead": [pk for pk, project in ahead if project == run.project_id],
        "others": sum(1 for _, project in ahead if project != run.project_id),
        "busy": others.exclude(waiting).count(),
        "workers": workers,
    }

"""The only module that talks to RQ (the workers' own class aside, pipelines/worker.py).

Jobs are named by dotted path ("pipelines.tasks.execute_run"), so nothing imports tasks.py and
no import circle runs through it. Redis is only a transport: the run or schedule row stays the
truth, and the sweeper repairs what Redis forgot. With settings.PIPELINE_QUEUE_IMMEDIATE, jobs
run in the calling process at once instead (NetBox's immediate=True), for tests.
"""

import logging
import time
from datetime import datetime

import django_rq
from django.conf import settings
from django.utils.module_loading import import_string
from rq.job import Job, JobStatus
from rq.utils import as_text

logger = logging.getLogger(__name__)
# A job in one of these states will never run again.
DEAD_JOB = {JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED}
# RQ wakes a scheduled job up to a second early (rq_moment); the job waits out at most this
# much: more would be a clock apart from the scheduler's.
EARLY_WAKE_SECONDS = 1.0


def enqueue(queue: str, function: str, *args, at: datetime | None = None, **options) -> None:
    """Queue `function` (a dotted path) with `args` on `queue`, or for the moment `at` (RQ's
    scheduler, which every worker runs, wakes it then). `options` are RQ's (job_id,
    job_timeout, result_ttl, failure_ttl, description, at_front) plus keyword arguments of the
    function.
    Raises when Redis can't be reached: the caller says what happens then."""
    if getattr(settings, "PIPELINE_QUEUE_IMMEDIATE", False):
        rq_options = {
            *("job_id", "job_timeout", "result_ttl", "failure_ttl", "description", "at_front")
        }
        import_string(function)(*args, **{k: v for k, v in options.items() if k not in rq_options})
        return
    rq_queue = django_rq.get_queue(queue, connection=connection(queue))
    if at is None:
        rq_queue.enqueue(function, *args, **options)
    else:
        rq_queue.enqueue_at(at, function, *args, **options)


def jobs_alive(jobs: list[tuple[str, str]]) -> set[str]:
    """Which of these (queue, job id) are still in Redis and able to run (queued, scheduled,
    started)? One round trip per Redis, however many jobs: the sweeper asks for every queued
    run. Raises when Redis can't be reached."""
    by_queue = {}
    for queue_name, job_id in jobs:
        if job_id:
            by_queue.setdefault(queue_name, []).append(job_id)
    alive = set()
    for queue_name, job_ids in by_queue.items():
        with connection(queue_name).pipeline(transaction=False) as commands:
            for job_id in job_ids:
                commands.hget(Job.key_for(job_id), "status")
            statuses = commands.execute()
        alive |= {
            job_id
            for job_id, status in zip(job_ids, statuses, strict=True)
            if status is not None and JobStatus(as_text(status)) not in DEAD_JOB
        }
    return alive


def job_exists(queue: str, job_id: str) -> bool:
    try:
        Job.fetch(job_id, connection=connection(queue))
        return True
    except Exception:  # noqa: BLE001 - gone, or Redis away
        return False


def cancel(queue: str, job_id: str) -> None:
    """Take a job out of its queue (it may have gone already: fine)."""
    try:
        Job.fetch(job_id, connection=connection(queue)).cancel()
    except Exception:  # noqa: BLE001 - gone already, or Redis away: the claim check still holds
        logger.info("job %s not cancelled", job_id)


def lock(name: str, *, timeout: float):
    """A lock in Redis shared by every worker (e.g. one sweep at a time)."""
    return connection("pipelines").lock(name, timeout=timeout)


def connection(queue: str):
    """The Redis client of `queue`, one per process and queue settings: django_rq makes a new
    client at each call, and with it a new connection to Redis (one per API submit, per run)."""
    config = settings.RQ_QUEUES[queue]
    key = (queue, repr(sorted(config.items())))  # tests change the settings
    client = _clients.get(key)
    if client is None:
        client = _clients[key] = django_rq.get_connection(queue)
    return client


_clients = {}


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

"""The only module that talks to RQ (the workers' own class aside, pipelines/worker.py).

Jobs are named by dotted path ("pipelines.tasks.execute_run"), so nothing imports tasks.py and
no import circle runs through it. Redis is only a transport: the run or schedule row stays the
truth, and the sweeper repairs what Redis forgot. With settings.PIPELINE_QUEUE_IMMEDIATE, jobs
run in the calling process at once instead (NetBox's immediate=True), for tests.

Jobs in Redis are JSON, signed (core.signatures), never pickled: whoever can write to Redis
can't run code on a worker. RQ reads and writes every job of the platform through JobSerializer
(settings.RQ_QUEUES, the worker and its scheduler, the sweeper's checks, django-rq's pages, and
RQ's own default, below), and a worker refuses a job whose signature doesn't verify before it
parses a byte of it (job_refusal).
"""

import functools
import json
import logging
import time
from datetime import datetime

import django_rq
from django.conf import settings
from django.utils.module_loading import import_string
from rq import serializers
from rq.job import Job, JobStatus
from rq.utils import as_text

from core.signatures import BadSignature, sign, verified

logger = logging.getLogger(__name__)
# A job in one of these states will never run again.
DEAD_JOB = {JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED}
# Any other: a status RQ doesn't know (someone else wrote it) is no job that will run.
LIVE_JOB = {status.value for status in JobStatus} - {status.value for status in DEAD_JOB}
# What jobs are signed for (core.signatures): a job's data, meta and result.
SIGNED_FOR = "rq-job"
# Fields of a job's hash that RQ acts on but no serializer covers: the names of callbacks it
# imports and calls, the URLs of webhooks it requests. The platform sets none.
UNSIGNED_ACTIONS = {
    "success_callback_name",
    "failure_callback_name",
    "stopped_callback_name",
    "webhooks",
}


class JobSerializer:
    """RQ's serializer for every job of the platform (its data, meta and result): JSON, signed.
    loads() checks the signature before it parses anything, so a job someone else wrote into
    Redis is refused, not run (RQ's default, pickle, runs code as it reads)."""

    @staticmethod
    def dumps(obj) -> bytes:
        return sign(json.dumps(obj, separators=(",", ":")).encode(), to=SIGNED_FOR)

    @staticmethod
    def loads(data: bytes):
        return json.loads(verified(data, to=SIGNED_FOR))


def job_refusal(job: Job) -> str | None:
    """Why a worker must not run `job` (its signature doesn't verify), or None. Checks the
    signature of the job's data as RQ stored it, without parsing it."""
    try:
        verified(job.data, to=SIGNED_FOR)
    except BadSignature:
        return "its signature doesn't verify (not queued by this installation)"
    return None


def _without_unsigned_actions(restore):
    @functools.wraps(restore)
    def restore_without_unsigned_actions(job, raw_data):
        restore(job, {k: v for k, v in raw_data.items() if as_text(k) not in UNSIGNED_ACTIONS})

    return restore_without_unsigned_actions


# RQ as every process of the platform runs it (pipelines/apps.py imports this module first).
# RQ falls back to pickle wherever a caller names no serializer (django-rq's "delete all failed
# jobs" and started-jobs pages, rq's Execution.job and Group.get_jobs): JobSerializer instead.
serializers.DefaultSerializer.dumps = staticmethod(JobSerializer.dumps)
serializers.DefaultSerializer.loads = staticmethod(JobSerializer.loads)
# And RQ imports and calls the callbacks a job's hash names, and requests its webhooks, also
# from the cleanups of abandoned jobs that the worker and django-rq's pages start, whatever the
# job class: the ones found in Redis were written by someone else, and are not read.
Job.restore = _without_unsigned_actions(Job.restore)

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
    rq_queue = django_rq.get_queue(queue, connection=connection(queue), serializer=JobSerializer)
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
            if status is not None and as_text(status) in LIVE_JOB
        }
    return alive


def job_exists(queue: str, job_id: str) -> bool:
    try:
        fetch(queue, job_id)
        return True
    except Exception:  # noqa: BLE001 - gone, or Redis away
        return False


def cancel(queue: str, job_id: str) -> None:
    """Take a job out of its queue (it may have gone already: fine)."""
    try:
        fetch(queue, job_id).cancel()
    except Exception:  # noqa: BLE001 - gone already, or Redis away: the claim check still holds
        logger.info("job %s not cancelled", job_id)


def fetch(queue: str, job_id: str) -> Job:
    """The job `job_id` of `queue` (RQ's NoSuchJobError if it is gone)."""
    return Job.fetch(job_id, connection=connection(queue), serializer=JobSerializer)


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

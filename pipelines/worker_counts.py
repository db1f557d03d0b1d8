"""Which RQ workers are alive, and how many take jobs on a queue: for the run pages (which
say "waiting for a worker") and for the workers' own sweep. Apart from pipelines/worker.py so
that a web process counting workers does not load the worker class and the runner with it."""

import logging
import socket
import time
from datetime import UTC, datetime

from django.conf import settings
from rq import worker_registration
from rq.utils import as_text, utcparse

from core.processes import process_alive

logger = logging.getLogger(__name__)

# A worker beats every 5 s (pipelines/worker.py); one silent this long is dead, even on another
# machine whose clock is some seconds off ours. RQ itself forgets it only when its key
# expires (80 s).
WORKER_SILENT_SECONDS = 30

# Pages poll every second: each process counts a queue's workers at most this often, unless a
# worker registers or unregisters meanwhile (one cheap SCARD per poll notices that).
WORKER_COUNT_KEPT_SECONDS = 5

# The field of a worker's hash in Redis that says why it takes no job ("" when it takes them).
WAITING_FIELD = "aicenter_waiting"


# Which workers are alive. RQ lists a worker from its birth until it unregisters; one that died
# without unregistering stays listed until its key expires, and would hide "waiting for a GPU
# worker" meanwhile. These tell the living from the dead, for the pages and for the sweep.


def _registered_workers(connection, *queues: str) -> dict:
    """{worker key: (last heartbeat, hostname, pid, why it waits)} of the workers RQ lists on
    `queues` (on any queue, and in its list of all workers, when none is given): one listing
    and one pipelined read, however many workers there are."""
    lists = [worker_registration.WORKERS_BY_QUEUE_KEY % queue for queue in queues]
    if not queues:
        lists = [worker_registration.REDIS_WORKER_KEYS] + [
            worker_registration.WORKERS_BY_QUEUE_KEY % queue for queue in settings.RQ_QUEUES
        ]
    keys = sorted(as_text(key) for key in connection.sunion(lists))
    with connection.pipeline(transaction=False) as commands:
        for key in keys:
            commands.hmget(key, "last_heartbeat", "hostname", "pid", WAITING_FIELD)
        facts = commands.execute()
    return {
        key: tuple(None if value is None else as_text(value) for value in row)
        for key, row in zip(keys, facts, strict=True)
    }


def _alive(facts, now: datetime) -> bool:
    beat, hostname, pid, _ = facts
    if beat is None:
        return False  # its key expired: RQ's own sign of a dead worker
    if (now - utcparse(beat)).total_seconds() > WORKER_SILENT_SECONDS:
        return False
    if hostname == socket.gethostname() and pid:  # this machine: ask the kernel
        return process_alive(int(pid))
    return True


# queue -> (monotonic time counted, workers registered then, live workers taking jobs, why
# the others wait)
_counts = {}


def live_worker_count(connection, queue: str) -> int:
    """Workers alive on `queue` and taking jobs, counted at most every
    WORKER_COUNT_KEPT_SECONDS in this process, or at once when one has registered or
    unregistered since."""
    return _worker_counts(connection, queue)[0]


def waiting_workers(connection, queue: str) -> list[str]:
    """Why the live workers on `queue` that take no job wait (e.g. for disk space)."""
    return _worker_counts(connection, queue)[1]


def _worker_counts(connection, queue: str) -> tuple[int, list[str]]:
    registered = connection.scard(worker_registration.WORKERS_BY_QUEUE_KEY % queue)
    counted_at, was_registered, live, waiting = _counts.get(queue, (None, None, 0, []))
    if (
        counted_at is not None
        and was_registered == registered
        and time.monotonic() - counted_at < WORKER_COUNT_KEPT_SECONDS
    ):
        return live, waiting
    now = datetime.now(UTC)
    alive = [f for f in _registered_workers(connection, queue).values() if _alive(f, now)]
    live = sum(not facts[3] for facts in alive)
    waiting = sorted(facts[3] for facts in alive if facts[3])
    _counts[queue] = (time.monotonic(), registered, live, waiting)
    return live, waiting


def forget_worker_counts() -> None:
    """Count every queue's workers afresh at the next ask (for tests)."""
    _counts.clear()


def prune_dead_workers(connection) -> list[str]:
    """Take workers that died without unregistering out of RQ's lists of workers (all, and
    each queue's), as RQ's clean_worker_registry does for expired keys but without waiting for
    them to expire. A live PipelineWorker judged dead registers again at its next beat."""
    now = datetime.now(UTC)
    registered = _registered_workers(connection)
    dead = [key for key, facts in registered.items() if not _alive(facts, now)]
    if not dead:
        return []
    with connection.pipeline() as commands:
        commands.srem(worker_registration.REDIS_WORKER_KEYS, *dead)
        for queue in settings.RQ_QUEUES:
            commands.srem(worker_registration.WORKERS_BY_QUEUE_KEY % queue, *dead)
        commands.execute()
    logger.warning("unregistered workers that died without saying so: %s", ", ".join(dead))
    return dead

"""Database and Redis outages, as workers live through them: waited out, not failures.

A database restart, a failover or a network cut of some seconds must not fail a healthy run,
nor cost the jobs queued meanwhile. So a worker:

- retries its run's writes (its status, the finishing transaction…) with a pause that doubles
  up to a few seconds, for at most AICENTER_DATABASE_OUTAGE_SECONDS (`during_outage`); its
  log and metrics stay buffered meanwhile; past that bound the run fails, saying why;
- tells the other workers, through Redis, that it is alive but can't reach the database: a
  key per worker process, renewed while the outage lasts and expiring soon after (the sweeper
  reads it before it takes a stale heartbeat for a dead worker);
- takes no job while the database doesn't answer (`wait_for_database`).

The sweeper also asks `last_outage()` when a queued run's job vanished: a job enqueued before
the last outage (Redis restarted, or a worker found the database unreachable) may have been
lost to it, and that loss is not held against the run.
"""

import logging
import math
import os
import socket
import threading
import time

import redis
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, InterfaceError, OperationalError, connections
from rq.utils import as_text

from core import queue
from core.database import is_locked, retry_when_locked

logger = logging.getLogger(__name__)
# What the database driver raises when the server is down, restarting or cut off.
UNREACHABLE = (OperationalError, InterfaceError)
REDIS_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
# Writes are tried again after 0.5 s, then 1, 2, 4, 5, 5… s: a restarted database is seen
# within seconds, one that is down is not asked more than a few times a minute.
FIRST_PAUSE = 0.5
LONGEST_PAUSE = 5.0
# "This worker can't reach the database since <epoch seconds>, and waits for it <seconds>",
# one key per worker process.
WORKER_KEY = "aicenter:database-unreachable:{}"
# When a worker last found the database unreachable (epoch seconds).
OUTAGE_SEEN_KEY = "aicenter:database-outage-seen"
# The Redis server (its run_id) whose data we have, and since when (epoch seconds).
REDIS_SERVER_KEY = "aicenter:redis-server"
# While the database is away a worker tells Redis at most this often.
REPORT_EVERY_SECONDS = 1.0


class DatabaseUnreachable(Exception):
    """The database did not answer for longer than AICENTER_DATABASE_OUTAGE_SECONDS."""

    def __init__(self, seconds: float, bound: float | None = None, worker: str = "its worker"):
        self.seconds = seconds
        bound = settings.DATABASE_OUTAGE_SECONDS if bound is None else bound
        self.reason = (
            f"database unreachable for {seconds:.0f} s: {worker} waits for it at most "
            f"{bound:.0f} s (AICENTER_DATABASE_OUTAGE_SECONDS)"
        )
        super().__init__(self.reason)


def worker_name() -> str:
    """This process as a run records its worker (transitions.claim)."""
    return f"{socket.gethostname()}:{os.getpid()}"


# This process's view of the database, shared by its threads (the job, its watch, the beat).
_lock = threading.Lock()
_since = None  # epoch seconds since the database has not answered, while it doesn't
_reported_at = float("-inf")  # monotonic time Redis was last told


def unreachable(error) -> float:
    """The database did not answer (`error`): said once in the log, told to Redis at most
    every REPORT_EVERY_SECONDS. Returns how long it has not answered, in seconds."""
    global _since, _reported_at
    now = time.time()
    with _lock:
        if _since is None:
            _since = now
            logger.warning(
                "database unreachable (%s): waiting for it; a run goes on for up to %s s",
                " ".join(str(error).split())[:200],
                settings.DATABASE_OUTAGE_SECONDS,
            )
        since = _since
        report = time.monotonic() - _reported_at >= REPORT_EVERY_SECONDS
        if report:
            _reported_at = time.monotonic()
    if report:
        _tell_redis(since)
    return now - since


def answers() -> None:
    """The database answered: if it had not, say after how long."""
    global _since, _reported_at
    if _since is None:  # the usual case, without taking the lock
        return
    with _lock:
        if _since is not None:
            logger.warning("database answers again after %.0f s", time.time() - _since)
        _since, _reported_at = None, float("-inf")


def _tell_redis(since: float) -> None:
    # The key outlives the last renewal by two lost-after periods: the run's heartbeat is
    # renewed within one heartbeat once the database answers, before the sweeper could see
    # it stale without the key.
    ttl = max(1, math.ceil(2 * settings.PIPELINE_LOST_AFTER_SECONDS))
    try:
        with queue.connection("pipelines").pipeline() as commands:
            what = f"{since} {settings.DATABASE_OUTAGE_SECONDS}"
            commands.set(WORKER_KEY.format(worker_name()), what, ex=ttl)
            commands.set(OUTAGE_SEEN_KEY, time.time())
            commands.execute()
    except REDIS_ERRORS:
        pass  # Redis away too: no sweep runs without it either


def database_answers(using: str = DEFAULT_DB_ALIAS) -> bool:
    """One `SELECT 1`. A connection the database dropped (it restarted) is replaced first."""
    database = connections[using]
    for _ in range(2 if database.connection is not None else 1):
        try:
            with database.cursor() as cursor:
                cursor.execute("SELECT 1")
            return True
        except UNREACHABLE:
            if database.in_atomic_block:
                raise
            database.close()
    return False


def during_outage(function, *, using: str = DEFAULT_DB_ALIAS):
    """Call `function()` and return its result. While the database doesn't answer, call it
    again after a pause that doubles from FIRST_PAUSE to LONGEST_PAUSE, until the outage is
    AICENTER_DATABASE_OUTAGE_SECONDS old; then raise DatabaseUnreachable. A locked SQLite
    database is waited out as retry_when_locked does.

    `function` must be safe to call again after such a failure: its writes in one statement
    or in a transaction of its own. Inside a caller's transaction nothing is retried."""
    pause = FIRST_PAUSE
    while True:
        done, result = _attempt(function, using)
        if done:
            return result
        time.sleep(pause)
        pause = min(2 * pause, LONGEST_PAUSE)


def try_now(function, *, using: str = DEFAULT_DB_ALIAS) -> bool:
    """Call `function()` once, for writes that can wait (a log's lines, metric points): True
    if it ran; False if the database doesn't answer, and the caller keeps what it meant to
    write for its next try. Past AICENTER_DATABASE_OUTAGE_SECONDS, DatabaseUnreachable."""
    return _attempt(function, using)[0]


def _attempt(function, using):
    """(True, function()'s result), or (False, None) while the database is away but not for
    too long. The outage's age is this process's: from its first unanswered try."""
    try:
        result = retry_when_locked(function, using=using)
    except UNREACHABLE as error:
        database = connections[using]
        if database.in_atomic_block or is_locked(error):
            raise
        database.close()  # broken: the next try connects afresh
        if not database_answers(using):
            away = unreachable(error)
            if away >= settings.DATABASE_OUTAGE_SECONDS:
                raise DatabaseUnreachable(away) from error
            return False, None
        # only the connection was gone (the database restarted meanwhile): once more, on the
        # new one; an error again is not an outage
        result = retry_when_locked(function, using=using)
    answers()
    return True, result


def wait_for_database(*, beat, stopping) -> None:
    """Return once the database answers, or `stopping()` is true; meanwhile call `beat()`
    between tries (the worker's heartbeat in Redis). Said once in the log, and told to Redis
    as runs' writes do."""
    pause = FIRST_PAUSE
    while not database_answers():
        if stopping():
            return
        unreachable("no answer to SELECT 1: taking no job until it answers")
        beat()
        time.sleep(pause)
        pause = min(2 * pause, LONGEST_PAUSE)
    answers()


def workers_unreachable(workers) -> dict[str, DatabaseUnreachable | None]:
    """Of these workers ("host:pid", as runs record them), those that said lately that they
    can't reach the database: {worker: None} while they wait for it, {worker:
    DatabaseUnreachable} once they have waited longer than they do. Raises when Redis can't
    be reached."""
    workers = sorted(set(workers))
    if not workers:
        return {}
    keys = [WORKER_KEY.format(worker) for worker in workers]
    said = {}
    for worker, value in zip(workers, queue.connection("pipelines").mget(keys), strict=True):
        if value is None:
            continue
        since, bound = (float(part) for part in as_text(value).split())
        away = time.time() - since
        said[worker] = DatabaseUnreachable(away, bound, worker) if away >= bound else None
    return said


def last_outage() -> float:
    """When Redis last lost what it held (a restart: its server changed) or a worker last found
    the database unreachable, in epoch seconds (0: none known). A job enqueued before that
    may have been lost to the outage. Raises when Redis can't be reached."""
    connection = queue.connection("pipelines")
    server = connection.info("server")["run_id"]
    with connection.pipeline() as commands:
        commands.hgetall(REDIS_SERVER_KEY)
        commands.get(OUTAGE_SEEN_KEY)
        known, seen = commands.execute()
    known = {as_text(key): as_text(value) for key, value in known.items()}
    if known.get("run_id") == server:
        data_since = float(known["since"])
    else:  # a new server, restarted empty or from an older snapshot: what was in it is gone
        data_since = time.time()
        connection.hset(REDIS_SERVER_KEY, mapping={"run_id": server, "since": data_since})
    return max(data_since, float(as_text(seen)) if seen else 0.0)

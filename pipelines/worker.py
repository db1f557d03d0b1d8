"""The RQ worker for pipeline queues (django-rq's RQ["WORKER_CLASS"]): plain RQ, plus

- it runs each job itself, without forking a work horse: a run's package code
  already runs in a process (and a sandbox) of its own, so RQ's fork per job bought nothing but
  its cost (a fork per job, and every cache, connection and client started afresh); a thread
  beats and sweeps while a job runs;
- it sweeps for lost runs, vanished jobs and due schedules every few seconds, idle or busy, so
  nothing needs a separate monitor process;
- it always runs RQ's scheduler (for runs and schedules that start later);
- its scheduler and its runs' package code die with it, so a killed worker leaves no run
  behind that looks alive and no scheduler holding the lock its successor needs;
- it rides out a Redis outage (Redis stopped, restarted empty, unreachable): it waits, says so
  once, and once Redis answers again it registers again and takes work as before;
- it rides out a database outage: it takes no job while the database doesn't answer (it would
  fail at once), and its run goes on meanwhile (outages.py);
- it takes workers that died without unregistering (SIGKILL, power loss) out of Redis's lists
  of workers, and pages count only live workers when they say a run waits for one;
- it reads jobs only as the platform writes them (signed JSON, core/queue.py), whatever
  rqworker's options say, and refuses one whose signature doesn't verify, or that RQ can't
  read, without running or parsing it: it says so in its log, deletes it, and takes the next.
- it takes no job while its data disk is below the reserve (core/disk_space.py): runs stay
  queued for a worker with room, or for this one once space is freed, and pages say why.
"""

import ctypes
import logging
import signal
import sys
import threading
import time

import redis
from django.conf import settings
from django.db import close_old_connections, connection, connections
from rq import SimpleWorker, worker_registration
from rq.defaults import DEFAULT_LOGGING_DATE_FORMAT, DEFAULT_LOGGING_FORMAT, DEFAULT_WORKER_TTL
from rq.exceptions import StopRequested
from rq.job import Job
from rq.scheduler import RQScheduler

from core.disk_space import data_disk_space
from core.embedded_redis import ensure_embedded_redis
from core.queue import JobSerializer, job_refusal
from pipelines import outages
from pipelines.runner import ahead
from pipelines.sweeper import sweep
from pipelines.worker_counts import WAITING_FIELD, prune_dead_workers
from sandbox import disks
from sandbox.bubblewrap import bubblewrap
from sandbox.sandbox import refusal, status

logger = logging.getLogger(__name__)
PR_SET_PDEATHSIG = 1
REDIS_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
# RQ blocks on dequeue for worker_ttl - 15 s and beats after each: 20 s makes an idle worker
# beat (and sweep) every 5 s. rqworker passes RQ's default, 420 s: far too slow for that.
WORKER_TTL_SECONDS = 20
# How often a busy worker beats and sweeps (from a thread beside the job).
JOB_MONITORING_SECONDS = 5
# RQ beats after each dequeue and after each job (a Redis round trip each): at most this often.
BEAT_AT_MOST_SECONDS = 1.0
# Redis unreachable: the scheduler tries again this often (work resumes within a second of
# Redis answering), and says so in its log at most every REDIS_DOWN_WARNING_SECONDS.
REDIS_RETRY_SECONDS = 1
REDIS_DOWN_WARNING_SECONDS = 60
# A worker registered again keeps its key this much past its TTL, as RQ's register_birth does.
REGISTRATION_SLACK_SECONDS = 60
# Below the disk's reserve: how often the worker looks whether space was freed.
DISK_RETRY_SECONDS = 1


def die_with_parent() -> None:
    """Linux: get SIGKILL when the parent process dies (no-op elsewhere)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass


class PipelineScheduler(RQScheduler):
    """RQ's scheduler (a process forked by the worker), dying with its worker and riding out
    Redis outages instead of exiting."""

    def work(self):
        die_with_parent()
        said_at = None
        while True:
            try:
                return super().work()
            except REDIS_DOWN as error:
                if self._stop_requested:
                    return None
                if said_at is None or time.monotonic() - said_at >= REDIS_DOWN_WARNING_SECONDS:
                    said_at = time.monotonic()
                    logger.warning("scheduler: Redis unreachable (%s); trying every second", error)
                time.sleep(REDIS_RETRY_SECONDS)


class PipelineWorker(SimpleWorker):
    # While Redis is away, RQ tries to dequeue again after 1, 2, 4 s…: at most 5 s, so work
    # resumes within seconds of Redis coming back (RQ's own limit is a minute).
    max_connection_wait_time = 5.0

    def __init__(self, *args, **kwargs):
        ensure_embedded_redis()  # REDIS_URL unset: the worker may be the first to need it
        # Wake from the blocking dequeue every few seconds.
        if kwargs.get("worker_ttl") in (None, DEFAULT_WORKER_TTL):
            kwargs["worker_ttl"] = WORKER_TTL_SECONDS
        # jobs are read as the platform writes them, whatever rqworker's --serializer says
        kwargs["serializer"] = JobSerializer
        super().__init__(*args, **kwargs)
        self._last_sweep = 0.0
        self._last_beat = float("-inf")
        self._redis_lost_at = None  # monotonic time Redis stopped answering, while it doesn't

    def work(self, *args, **kwargs):
        if problem := refusal():  # never run package code unsandboxed by accident
            logger.error("this worker runs no package code: %s", problem)
            sys.exit(f"AI Center worker not started: {problem}")
        current = status()
        if current.enabled:
            logger.info(
                "package code runs sandboxed (%s: %s; %s uid, memory limits by %s)",
                bubblewrap(),
                bubblewrap().path,
                "its own" if current.privileged else "this worker's",
                current.memory_enforcement,
            )
        else:
            logger.warning("AICENTER_SANDBOX=off: package code runs unsandboxed")
        logger.info("run workspaces: %s", disks.prepare())
        # RQ registers the worker before it installs its signal handlers: a SIGTERM meanwhile
        # would kill it still registered. Kept instead, it stops at the loop's first turn and
        # unregisters as usual.
        for stop_signal in (signal.SIGTERM, signal.SIGINT):
            signal.signal(stop_signal, self._stop_while_starting)
        kwargs["with_scheduler"] = True
        return super().work(*args, **kwargs)

    def _stop_while_starting(self, signum, frame):
        self._stop_requested = True

    def heartbeat(self, timeout=None, pipeline=None):
        if pipeline is not None:  # one command of maintain_heartbeats' pipeline
            return super().heartbeat(timeout, pipeline=pipeline)
        if time.monotonic() - self._last_beat < BEAT_AT_MOST_SECONDS:
            return None  # RQ beats before and after every job: one beat a second is plenty
        self._last_beat = time.monotonic()
        try:
            with self.connection.pipeline() as commands:
                commands.sismember(self.redis_workers_keys, self.key)
                super().heartbeat(timeout, pipeline=commands)
                registered = commands.execute()[0]
            if not registered:  # Redis restarted empty (or forgot us while away)
                self._register_again()
            self._redis_answers()
        except REDIS_DOWN as error:
            self._redis_unreachable(error)
            return None
        if time.monotonic() - self._last_sweep >= settings.PIPELINE_SWEEP_SECONDS:
            self._last_sweep = time.monotonic()
            self._sweep()
        return None

    # RQ's work loop quits on any Redis error outside its dequeue: these ride it out instead.

    def check_for_suspension(self, burst):
        self._wait_for_disk_space()
        try:
            super().check_for_suspension(burst)
        except REDIS_DOWN as error:  # not suspended as far as anyone can tell: dequeue waits
            self._redis_unreachable(error)
        # RQ asks this before each dequeue: a job taken while the database can't record it
        # would fail at once, so the worker waits for the database, as while suspended
        outages.wait_for_database(beat=self.heartbeat, stopping=lambda: self._stop_requested)

    def _wait_for_disk_space(self):
        """Take no job while the data disk is below its reserve: a run started now would fail
        for want of space, or take the last of it. Queued runs wait (for another worker, or
        this one once space is freed); the worker says why in its log and in Redis, which the
        pages read (waiting_for). RQ's stop signal ends the wait, as it ends a dequeue."""
        problem = ""
        while not self._stop_requested and (space := data_disk_space()).low:
            if not problem:
                problem = space.problem()
                logger.warning("taking no run: %s", problem)
            self._say_waiting(f"waiting for disk space on {self.hostname}: {space.problem()}")
            self.heartbeat()
            time.sleep(DISK_RETRY_SECONDS)
        if problem:
            logger.warning("disk space is back above the reserve: taking runs again")
            self._say_waiting("")

    def _say_waiting(self, reason):
        try:
            self.connection.hset(self.key, WAITING_FIELD, reason)
        except REDIS_DOWN as error:
            self._redis_unreachable(error)

    def set_state(self, state, pipeline=None):
        # what it is doing, for dashboards only: RQ sets it first thing in its dequeue, outside
        # the dequeue's own handling of Redis errors (Redis gone just then stopped the worker)
        try:
            super().set_state(state, pipeline=pipeline)
        except REDIS_DOWN as error:
            self._redis_unreachable(error)

    def run_maintenance_tasks(self):
        try:
            super().run_maintenance_tasks()
        except REDIS_DOWN as error:
            self._redis_unreachable(error)

    def dequeue_job_and_maintain_ttl(self, timeout, max_idle_time=None):
        # RQ stops the worker when a job it popped can't be read (a hash with a date or status
        # it can't parse): refused instead, and the next one taken
        while True:
            try:
                return super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
            except Exception as error:
                if getattr(error, "job_id", None) is None or getattr(error, "queue", None) is None:
                    raise
                self._refuse(error.job_id, error.queue, f"RQ can't read it ({error!r})")

    def execute_job(self, job, queue):
        if reason := job_refusal(job):
            self._refuse(job.id, queue, reason)
            return
        job_ended = threading.Event()
        beat = threading.Thread(target=self._beat_while_busy, args=(job_ended,), name="beat")
        beat.start()
        close_old_connections()  # one left broken (the database restarted) is replaced
        try:
            super().execute_job(job, queue)
        except REDIS_DOWN as error:
            # the run's outcome is in the database; only RQ's record of the job is behind
            self._redis_unreachable(error)
            logger.warning("job %s: Redis was unreachable around its start or end", job.id)
        finally:
            job_ended.set()
            beat.join()
            close_old_connections()

    def _refuse(self, job_id: str, queue, reason: str) -> None:
        """Delete a job without running it. Not kept among failed jobs: nothing of it is ours,
        and a reader that trips over its fields (django-rq's pages, a later RQ) can't meet it
        there; this warning is its record. A run whose job it was is queued again by the
        sweeper, as for any job Redis lost."""
        logger.warning(
            "refused job %s from queue %s: %s; deleted, not run", job_id, queue.name, reason
        )
        with self.connection.pipeline() as commands:
            commands.lrem(queue.intermediate_queue_key, 1, job_id)
            commands.delete(Job.key_for(job_id))
            commands.execute()

    def _beat_while_busy(self, job_ended):
        """While a job runs: beat, so pages and other workers see this worker alive, and sweep,
        so lost runs are found even when every worker is busy. (RQ's own job heartbeat is
        set once, for the job's whole time limit.)"""
        try:
            while not job_ended.wait(JOB_MONITORING_SECONDS):
                self.heartbeat()
        finally:
            connections.close_all()  # this thread's own connections

    def teardown(self):
        ahead.discard()  # the next run's sandbox, its workspace and cgroup: no run will come
        try:
            super().teardown()
        except REDIS_DOWN as error:  # stopping without Redis: nothing to unregister from
            logger.warning("stopped without unregistering: Redis unreachable (%s)", error)

    def unsubscribe(self):
        # RQ's listener thread can sleep up to 60 s waiting for a subscription that just ended,
        # and redis-py's stop() waits for it without a bound: a stopped worker hung that long.
        # The thread is a daemon; a second is plenty for it to finish reading.
        if self.pubsub_thread:
            self.pubsub.unsubscribe()
            self.pubsub_thread.stop(timeout=1)
            self.pubsub.close()

    def _redis_unreachable(self, error):
        if self._redis_lost_at is None:
            self._redis_lost_at = time.monotonic()
            logger.warning(
                "Redis unreachable (%s): waiting for it; work goes on when it answers", error
            )

    def _redis_answers(self):
        if self._redis_lost_at is not None:
            logger.warning(
                "Redis answers again after %.0f s", time.monotonic() - self._redis_lost_at
            )
            self._redis_lost_at = None

    def _register_again(self):
        """Put this worker back in Redis's list of workers (RQ's register_birth refuses a
        name whose hash exists, and the heartbeat has just written to it)."""
        with self.connection.pipeline() as commands:
            commands.hset(self.key, mapping={**self.serialize(), "state": self.get_state()})
            worker_registration.register(self, commands)
            commands.expire(self.key, self.worker_ttl + REGISTRATION_SLACK_SECONDS)
            commands.execute()
        logger.warning("worker %s registered again (Redis had lost it)", self.name)

    def _start_scheduler(
        self,
        burst=False,
        logging_level="INFO",
        date_format=DEFAULT_LOGGING_DATE_FORMAT,
        log_format=DEFAULT_LOGGING_FORMAT,
    ):
        """RQ's own, but with a scheduler process that dies with this worker."""
        self.scheduler = PipelineScheduler(
            self.queues,
            connection=self.connection,
            logging_level=logging_level if logging_level is not None else self.log.level,
            serializer=self.serializer,
            date_format=date_format,
            log_format=log_format,
        )
        self.scheduler.acquire_locks()
        if not self.scheduler.acquired_locks:
            return
        if burst:
            try:
                self.scheduler.register_birth()
                self.scheduler.enqueue_scheduled_jobs()
            finally:
                self.scheduler.release_locks()
                self.scheduler.register_death()
        else:
            self.scheduler.start()

    def _sweep(self):
        try:
            # a scheduler lock left by a worker that died: take it over, as RQ's own
            # maintenance would, but without waiting ten minutes
            scheduler = getattr(self, "scheduler", None)
            if scheduler and (not scheduler._process or not scheduler._process.is_alive()):
                scheduler.acquire_locks(auto_start=True)
            sweep()
            prune_dead_workers(self.connection)
        except REDIS_DOWN as error:
            self._redis_unreachable(error)
        except outages.UNREACHABLE as error:  # said once, not a traceback every sweep
            connection.close()  # broken: the next sweep connects afresh
            outages.unreachable(error)
        except StopRequested:  # SIGTERM while idle, mid-sweep: the worker stops, as asked
            raise
        except Exception:  # never let the sweeper take the worker down
            logger.exception("sweep failed")

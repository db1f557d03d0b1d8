"""The RQ worker for pipeline queues (django-rq's RQ["WORKER_CLASS"]): plain RQ, plus

- it sweeps for lost runs, vanished jobs and due schedules every few seconds, idle or busy, so
  nothing needs a separate monitor process;
- it always runs RQ's scheduler (for runs and schedules that start later);
- its work horse dies with it, so a killed worker leaves no run behind that looks alive.
"""

import ctypes
import logging
import signal
import sys
import time

from django.conf import settings
from rq import Worker
from rq.defaults import DEFAULT_WORKER_TTL

logger = logging.getLogger(__name__)
PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Linux: get SIGKILL when the parent process dies (no-op elsewhere)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass


class PipelineWorker(Worker):
    def __init__(self, *args, **kwargs):
        # Wake from the blocking dequeue and from watching a busy horse every few seconds.
        # RQ blocks on dequeue for worker_ttl - 15 s; rqworker passes its default, 420
        if kwargs.get("worker_ttl") in (None, DEFAULT_WORKER_TTL):
            kwargs["worker_ttl"] = 20
        kwargs.setdefault("job_monitoring_interval", 5)
        super().__init__(*args, **kwargs)
        self._last_sweep = 0.0

    def work(self, *args, **kwargs):
        from pipelines.sandbox import refusal, status

        if problem := refusal():  # never run package code unsandboxed by accident
            logger.error("this worker runs no package code: %s", problem)
            sys.exit(f"AI Center worker not started: {problem}")
        current = status()
        if current.enabled:
            logger.info(
                "package code runs sandboxed (bubblewrap, %s uid, memory limits by %s)",
                "its own" if current.privileged else "this worker's",
                current.memory_enforcement,
            )
        else:
            logger.warning("AICENTER_SANDBOX=off: package code runs unsandboxed")
        kwargs["with_scheduler"] = True
        return super().work(*args, **kwargs)

    def heartbeat(self, *args, **kwargs):
        super().heartbeat(*args, **kwargs)
        if time.monotonic() - self._last_sweep >= settings.PIPELINE_SWEEP_SECONDS:
            self._last_sweep = time.monotonic()
            self._sweep()

    def maintain_heartbeats(self, *args, **kwargs):
        super().maintain_heartbeats(*args, **kwargs)
        self.heartbeat()

    def _sweep(self):
        from django.db import connections

        from pipelines.sweeper import sweep

        try:
            # a scheduler lock left by a worker that died: take it over, as RQ's own
            # maintenance would, but without waiting ten minutes
            scheduler = getattr(self, "scheduler", None)
            if scheduler and (not scheduler._process or not scheduler._process.is_alive()):
                scheduler.acquire_locks(auto_start=True)
            sweep()
        except Exception:  # never let the sweeper take the worker down
            logger.exception("sweep failed")
        finally:
            connections.close_all()  # never hand an open connection to a forked work horse

    def main_work_horse(self, *args, **kwargs):
        die_with_parent()
        return super().main_work_horse(*args, **kwargs)

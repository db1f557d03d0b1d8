"""While a run runs: renew its heartbeat and notice a kill, from a thread of the worker."""

import threading
import time

from django.conf import settings
from django.db import connection
from django.utils import timezone

from core.database import retry_when_locked
from pipelines import outages
from pipelines.models import PipelineRun

# How often the watch reads the run's status: a kill reaches the run's processes this fast.
STATUS_CHECK_SECONDS = 0.25
# stop() waits this long for the watch's last database write before the run's end goes on.
STOP_WAIT_SECONDS = 5


class RunWatch(threading.Thread):
    """Every quarter second, read the run's status (a kill is a status, and so is an end the
    sweeper recorded); every few seconds, renew its heartbeat so the sweeper knows this worker
    is alive. While the database doesn't answer, it tries again at the heartbeat's rhythm
    and says so to the sweeper (outages.py); past AICENTER_DATABASE_OUTAGE_SECONDS without an
    answer, `database_lost` says the run must stop, and why."""

    def __init__(self, run_id: int):
        super().__init__(name=f"watch-run-{run_id}", daemon=True)
        self.run_id = run_id
        self.killed = threading.Event()
        self.finished = threading.Event()
        self.database_lost = None  # DatabaseUnreachable: the run must stop, its database gone

    def run(self):
        last_beat = float("-inf")
        away = False  # it did not answer the last look
        try:
            while not self.finished.wait(STATUS_CHECK_SECONDS):
                beat = time.monotonic() - last_beat >= settings.PIPELINE_HEARTBEAT_SECONDS
                if away and not beat:
                    continue  # asked again at the next beat only
                if beat:
                    last_beat = time.monotonic()
                try:
                    self._look(beat=beat)
                except outages.UNREACHABLE as error:
                    connection.close()  # broken: the next look connects afresh
                    away = True
                    silent = outages.unreachable(error)  # said to the sweeper too
                    if silent >= settings.DATABASE_OUTAGE_SECONDS and not self.database_lost:
                        self.database_lost = outages.DatabaseUnreachable(silent)
                    continue
                away = False
                outages.answers()
        finally:
            connection.close()

    def _look(self, *, beat: bool) -> None:
        runs = PipelineRun.objects.filter(pk=self.run_id)
        if beat:
            retry_when_locked(lambda: runs.update(heartbeat_at=timezone.now()))
        status = runs.values_list("status", flat=True).first()
        # killed, deleted under us, or ended by the sweeper ("worker lost") while this worker
        # could not reach the database: either way, its code must stop
        if status not in (PipelineRun.RUNNING, PipelineRun.PACKAGING):
            self.killed.set()

    def stop(self):
        self.finished.set()
        self.join(timeout=STOP_WAIT_SECONDS)

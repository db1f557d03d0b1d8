"""While a run runs: renew its heartbeat and notice a kill, from a thread of the worker."""

import threading
import time

from django.conf import settings
from django.db import connection
from django.utils import timezone

from aicenter.database import retry_when_locked
from pipelines.models import PipelineRun

# How often the watch reads the run's status: a kill reaches the run's processes this fast.
STATUS_CHECK_SECONDS = 0.25
# stop() waits this long for the watch's last database write before the run's end goes on.
STOP_WAIT_SECONDS = 5


class RunWatch(threading.Thread):
    """Every quarter second, read the run's status (a kill is a status, and so is an end the
    sweeper recorded); every few seconds, renew its heartbeat so the sweeper knows this worker
    is alive."""

    def __init__(self, run_id: int):
        super().__init__(name=f"watch-run-{run_id}", daemon=True)
        self.run_id = run_id
        self.killed = threading.Event()
        self.finished = threading.Event()

    def run(self):
        last_beat = 0.0
        try:
            while not self.finished.wait(STATUS_CHECK_SECONDS):
                runs = PipelineRun.objects.filter(pk=self.run_id)
                if time.monotonic() - last_beat >= settings.PIPELINE_HEARTBEAT_SECONDS:
                    retry_when_locked(lambda runs=runs: runs.update(heartbeat_at=timezone.now()))
                    last_beat = time.monotonic()
                status = runs.values_list("status", flat=True).first()
                # killed, deleted under us, or ended by the sweeper ("worker lost") while this
                # worker could not reach the database: either way, its code must stop
                if status not in (PipelineRun.RUNNING, PipelineRun.PACKAGING):
                    self.killed.set()
        finally:
            connection.close()

    def stop(self):
        self.finished.set()
        self.join(timeout=STOP_WAIT_SECONDS)

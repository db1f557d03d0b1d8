"""Real RQ workers against the real Redis, for pipeline tests."""

import os
import signal
import subprocess
import sys
import time

import django_rq
import pytest
from django.conf import settings
from django.db import connection
from rq import Worker

from pipelines.models import PipelineRun


def start_worker(*queues, name=None):
    env = dict(os.environ)
    env["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    env["AICENTER_TEST_DATABASE_NAME"] = connection.settings_dict["NAME"]
    command = [sys.executable, str(settings.BASE_DIR / "manage.py"), "rqworker", *queues]
    if name:
        command += ["--name", name]
    return subprocess.Popen(
        command,
        env=env,
        cwd=settings.BASE_DIR,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_for_workers(count, queue="pipelines", timeout=30):
    connection_ = django_rq.get_connection(queue)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listening = [w for w in Worker.all(connection=connection_) if queue in w.queue_names()]
        if len(listening) >= count:
            return
        time.sleep(0.1)
    raise TimeoutError(f"{count} worker(s) on {queue} did not start in {timeout} s")


def stop(process):
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def _redis_clean(django_db_setup):
    for name in ("pipelines", "gpu"):
        django_rq.get_queue(name).empty()


@pytest.fixture(scope="session")
def worker(django_db_setup, django_db_blocker, _redis_clean):
    """One warm `manage.py rqworker pipelines` for the session."""
    with django_db_blocker.unblock():
        process = start_worker("pipelines")
        wait_for_workers(1)
    yield process
    stop(process)


@pytest.fixture
def second_worker(worker, django_db_blocker):
    with django_db_blocker.unblock():
        process = start_worker("pipelines")
        wait_for_workers(2)
    yield process
    stop(process)


def wait_for(run, *, statuses=PipelineRun.FINISHED, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if run.status in statuses:
            return run
        time.sleep(0.05)
    raise TimeoutError(f"run {run.pk} still {run.status} after {timeout} s")

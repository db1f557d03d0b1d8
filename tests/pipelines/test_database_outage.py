"""A database outage waits; it fails no work. A PostgreSQL of the test's own is stopped under
real workers (real RQ, a Redis of the test's own, sandboxed package code): the run going on
keeps going and ends Successful, the runs queued meanwhile are not taken (and dropped) by a
worker that can't record them, and run in their order. Only a worker that really died makes
"worker lost"; a worker cut off for longer than AICENTER_DATABASE_OUTAGE_SECONDS fails its run
saying the database was unreachable."""

import io
import os
import signal
import time

import pytest
from django.contrib.auth import get_user_model
from django.db import connection

from core.models import Membership, Project
from datasets.services import dataset_create, dataset_file_put
from packages.services import package_create
from pipelines.logs import run_log_text
from pipelines.models import PipelineRun
from pipelines.services import pipeline_run_create
from tests.conftest import (
    free_port,
    requires,
    start_worker,
    stop,
    upload,
    wait_for,
    wait_for_workers,
    wait_until,
)
from tests.factories import package_zip
from tests.pipelines.postgres import PostgresServer, django_on, postgres_bin
from tests.pipelines.sandboxing import train_py
from tests.pipelines.test_redis_outage import redis_server

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("sandbox_available"),
]
OUTAGE_SECONDS = 20
# train(): with a `go_file`, it prints a line and logs a metric point every half second until
# the file appears (the test says when it may end); without, it ends at once.
WAITS_FOR_GO = """
go = Path(ENV["go_file"]) if "go_file" in ENV else None
step = 0
while go is not None and not go.exists() and step < 240:
    print(f"waiting {step}", flush=True)
    with open(ENV["metrics_file"], "a") as out:
        out.write(json.dumps({"name": "waited", "value": step, "step": step}) + "\\n")
    step += 1
    time.sleep(0.5)
"""


@pytest.fixture
def postgres():
    requires(postgres_bin() is not None, "no PostgreSQL server binaries (/usr/lib/postgresql)")
    server = PostgresServer()
    try:
        server.start()
        with django_on(server.url):
            yield server
            if not server.answers():  # a failed test may leave it stopped
                server.start()
    finally:
        server.remove()


@pytest.fixture
def workers(postgres, settings):
    """start(queue, **env) starts a worker on the test's PostgreSQL and Redis."""
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    queues = settings.RQ_QUEUES
    settings.RQ_QUEUES = {name: {**config, "URL": url} for name, config in queues.items()}
    started = []

    def start(queue, **env):
        env = {"DATABASE_URL": postgres.url, "REDIS_URL": url, **env}
        process = start_worker(queue, env=env, new_session=True)
        started.append(process)
        return process

    with redis_server(port):
        try:
            yield start
        finally:
            for process in started:
                stop(process)


def a_project():
    """Alpha on the test's PostgreSQL: bob, a package that waits for its go file, a dataset."""
    project = Project.objects.create(slug="alpha", name="Alpha")
    bob = get_user_model().objects.create_user(username="bob", password="pw-bob")
    Membership.objects.create(project=project, user=bob, role=Membership.DATA_SCIENTIST)
    dataset = dataset_create(project=project, user=bob, name="invoices")
    dataset_file_put(user=bob, dataset=dataset, path="a.csv", fileobj=io.BytesIO(b"1,2\n"))
    package_create(
        project=project,
        user=bob,
        name="waiter",
        file=upload(content=package_zip(**{"train.py": train_py(WAITS_FOR_GO)})),
    )
    return project, bob


def a_run(project, user, **fields):
    inputs = {"type": "train", "package": "waiter", "version": "1.0", "dataset": "invoices"}
    return pipeline_run_create(project=project, user=user, **{**inputs, **fields})


def code_started(run) -> bool:
    run.refresh_from_db()
    return run.status == PipelineRun.RUNNING and bool(run.process_group)


def an_outage(postgres, seconds, *, meanwhile=()):
    """Stop the database for `seconds`, doing `meanwhile` (functions, in order) during it."""
    stopped_at = time.monotonic()
    postgres.stop()
    for action in meanwhile:
        action()
    time.sleep(max(0.0, seconds - (time.monotonic() - stopped_at)))
    postgres.start()
    connection.close()  # this process's connection ended with the server


def test_a_database_outage_fails_no_run_and_keeps_the_queues_order(postgres, workers, tmp_path):
    project, bob = a_project()
    wait_for_workers(1, process=workers("pipelines"))
    going = a_run(project, bob, parameters={"go_file": str(tmp_path / "go")})
    wait_until(lambda: code_started(going), 120, "the run's code never started")
    queued = [a_run(project, bob) for _ in range(3)]  # its worker is busy: they wait in Redis

    def a_second_worker():  # free to take them while the database is away
        wait_for_workers(2, process=workers("pipelines"))

    an_outage(postgres, OUTAGE_SECONDS, meanwhile=[a_second_worker])
    for run in queued:
        wait_for(run, timeout=90)
    (tmp_path / "go").touch()
    wait_for(going, timeout=60)

    assert (going.status, going.failure_reason) == ("successful", "")
    assert not PipelineRun.objects.filter(status=PipelineRun.FAILED).exists()
    assert [run.status for run in queued] == ["successful"] * 3
    started = [run.started_at for run in queued]
    assert started == sorted(started), "the queued runs did not run in their order"
    assert [run.enqueue_count for run in queued] == [1, 1, 1], "jobs were taken and dropped"
    # the lines and points of the outage were kept, and stored once it was over
    text, _ = run_log_text(going)
    steps = [int(line.split()[-1]) for line in text.splitlines() if " waiting " in line]
    assert steps == list(range(len(steps))) and len(steps) > 2 * OUTAGE_SECONDS
    assert going.metrics.get(name="waited").count == len(steps)
    assert "worker lost" not in text


def test_only_a_worker_that_died_is_lost_and_a_long_outage_says_so(postgres, workers, tmp_path):
    project, bob = a_project()
    patient = workers("gpu", AICENTER_DATABASE_OUTAGE_SECONDS="5")  # waits out less than this
    doomed = workers("pipelines")
    wait_for_workers(1, queue="gpu", process=patient)
    wait_for_workers(1, process=doomed)
    go = {"parameters": {"go_file": str(tmp_path / "go")}}
    cut_off, killed = a_run(project, bob, gpu=True, **go), a_run(project, bob, **go)
    for run in (cut_off, killed):
        wait_until(lambda run=run: code_started(run), 120, f"run {run.pk}'s code never started")

    def kill_the_worker():
        time.sleep(2)
        os.killpg(doomed.pid, signal.SIGKILL)  # the worker and its sandbox, as in a crash
        doomed.wait()

    an_outage(postgres, 12, meanwhile=[kill_the_worker])
    wait_for(cut_off, timeout=60)
    wait_for(killed, timeout=60)

    assert cut_off.status == "failed"
    assert cut_off.failure_reason.startswith("database unreachable for ")
    assert killed.status == "failed"
    assert killed.failure_reason.startswith("worker lost")

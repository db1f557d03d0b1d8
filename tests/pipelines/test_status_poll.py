"""The run page's status poll (every second while a run is unfinished) and the "waiting for a
worker" hint: the poll renders the status partial from the run row alone, counts each queue's
workers at most once every few seconds, and a worker SIGKILLed without unregistering no longer
counts (nor stays listed in Redis)."""

import io
import os
import signal
import time

import django_rq
import pytest
import redis
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rq import Worker

from datasets.services import dataset_create, dataset_file_put
from packages.services import package_create
from pipelines import worker_counts as pipeline_worker
from pipelines.models import LogChunk, PipelineRun
from pipelines.queue_places import waiting_for
from tests.conftest import start_worker, stop, upload, wait_for_workers, wait_until

pytestmark = pytest.mark.django_db(transaction=True)
API = "/api/v1/projects/alpha"
RUN = {"type": "train", "package": "classifier", "version": "1.0", "dataset": "invoices"}
HTMX = {"HX-Request": "true"}


@pytest.fixture
def api(api_as, bob, project):
    package_create(project=project, user=bob, name="classifier", file=upload())
    dataset = dataset_create(project=project, user=bob, name="invoices")
    dataset_file_put(user=bob, dataset=dataset, path="a.csv", fileobj=io.BytesIO(b"1"))
    return api_as(bob)


@pytest.fixture
def fresh_worker_counts():
    """Each test counts workers afresh (the counts are kept for a few seconds per process)."""
    pipeline_worker.forget_worker_counts()
    yield
    pipeline_worker.forget_worker_counts()


def _poll(client, run_id):
    return client.get(f"/p/alpha/pipelines/{run_id}/?part=status", headers=HTMX)


@pytest.mark.usefixtures("runs_stay_here", "fresh_worker_counts")
def test_it_polls_a_running_run_from_its_row_without_reading_the_log(
    api, pages_as, bob, django_assert_max_num_queries
):
    run_id = api.post_json(f"{API}/pipelines", RUN).json()["id"]
    PipelineRun.objects.filter(pk=run_id).update(
        status=PipelineRun.RUNNING, started_at=timezone.now(), heartbeat_at=timezone.now()
    )
    LogChunk.objects.bulk_create(
        LogChunk(run_id=run_id, seq=seq, text="x" * 50_000 + "\n") for seq in range(1, 6)
    )
    client = pages_as(bob)
    _poll(client, run_id)  # the session's first use
    # session, user, project, membership, the run with its related rows
    with django_assert_max_num_queries(5), CaptureQueriesContext(connection) as queries:
        response = _poll(client, run_id)
    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith('<section id="run-status"')
    assert "Running for" in html
    assert 'id="log-text"' not in html  # the partial only, not the page
    read = [q["sql"] for q in queries if LogChunk._meta.db_table in q["sql"]]
    assert read == [], read


@pytest.mark.usefixtures("runs_stay_here", "fresh_worker_counts")
def test_it_counts_the_workers_at_most_once_every_few_seconds(api, pages_as, bob, monkeypatch):
    run_id = api.post_json(f"{API}/pipelines", {**RUN, "gpu": True}).json()["id"]
    listings = []  # every listing of registered workers, on the real Redis

    def counted(command):
        def listing(self, *args, **kwargs):
            listings.append(args)
            return command(self, *args, **kwargs)

        return listing

    for name in ("smembers", "sunion"):
        monkeypatch.setattr(redis.Redis, name, counted(getattr(redis.Redis, name)))
    client = pages_as(bob)
    started = time.monotonic()
    for _ in range(10):
        html = _poll(client, run_id).content.decode()
        assert "Waiting for a GPU worker" in html, html[:1500]
    elapsed = time.monotonic() - started
    allowed = 1 + int(elapsed // pipeline_worker.WORKER_COUNT_KEPT_SECONDS)
    assert len(listings) <= allowed, (listings, elapsed)


@pytest.mark.usefixtures("fresh_worker_counts")
def test_a_sigkilled_gpu_worker_stops_counting_and_is_pruned_from_redis(api, worker):
    doomed = start_worker("gpu", new_session=True)
    try:
        wait_for_workers(1, queue="gpu", process=doomed)
        connection_ = django_rq.get_connection("gpu")
        (key,) = [w.key for w in Worker.all(connection=connection_) if w.pid == doomed.pid]
        os.killpg(doomed.pid, signal.SIGKILL)  # no time to unregister, as in a crash
        doomed.wait()
    finally:
        if doomed.poll() is None:
            os.killpg(doomed.pid, signal.SIGKILL)
    run_id = api.post_json(f"{API}/pipelines", {**RUN, "gpu": True}).json()["id"]
    try:
        wait_until(
            lambda: (api.get(f"{API}/pipelines/{run_id}").json()["waiting_for"] or "").startswith(
                "waiting for a GPU worker"
            ),
            pipeline_worker.WORKER_COUNT_KEPT_SECONDS + 3,
            "the dead GPU worker still counts as serving the gpu queue",
        )
        # the CPU worker's sweep takes it out of Redis's lists of workers
        wait_until(
            lambda: (
                not connection_.sismember("rq:workers", key)
                and not connection_.sismember("rq:workers:gpu", key)
            ),
            10,
            f"{key} is still registered",
        )
        assert key not in [w.key for w in Worker.all(connection=connection_)]
    finally:
        api.post(f"{API}/pipelines/{run_id}/kill")


@pytest.mark.usefixtures("fresh_worker_counts")
def test_a_worker_that_starts_or_stops_counts_at_once():
    queued = PipelineRun(status=PipelineRun.QUEUED, queue="gpu")  # no job: no one runs it
    assert waiting_for(queued).startswith("waiting for a GPU worker")
    gpu = start_worker("gpu")
    try:
        wait_for_workers(1, queue="gpu", process=gpu)
        assert waiting_for(queued) is None
    finally:
        stop(gpu)
    assert waiting_for(queued).startswith("waiting for a GPU worker")

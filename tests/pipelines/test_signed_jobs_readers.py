"""Every reader of RQ's jobs in the platform's processes, given a job someone else wrote into
Redis: none unpickles it, calls the callbacks it names or requests its webhooks. The readers:
RQ's own default (what django-rq's "delete all failed jobs" and started-jobs pages, and rq's
Execution.job, use), the queue module's checks, the worker's cleanup of abandoned jobs, the
sweeper's reading of statuses, django-rq's pages. (test_signed_jobs.py: the real worker.)"""

import http.server
import json
import os
import pickle
import threading
import zlib

import django_rq
import pytest
from django_rq.queues import get_queues_list
from rq.job import Job
from rq.registry import clean_registries

from core import queue
from pipelines.worker import PipelineWorker
from tests.conftest import free_port

pytestmark = pytest.mark.django_db


class Gadget:
    """Unpickled, it runs a command (RQ's pickle serializer reads a job's meta as it fetches
    the job, before anything else)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def leave_a_mark(job, *args):
    """A callback someone names in a job's hash: RQ would import and call it."""
    open(job.description, "w").close()  # noqa: SIM115, PTH123 - the marker, nothing more


@pytest.fixture
def receiver():
    """An HTTP server on loopback that counts the requests it gets (webhooks RQ would send)."""
    hits = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            hits.append(self.path)
            self.send_response(204)
            self.end_headers()

        do_POST = do_GET  # noqa: N815

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/hook", hits
    server.shutdown()


def forge(job_id, marker, *, status="failed", **fields):
    """A job written straight into Redis as RQ's pickle serializer writes one, with a gadget
    in its meta, a command as its function, and `fields` (callbacks, webhooks…)."""
    data = pickle.dumps(("os.system", None, (f"touch {marker}-ran",), {}))
    queue.connection("pipelines").hset(
        f"rq:job:{job_id}",
        mapping={
            "data": zlib.compress(data),
            "meta": pickle.dumps({"gadget": Gadget(f"{marker}-read")}),
            "status": status,
            "origin": "pipelines",
            "description": str(marker),
            **fields,
        },
    )


def marks(marker) -> list[str]:
    return [path.name for path in marker.parent.glob(f"{marker.name}*")]


@pytest.mark.parametrize(
    "reader",
    [
        lambda job_id: Job.fetch(job_id, connection=queue.connection("pipelines")).func_name,
        lambda job_id: queue.job_exists("pipelines", job_id),
        lambda job_id: queue.cancel("pipelines", job_id),
    ],
    ids=["rq's default", "job_exists", "cancel"],
)
def test_no_reader_unpickles_a_forged_job(reader, tmp_path):
    forge("forged", tmp_path / "mark")
    try:
        reader("forged")
    except Exception:  # noqa: BLE001, S110 - refusing it is fine; running it is not
        pass
    assert marks(tmp_path / "mark") == []


def test_the_workers_cleanup_of_abandoned_jobs_calls_nothing_a_job_names(tmp_path, receiver):
    url, hits = receiver
    forge(
        "abandoned",
        tmp_path / "mark",
        status="started",
        failure_callback_name=f"{__name__}.leave_a_mark",
        webhooks=json.dumps([{"url": url, "job_status": "failed", "method": "POST"}]),
    )
    django_rq.get_connection("pipelines").zadd("rq:wip:pipelines", {"abandoned:x": 1})
    worker = PipelineWorker(["pipelines"], connection=queue.connection("pipelines"))

    clean_registries(worker.queues[0])  # what its maintenance does every few minutes

    assert marks(tmp_path / "mark") == [] and hits == []


def test_django_rqs_pages_run_nothing_of_a_forged_job(client, django_user_model, tmp_path):
    admin = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(admin)
    index = [entry["name"] for entry in get_queues_list()].index("pipelines")
    callback = {"failure_callback_name": f"{__name__}.leave_a_mark"}
    forge("abandoned", tmp_path / "a", status="started", **callback)
    forge("failed", tmp_path / "f", **callback)
    connection = django_rq.get_connection("pipelines")
    connection.zadd("rq:wip:pipelines", {"abandoned:x": 1})
    connection.zadd("rq:failed:pipelines", {"failed": 2**40})

    assert client.get(f"/admin/rq/queues/{index}/started/").status_code == 200
    assert client.get(f"/admin/rq/queues/{index}/failed/").status_code == 200
    assert client.post(f"/admin/rq/queues/{index}/failed/clear/").status_code == 302

    assert marks(tmp_path / "a") == [] and marks(tmp_path / "f") == []


def test_the_sweeper_takes_a_status_rq_doesnt_know_for_a_job_that_wont_run():
    connection = queue.connection("pipelines")
    connection.hset("rq:job:odd", mapping={"status": "no-such-status"})
    connection.hset("rq:job:queued", mapping={"status": "queued"})
    assert queue.jobs_alive([("pipelines", "odd"), ("pipelines", "queued")]) == {"queued"}

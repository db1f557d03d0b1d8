"""SQLite lets one connection write at a time. A slow client must not hold that lock, and the
platform's own writes (a run's log) wait out a lock instead of failing the run."""

import http.client
import io
import json
import socket
import sqlite3
import threading
import time
from urllib.parse import urlsplit

import pytest
from django.db import OperationalError, connection

from core.database import retry_when_locked
from core.manifests import manifest_copy, manifest_from_files
from core.tokens import api_token_create
from datasets.models import Dataset
from datasets.services import dataset_create
from pipelines.logs import RunLog, run_log_text
from tests.conftest import classifier_and_invoices, classifier_run

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "sqlite", reason="SQLite's write lock; PostgreSQL locks rows"
    ),
]


def test_a_slow_upload_does_not_hold_up_other_users_writes(live_server, bob, project):
    dataset_create(project=project, user=bob, name="invoices")
    token = api_token_create(user=bob, name="upload").token
    address = urlsplit(live_server.url)
    body = b"0123456789" * 10
    upload = socket.create_connection((address.hostname, address.port), timeout=30)
    upload.sendall(
        (
            "PUT /api/v1/projects/alpha/datasets/invoices/files/slow.txt HTTP/1.1\r\n"
            f"Host: {address.netloc}\r\n"
            f"Authorization: Bearer {token}\r\n"
            "Content-Type: application/octet-stream\r\n"
            f"Content-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n"
        ).encode()
        + body[:10]
    )
    try:
        time.sleep(1)  # the server is in the view, reading the body as it comes
        other = http.client.HTTPConnection(address.hostname, address.port, timeout=5)
        started = time.monotonic()
        other.request(
            "POST",
            "/api/v1/projects/alpha/datasets",
            body=json.dumps({"name": "receipts"}),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        try:
            created = other.getresponse()
        except TimeoutError:
            pytest.fail("creating a dataset waited more than 5 s for a slow upload")
        took = time.monotonic() - started
        assert created.status == 201, created.read()
        # Held up, it would wait out the upload (the 5 s timeout above); a loaded 2-core machine
        # can take a few seconds to answer at all.
        assert took < 4, f"creating a dataset waited {took:.1f} s for a slow upload"

        for start in range(10, len(body), 10):  # the rest of the body, slowly
            upload.sendall(body[start : start + 10])
            time.sleep(0.1)
        response = upload.makefile("rb").read()
    finally:
        upload.close()  # a failed test must not leave the request holding the database
    assert response.startswith(b"HTTP/1.1 201"), response
    dataset = Dataset.objects.get(name="invoices")
    assert dataset.manifest.entries.get(path="slow.txt").size == len(body)


def hold_write_lock(seconds: float) -> threading.Event:
    """Take SQLite's write lock on the test database from another connection, as another
    process would, and keep it `seconds`; the event is set once it is held."""
    held = threading.Event()

    def hold():
        other = sqlite3.connect(connection.settings_dict["NAME"], isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        held.set()
        time.sleep(seconds)
        other.execute("ROLLBACK")
        other.close()

    threading.Thread(target=hold, daemon=True).start()
    assert held.wait(10)
    return held


@pytest.fixture
def impatient_sqlite():
    """SQLite gives up on a lock after 0.1 s instead of the settings' 20 s: a lock held
    longer than the busy timeout, without waiting 20 s for it."""
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA busy_timeout = 100")
    yield
    connection.close()  # the next connection has the settings' timeout again


def test_a_log_flush_waits_out_a_locked_database(bob, project, runs_stay_here, impatient_sqlite):
    classifier_and_invoices(project, bob)
    run = classifier_run(project, bob)
    log = RunLog(run)
    log.platform("written while another process holds the database")
    hold_write_lock(2)
    started = time.monotonic()
    log.flush()
    assert time.monotonic() - started > 1.5  # it did wait for the lock
    text, _ = run_log_text(run)
    assert "written while another process holds the database" in text


def test_retrying_gives_up_after_its_time(bob, impatient_sqlite):
    hold_write_lock(3)
    started = time.monotonic()
    with pytest.raises(OperationalError, match="database is locked"):
        retry_when_locked(lambda: bob.save(update_fields=["first_name"]), seconds=1)
    assert 0.9 < time.monotonic() - started < 2.5


def test_storing_a_runs_outputs_waits_out_a_locked_database(impatient_sqlite):
    hold_write_lock(2)
    manifest = manifest_from_files([("model.bin", io.BytesIO(b"weights"))])
    assert list(manifest.entries.values_list("path", "size")) == [("model.bin", 7)]
    hold_write_lock(2)
    copy = manifest_copy(manifest)
    assert list(copy.entries.values_list("path", flat=True)) == ["model.bin"]

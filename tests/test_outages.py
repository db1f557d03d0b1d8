"""During an outage the API answers JSON 503 with Retry-After (507 when the disk is full), pages
a styled "temporarily unavailable" page: a client can tell "try later" from a bug. Each test
starts a real server (gunicorn) whose database, storage or disk is really away or full."""

import io
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from django.conf import settings
from django.db import connection

from core.tokens import api_token_create
from datasets.services import dataset_create, dataset_file_put
from tests.conftest import free_port, requires, stop

pytestmark = pytest.mark.django_db(transaction=True)


def request(url, *, method="GET", data=None, headers=None):
    """(status, headers, body) of a request, whatever its status."""
    ask = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(ask, timeout=30) as answer:
            return answer.status, answer.headers, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


@pytest.fixture
def serve():
    """serve(**env) starts gunicorn on the test's settings with `env` changed; its base URL."""
    servers = []

    def start(**changes):
        port = free_port()
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "AICENTER_TEST_DATABASE_NAME": connection.settings_dict["NAME"],
            "REDIS_URL": settings.REDIS_URL,
        }
        for name, value in changes.items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = value
        command = [sys.executable, "-m", "gunicorn", "aicenter.wsgi", "--bind", f"127.0.0.1:{port}"]
        server = subprocess.Popen(
            command,
            env=env,
            cwd=settings.BASE_DIR,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        servers.append(server)
        deadline = time.monotonic() + 30
        while True:  # /static/ needs none of what may be away
            try:
                request(f"http://127.0.0.1:{port}/static/css/app.css")
                return f"http://127.0.0.1:{port}"
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise AssertionError(server.stdout.read1(20000).decode()) from None
                time.sleep(0.2)

    yield start
    for server in servers:
        stop(server)


def assert_unavailable(answer, status=503):
    code, headers, body = answer
    assert code == status, body[:500]
    assert headers["Content-Type"] == "application/json"
    detail = json.loads(body)["detail"]
    assert "try again" in detail.lower() or "free space" in detail.lower()
    if status == 503:
        assert int(headers["Retry-After"]) > 0
    return json.loads(body)


def test_the_api_answers_json_503_and_pages_a_styled_page_while_the_database_is_away(serve):
    nowhere = f"postgres://postgres@127.0.0.1:{free_port()}/aicenter"
    base = serve(DATABASE_URL=nowhere, AICENTER_TEST_DATABASE_NAME=None)
    bearer = {"Authorization": "Bearer not-checkable-now"}
    answer = request(f"{base}/api/v1/projects", headers=bearer)
    assert assert_unavailable(answer)["unavailable"] == "database"
    write = request(
        f"{base}/api/v1/projects",
        method="POST",
        data=b'{"name": "x"}',
        headers={**bearer, "Content-Type": "application/json"},
    )
    assert_unavailable(write)
    code, headers, page = request(f"{base}/p/default/", headers={"Cookie": "sessionid=" + "a" * 32})
    assert code == 503 and headers["Retry-After"]
    assert b"Temporarily unavailable" in page and b"css/app.css" in page
    assert b"Traceback" not in page


def test_the_api_answers_json_503_while_the_storage_is_away(serve, project, bob):
    dataset = dataset_create(project=project, user=bob, name="invoices")
    dataset_file_put(user=bob, dataset=dataset, path="a.csv", fileobj=io.BytesIO(b"1,2\n"))
    token = api_token_create(user=bob, name="outage").token
    base = serve(
        AICENTER_STORAGE="s3",
        AWS_S3_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}",
        AWS_STORAGE_BUCKET_NAME="nowhere",
        AWS_ACCESS_KEY_ID="x",
        AWS_SECRET_ACCESS_KEY="x",
        AWS_MAX_ATTEMPTS="1",
    )
    answer = request(
        f"{base}/api/v1/projects/alpha/datasets/invoices/files/a.csv",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert assert_unavailable(answer)["unavailable"] == "storage"


def test_an_upload_that_fills_the_disk_answers_507_and_keeps_nothing(
    serve, project, bob, api_as, tmp_path
):
    requires(os.geteuid() == 0, "mounting a small file system for the data dir needs root")
    dataset_create(project=project, user=bob, name="invoices")
    token = api_token_create(user=bob, name="disk").token
    data_dir = tmp_path / "small"
    data_dir.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(data_dir)], check=True)
    try:
        base = serve(AICENTER_DATA_DIR=str(data_dir), AICENTER_DISK_RESERVE_MB="0")
        answer = request(
            f"{base}/api/v1/projects/alpha/datasets/invoices/files/big.bin",
            method="PUT",
            data=os.urandom(8 * 1024 * 1024),
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/octet-stream",
            },
        )
        assert assert_unavailable(answer, status=507)["unavailable"] == "disk full"
        leftovers = [p for p in (data_dir / "storage").rglob("*") if p.is_file()]
        assert leftovers == []
    finally:
        subprocess.run(["umount", "-l", str(data_dir)], check=False)
    listing = api_as(bob).get("/api/v1/projects/alpha/datasets/invoices/files")
    assert listing.json()["files"] == []

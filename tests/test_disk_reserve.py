"""The reserve kept on the data disk (AICENTER_DISK_RESERVE_MB), written as the fault: a small
disk (a 64 MB tmpfs, holding local storage or a worker's workspaces) filled until less than
the reserve is free. Uploads are refused with a JSON 507 before anything is stored (a form
error on pages), /healthz answers 503 naming the reserve, and a worker starts no run: the run
waits, queued, saying why, and starts once space is freed."""

import os
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from core.models import Blob
from datasets.models import Dataset
from datasets.services import dataset_create
from pipelines.models import PipelineRun
from tests.conftest import (
    classifier_and_invoices,
    requires,
    start_worker,
    stop,
    wait_for,
    wait_for_workers,
    wait_until,
)
from tests.factories import make_zip, package_zip

RESERVE_MB = 32
MB = 1024 * 1024
API = "/api/v1/projects/alpha"
SAYS_WHY = f"under the {RESERVE_MB} MB kept in reserve (AICENTER_DISK_RESERVE_MB)"


@pytest.fixture
def small_disk():
    """A 64 MB tmpfs, mounted for the test."""
    requires(os.geteuid() == 0, "mounting a tmpfs needs root")
    folder = Path(tempfile.mkdtemp(prefix="aicenter-small-disk-"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "none", str(folder)], check=True)
    yield folder
    subprocess.run(["umount", "--lazy", str(folder)], check=True)
    folder.rmdir()


@pytest.fixture
def storage_on_small_disk(small_disk, settings):
    """This process's local storage is on the small disk, and the reserve is 32 MB."""
    settings.DISK_RESERVE_MB = RESERVE_MB
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": small_disk / "storage", "allow_overwrite": True},
        },
    }
    return small_disk / "storage"


def stored(storage: Path) -> list[Path]:
    return sorted(p for p in storage.rglob("*") if p.is_file())


def free_mb(folder: Path) -> float:
    found = os.statvfs(folder)
    return found.f_bavail * found.f_frsize / MB


def put(api, path, content):
    return api.put(
        f"{API}/datasets/invoices/files/{path}", content, content_type="application/octet-stream"
    )


@pytest.mark.django_db
def test_uploads_below_the_reserve_answer_507_and_store_nothing(api_as, bob, storage_on_small_disk):
    api = api_as(bob)
    assert api.post_json(f"{API}/datasets", {"name": "invoices"}).status_code == 201
    # someone's upload takes the disk below the reserve: it was above when it began
    assert put(api, "big.bin", os.urandom(40 * MB)).status_code == 201
    assert free_mb(storage_on_small_disk) < RESERVE_MB
    before, blobs = stored(storage_on_small_disk), Blob.objects.count()

    refused = [
        put(api, "more.csv", b"1,2\n"),
        api.post(
            f"{API}/datasets/invoices/zip",
            {"zip": SimpleUploadedFile("d.zip", make_zip({"x.csv": "1"}))},
        ),
        api.post(
            f"{API}/packages",
            {"name": "classifier", "file": SimpleUploadedFile("p.zip", package_zip())},
        ),
    ]
    for response in refused:
        assert response.status_code == 507, response.content
        assert response["Content-Type"].startswith("application/json")
        assert SAYS_WHY in response.json()["detail"]
    assert stored(storage_on_small_disk) == before
    assert Blob.objects.count() == blobs
    assert Dataset.objects.get(name="invoices").manifest.entries.count() == 1


@pytest.mark.django_db
def test_pages_refuse_an_upload_below_the_reserve_at_its_field(
    pages_as, bob, project, storage_on_small_disk
):
    dataset_create(project=project, user=bob, name="invoices")
    (storage_on_small_disk.parent / "filler").write_bytes(b"x" * 40 * MB)
    pages = pages_as(bob)
    response = pages.post(
        "/p/alpha/datasets/invoices/upload/", {"files": [SimpleUploadedFile("a.csv", b"1")]}
    )
    assert response.status_code == 400
    assert SAYS_WHY in response.content.decode()
    response = pages.post(
        "/p/alpha/packages/new/",
        {"name": "classifier", "file": SimpleUploadedFile("p.zip", package_zip())},
    )
    assert SAYS_WHY in response.content.decode()
    assert stored(storage_on_small_disk) == []


@pytest.mark.django_db
def test_healthz_reports_free_space_and_answers_503_below_the_reserve(
    client, storage_on_small_disk
):
    body = client.get("/healthz").json()
    assert body["disk"] == "ok" and body["disk_reserve_mb"] == RESERVE_MB
    assert 60 <= body["disk_free_mb"] <= 64
    (storage_on_small_disk.parent / "filler").write_bytes(b"x" * 40 * MB)
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unhealthy"
    assert body["disk"].startswith("low: the data disk has 2") and body["disk"].endswith(SAYS_WHY)
    assert body["disk_free_mb"] < RESERVE_MB
    assert (body["database"], body["redis"], body["storage"]) == ("ok", "ok", "ok")


@pytest.mark.django_db(transaction=True)
def test_a_worker_below_the_reserve_starts_no_run_until_space_is_freed(
    api_as, pages_as, bob, project, small_disk
):
    classifier_and_invoices(project, bob)
    filler = small_disk / "filler"
    filler.write_bytes(b"x" * 40 * MB)
    env = {
        "AICENTER_WORKSPACES_DIR": str(small_disk / "workspaces"),
        "AICENTER_DISK_RESERVE_MB": str(RESERVE_MB),
        "AICENTER_RUN_DISK_MB": "16",
        "AICENTER_RUN_FILES": "1000",
    }
    worker = start_worker("gpu", env=env)
    try:
        wait_for_workers(1, queue="gpu", process=worker)
        api = api_as(bob)
        payload = {"type": "train", "package": "classifier", "version": "1.0"}
        response = api.post_json(
            f"{API}/pipelines", {**payload, "dataset": "invoices", "gpu": True}
        )
        assert response.status_code == 201, response.content
        run = PipelineRun.objects.get(pk=response.json()["id"])

        def says_why():
            waiting = api.get(f"{API}/pipelines/{run.pk}").json()["waiting_for"] or ""
            return waiting.startswith("waiting for disk space on ") and SAYS_WHY in waiting

        wait_until(says_why, 15, "the queued run does not say why it waits")
        page = pages_as(bob).get(f"/p/alpha/pipelines/{run.pk}/").content.decode()
        assert "Waiting for disk space on " in page and SAYS_WHY in page
        time.sleep(1)
        run.refresh_from_db()
        assert run.status == PipelineRun.QUEUED and not run.worker
        filler.unlink()  # an administrator frees space: the run starts
        assert wait_for(run, timeout=60).status == PipelineRun.SUCCESSFUL
    finally:
        stop(worker)

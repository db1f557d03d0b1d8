"""What a killed upload leaves in storage is reclaimed by the housekeeping once past the grace
period, and nothing anyone refers to (or still being written) is ever touched."""

import hashlib
import io
import os
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from core import reclaim
from core.blobs import PARTIAL_PREFIX, blob_store
from core.manifests import manifest_from_files, manifest_put_files
from core.models import Blob, Event, Manifest, blob_storage_name
from core.reclaim import storage_reclaim
from datasets.services import dataset_create, dataset_file_put

HOUR = 3600


def stored(sha256: str):
    return settings.DATA_DIR / "storage" / blob_storage_name(sha256)


def sha(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def age(path, seconds):
    then = time.time() - seconds
    os.utime(path, (then, then))


@pytest.fixture
def leftovers(project, bob):
    """A dataset in use, and what uploads killed at each step leave: a blob stored but never
    entered in a manifest; a manifest written but never given to its dataset; bytes stored
    without their row; a blob half written; the web server's temporary upload file."""
    dataset = dataset_create(project=project, user=bob, name="invoices")
    dataset_file_put(user=bob, dataset=dataset, path="a.csv", fileobj=io.BytesIO(b"kept"))
    lone_blob = blob_store(io.BytesIO(b"stored, never entered"))
    lone_manifest = manifest_from_files([("b.csv", io.BytesIO(b"entered, never given"))])
    rowless = b"bytes without their row"
    stored(sha(rowless)).parent.mkdir(parents=True, exist_ok=True)
    stored(sha(rowless)).write_bytes(rowless)
    partial = stored(sha(rowless)).with_name(f"{PARTIAL_PREFIX}{sha(b'x')}-dead")
    partial.write_bytes(b"half")
    upload_temp = settings.FILE_UPLOAD_TEMP_DIR / "tmpab12cd.upload.zip"
    upload_temp.write_bytes(b"a zip, half received")
    return {
        "dataset": dataset,
        "lone_blob": lone_blob,
        "lone_manifest": lone_manifest,
        "rowless": stored(sha(rowless)),
        "files": [stored(sha(rowless)), partial, upload_temp],
    }


def grow_old(leftovers):
    past = timezone.now() - timedelta(hours=25)
    Manifest.objects.update(created_at=past)
    Blob.objects.update(created_at=past)
    for path in leftovers["files"]:
        age(path, 25 * HOUR)


def test_a_killed_uploads_leftovers_are_kept_within_the_grace_period(leftovers):
    found = storage_reclaim()
    assert not found
    assert Blob.objects.filter(pk=leftovers["lone_blob"].pk).exists()
    assert Manifest.objects.filter(pk=leftovers["lone_manifest"].pk).exists()
    assert all(path.exists() for path in leftovers["files"])


def test_a_killed_uploads_leftovers_are_reclaimed_after_the_grace_period(leftovers, api_as, bob):
    grow_old(leftovers)
    found = storage_reclaim()
    assert (found.manifests, found.blobs, found.files) == (1, 2, 3)
    assert not Blob.objects.filter(pk=leftovers["lone_blob"].pk).exists()
    assert not stored(leftovers["lone_blob"].pk).exists()
    assert not Manifest.objects.filter(pk=leftovers["lone_manifest"].pk).exists()
    assert not any(path.exists() for path in leftovers["files"])
    # what the dataset refers to stays, and is served
    answer = api_as(bob).get("/api/v1/projects/alpha/datasets/invoices/files/a.csv")
    assert answer.getvalue() == b"kept"
    assert stored(sha(b"kept")).exists()
    assert not storage_reclaim()  # nothing more


def test_bytes_recorded_after_their_write_are_never_taken_for_leftovers(leftovers):
    grow_old(leftovers)
    # the row of the rowless bytes arrives (its writer was only slow): they are kept
    Blob.objects.create(sha256=leftovers["rowless"].name, size=23)
    manifest_put_files(leftovers["lone_manifest"], [])  # touched, but still unreferenced
    storage_reclaim()
    assert leftovers["rowless"].exists()


def test_the_housekeeping_reclaims_hourly_and_says_so_in_ml_logs(leftovers, monkeypatch):
    grow_old(leftovers)
    monkeypatch.setattr(reclaim, "_reclaim_next_at", 0.0)
    reclaim.reclaim_storage_hourly()
    event = Event.objects.get(category="storage")
    assert (event.action, event.actor_name) == ("reclaimed", "system")
    assert event.data["manifests"] == 1 and event.data["files"] == 3
    assert "Reclaimed 1 manifests, 2 blobs and 3 leftover files" in event.message
    reclaim.reclaim_storage_hourly()  # within the hour: nothing done, nothing said
    assert Event.objects.filter(category="storage").count() == 1

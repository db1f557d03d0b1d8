"""A worker machine's copies of remote (S3) blobs: fetched once through the storage API, kept,
checked against their names, least recently used evicted past the budget."""

import io
import os
import time

import pytest

from core import blob_cache
from core.blob_cache import cached_blob
from core.blobs import CorruptBlob, blob_store
from core.manifests import manifest_create, manifest_put_files
from core.models import blob_storage_name
from sandbox.workspace import Workspace, blob_copy
from tests.conftest import BUCKET, use_s3_storage

pytestmark = pytest.mark.django_db


@pytest.fixture
def s3(s3_server, settings, tmp_path):
    """Storage on moto's S3, and an empty blob cache of this test's own."""
    endpoint, client = s3_server
    use_s3_storage(settings, endpoint)
    settings.BLOB_CACHE_DIR = tmp_path / "blob-cache"
    blob_cache.forget_size()
    yield client
    blob_cache.forget_size()


def stored(data: bytes) -> str:
    return blob_store(io.BytesIO(data)).sha256


def test_a_package_is_fetched_once_per_machine_then_read_from_its_copy(s3, tmp_path, settings):
    manifest = manifest_create()
    files = {"train.py": b"class Main: ...\n", "data/a.csv": b"1,2\n"}
    manifest_put_files(manifest, [(name, io.BytesIO(data)) for name, data in files.items()])
    first = Workspace.create(1)
    assert first.materialise(manifest, first.package) == 2
    # gone from the storage: a second run on this machine still gets the files, from its copies
    for entry in manifest.entries.exclude(blob=None):
        s3.delete_object(Bucket=BUCKET, Key=blob_storage_name(entry.blob_id))
    second = Workspace.create(2)
    assert second.materialise(manifest, second.package) == 2
    assert (second.package / "data" / "a.csv").read_bytes() == b"1,2\n"
    # a private copy: the run changing it changes nothing kept
    (second.package / "train.py").write_bytes(b"changed")
    third = Workspace.create(3)
    third.materialise(manifest, third.package)
    assert (third.package / "train.py").read_bytes() == b"class Main: ...\n"
    # another machine (its own cache) has only the storage, where the blobs are gone
    settings.BLOB_CACHE_DIR = tmp_path / "other-machine"
    other = Workspace.create(4)
    with pytest.raises(Exception):  # noqa: B017 - the storage's own "not found"
        other.materialise(manifest, other.package)


def test_bytes_that_are_not_the_blob_are_refused_and_not_kept(s3):
    # the attack: someone who can write to the bucket swaps a package file's bytes
    sha256 = stored(b"the real train.py")
    s3.put_object(Bucket=BUCKET, Key=blob_storage_name(sha256), Body=b"import os; os.system(...)")
    with pytest.raises(CorruptBlob):
        cached_blob(sha256)
    folder = blob_cache.settings.BLOB_CACHE_DIR / sha256[:2]
    assert list(folder.iterdir()) == []  # neither the blob nor a half-written file


def test_past_the_budget_the_least_recently_used_go(s3, settings):
    settings.BLOB_CACHE_MAX_BYTES = 4000
    blobs = [stored(bytes([n]) * 900) for n in range(4)]
    for n, sha256 in enumerate(blobs):
        path = cached_blob(sha256)
        os.utime(path, (time.time() - 100 + n, time.time() - 100 + n))
    cached_blob(blobs[0])  # used again: now the most recent
    cached_blob(stored(b"x" * 900))  # 4,500 bytes: over the budget

    kept = {p.name for p in settings.BLOB_CACHE_DIR.glob("*/*")}
    assert blobs[0] in kept
    assert blobs[1] not in kept and blobs[2] not in kept  # the two least recently used
    assert sum(p.stat().st_size for p in settings.BLOB_CACHE_DIR.glob("*/*")) <= 0.8 * 4000


def test_a_blob_too_big_to_keep_is_streamed(s3, settings, tmp_path):
    settings.BLOB_CACHE_MAX_BYTES = 4000
    sha256 = stored(b"y" * 2000)  # over a quarter of the budget
    assert cached_blob(sha256, 2000) is None
    blob_copy(sha256, tmp_path / "big", 2000)
    assert (tmp_path / "big").read_bytes() == b"y" * 2000
    assert not settings.BLOB_CACHE_DIR.exists() or not list(settings.BLOB_CACHE_DIR.glob("*/*"))

"""A stored blob's bytes always hash to its name: written aside and renamed into place, never
rewritten in place under a reader or a second writer; checked on read and by storage_check."""

import hashlib
import io
import os
import random
import signal
import subprocess
import sys
import time

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection

from core.blobs import PARTIAL_PREFIX, CorruptBlob, blob_store, blob_write
from core.models import Blob, blob_storage_name
from datasets.services import dataset_create, dataset_file_put
from tests.conftest import alive

# A process with Django loaded and no database connection yet. For each line it reads
# ("<count> <path>") it forks that many writers, each storing the file as a blob and exiting,
# prints their pids, and releases them at once (so they race, as uploads of the same bytes
# do). Forking from it costs milliseconds where starting Django costs a second, so the test
# can kill many writers at random points.
ZYGOTE = """
import os, sys
from core.blobs import blob_store
for line in sys.stdin:
    count, path = line.split(maxsplit=1)
    go_read, go_write = os.pipe()
    pids = []
    for _ in range(int(count)):
        pid = os.fork()
        if pid == 0:
            try:
                os.read(go_read, 1)
                with open(path.strip(), "rb") as source:
                    blob_store(source)
            finally:
                os._exit(0)
        pids.append(pid)
    print(*pids, flush=True)
    os.write(go_write, b"x" * len(pids))
    os.close(go_read)
    os.close(go_write)
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass
"""
ROUNDS = 40
WRITERS = 4
SIZE = 4 * 1024 * 1024


def stored_path(sha256: str):
    return settings.DATA_DIR / "storage" / blob_storage_name(sha256)


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def zygote(transactional_db):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "AICENTER_TEST_DATABASE_NAME": connection.settings_dict["NAME"],
    }
    process = subprocess.Popen(
        [sys.executable, str(settings.BASE_DIR / "manage.py"), "shell", "-v", "0", "-c", ZYGOTE],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=settings.BASE_DIR,
    )
    yield process
    process.stdin.close()
    process.kill()
    process.wait()


def test_writers_of_the_same_new_content_killed_at_random_never_leave_a_corrupt_blob(
    zygote, tmp_path
):
    shas = []
    chance = random.Random(20261207)
    for round_number in range(ROUNDS):
        content = chance.randbytes(SIZE)
        source = tmp_path / f"content-{round_number}"
        source.write_bytes(content)
        shas.append(hashlib.sha256(content).hexdigest())
        zygote.stdin.write(f"{WRITERS} {source}\n")
        zygote.stdin.flush()
        pids = [int(pid) for pid in zygote.stdout.readline().split()]
        # the first one is left to finish; the others die somewhere in their work, which is
        # when a writer in place would leave the finished blob truncated under its name
        released = time.monotonic()
        for moment, pid in sorted((chance.uniform(0, 0.03), pid) for pid in pids[1:]):
            time.sleep(max(0.0, released + moment - time.monotonic()))
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.01)
        path = stored_path(shas[-1])
        if path.exists():
            assert digest(path) == shas[-1], f"round {round_number}: a corrupt blob was left"
    for blob in Blob.objects.filter(sha256__in=shas):
        assert digest(stored_path(blob.sha256)) == blob.sha256
    # the writers that lived finished their blobs: each round has one
    assert Blob.objects.filter(sha256__in=shas).count() == ROUNDS


def test_bytes_that_dont_hash_to_the_name_are_never_stored(db, tmp_path):
    name = hashlib.sha256(b"what was promised").hexdigest()
    with pytest.raises(CorruptBlob):
        blob_write(name, io.BytesIO(b"something else"))
    folder = stored_path(name).parent
    assert not folder.exists() or not list(folder.iterdir())


def test_a_blob_being_rewritten_is_never_seen_truncated(db):
    content = os.urandom(SIZE)
    blob = blob_store(io.BytesIO(content))
    path = stored_path(blob.sha256)
    before = os.open(path, os.O_RDONLY)
    blob_write(blob.sha256, io.BytesIO(content))  # another upload of the same bytes
    # a reader that opened the blob before keeps whole bytes: nothing was truncated under it
    assert os.read(before, SIZE + 1) == content
    os.close(before)
    assert digest(path) == blob.sha256
    assert not [p for p in path.parent.iterdir() if p.name.startswith(PARTIAL_PREFIX)]


@pytest.fixture
def damaged(project, bob, api_as):
    """A dataset file whose stored blob was then changed on disk by hand (same size)."""
    dataset = dataset_create(project=project, user=bob, name="invoices")
    content = b"id,total\n1,100\n"
    dataset_file_put(user=bob, dataset=dataset, path="a.csv", fileobj=io.BytesIO(content))
    sha256 = hashlib.sha256(content).hexdigest()
    stored_path(sha256).write_bytes(b"id,total\n1,999\n")
    return content, sha256, api_as(bob), "/api/v1/projects/alpha/datasets/invoices/files/a.csv"


def test_storage_check_finds_a_blob_corrupted_by_hand_and_quarantines_it(damaged):
    content, sha256, api, url = damaged
    with pytest.raises(CommandError, match="1 corrupt, 0 missing"):
        call_command("storage_check")
    assert not stored_path(sha256).exists()
    quarantined = list((settings.DATA_DIR / "storage" / "quarantine").iterdir())
    assert [p.read_bytes() for p in quarantined] == [b"id,total\n1,999\n"]
    answer = api.get(url)
    assert answer.status_code == 404
    assert "damaged" in answer.json()["detail"]
    # the true bytes uploaded again are stored again, and served
    api.put(
        "/api/v1/projects/alpha/datasets/invoices/files/b.csv",
        content,
        content_type="application/octet-stream",
    )
    assert api.get(url).getvalue() == content
    call_command("storage_check")  # clean now: no error


def test_storage_check_reports_a_missing_blob(damaged):
    _, sha256, _, _ = damaged
    stored_path(sha256).unlink()
    with pytest.raises(CommandError, match="0 corrupt, 1 missing"):
        call_command("storage_check", "--dry-run")


def test_a_blob_cut_short_on_disk_is_not_served(damaged):
    content, sha256, api, url = damaged
    stored_path(sha256).write_bytes(content[:5])
    answer = api.get(url)
    assert answer.status_code == 404
    assert "damaged" in answer.json()["detail"]

"""Blobs: file content stored once, named by its SHA-256, through Django's storage API.

The invariant: the bytes stored under a blob's name are the bytes that hash to it. Two uploads
of the same new content may write it at the same moment, and either may be killed halfway, so
a blob is never opened for writing under its final name: on local disk its bytes go to a
private file beside it, hashed as they are written, and are renamed into place only when the
hash matches (a rename replaces atomically: a reader sees the whole old file or the whole new
one, never a truncated one). On S3 an object appears whole when its upload completes, and the
bytes sent are the ones hashed. `manage.py storage_check` verifies every stored blob.
"""

import hashlib
import logging
import os
import tempfile
import uuid
from collections.abc import Iterable
from pathlib import Path

from django.core.files import File
from django.core.files.storage import default_storage
from django.db.models import ProtectedError

from core.database import retry_when_locked
from core.models import Blob, ManifestEntry, blob_storage_name

logger = logging.getLogger(__name__)
CHUNK = 1024 * 1024
# Blobs being written: a private name beside the final one. The housekeeping removes those a
# killed process left, once they are older than any write can take.
PARTIAL_PREFIX = ".partial-"


class CorruptBlob(Exception):
    """Bytes that are not the blob they are named after."""


def _spool(fileobj):
    """Read a file once: its SHA-256, its size, and a rewindable copy (in memory when small)."""
    digest = hashlib.sha256()
    size = 0
    spool = tempfile.SpooledTemporaryFile(max_size=CHUNK)
    while chunk := fileobj.read(CHUNK):
        digest.update(chunk)
        spool.write(chunk)
        size += len(chunk)
    return digest.hexdigest(), size, spool


def local_path(sha256: str) -> Path | None:
    """Where local storage keeps the blob; None when storage is remote."""
    try:
        return Path(default_storage.path(blob_storage_name(sha256)))
    except NotImplementedError:
        return None


def blob_write(sha256: str, source) -> None:
    """Store `source`'s bytes (read from where it stands) as the blob `sha256`. Raises
    CorruptBlob, and stores nothing, when they don't hash to that name."""
    path = local_path(sha256)
    if path is None:
        # S3 makes an object visible only once its upload completed; the caller hashed the
        # very bytes it gives here (its spool).
        default_storage.save(blob_storage_name(sha256), File(source))
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    write_aside(
        source,
        path,
        sha256,
        private=path.with_name(f"{PARTIAL_PREFIX}{sha256}-{uuid.uuid4().hex}"),
        mismatch=lambda digest: f"the bytes given for blob {sha256} hash to {digest}",
        mode=0o644,
    )


def write_aside(source, path: Path, sha256: str, *, private: Path, mismatch, mode=None) -> int:
    """Copy `source` to `path` by way of the private file `private`, hashing as it goes, and
    rename it into place only when the bytes hash to `sha256` (a rename replaces atomically: a
    reader sees a whole file, never half of one); else raise CorruptBlob(mismatch(digest)) and
    leave nothing. `mode`: the file's permissions, if not the umask's. Returns its size."""
    digest = hashlib.sha256()
    try:
        with open(private, "xb") as target:
            while chunk := source.read(CHUNK):
                digest.update(chunk)
                target.write(chunk)
        if digest.hexdigest() != sha256:
            raise CorruptBlob(mismatch(digest.hexdigest()))
        if mode is not None:
            os.chmod(private, mode)
        size = private.stat().st_size
        os.replace(private, path)
        return size
    finally:
        private.unlink(missing_ok=True)


def _missing_locally(sha256: str, size: int) -> bool:
    """A recorded blob whose local file is gone or of another size (quarantined, or left
    truncated by a version of this code that wrote in place): the next upload of its bytes
    writes it again."""
    path = local_path(sha256)
    if path is None:
        return False
    try:
        return path.stat().st_size != size
    except FileNotFoundError:
        return True


def _store_spooled(batch: list[tuple[str, int, object]]) -> None:
    """Store the bytes of the blobs in `batch` that storage does not hold yet: one query to
    know which, one to record them. Bytes are in place before their row exists."""
    shas = {sha for sha, _, _ in batch}
    known = set(Blob.objects.filter(sha256__in=shas).values_list("sha256", flat=True))
    new = {}
    for sha, size, spool in batch:
        if sha in new or (sha in known and not _missing_locally(sha, size)):
            continue
        spool.seek(0)
        blob_write(sha, spool)
        new[sha] = size
    rows = [Blob(sha256=s, size=n) for s, n in new.items() if s not in known]
    retry_when_locked(lambda: Blob.objects.bulk_create(rows, ignore_conflicts=True))


def store_files(items, *, batch_size: int = 200):
    """Store the content of many (path, file object) pairs, each distinct content once; yield
    (path, sha256, size). Queries go by batches, not by file."""
    batch = []

    def flush():
        _store_spooled([(sha, size, spool) for _, sha, size, spool in batch])
        for path, sha, size, spool in batch:
            spool.close()
            yield path, sha, size
        batch.clear()

    for path, fileobj in items:
        batch.append((path, *_spool(fileobj)))
        if len(batch) >= batch_size:
            yield from flush()
    yield from flush()


def blob_store(fileobj) -> Blob:
    """Store a file's content once; return its Blob (existing or new)."""
    ((_, sha, _),) = store_files([("", fileobj)])
    return Blob.objects.get(sha256=sha)


def blob_open(blob: Blob):
    """The blob's bytes, opened for reading. On local disk its size is checked first (a stat,
    nothing read): a file cut short is refused rather than served as the blob."""
    stored = default_storage.open(blob.storage_name, "rb")
    if local_path(blob.sha256) is not None and os.fstat(stored.fileno()).st_size != blob.size:
        stored.close()
        raise CorruptBlob(f"blob {blob.sha256} is stored with another size than {blob.size}")
    return stored


def blob_digest(sha256: str) -> str | None:
    """The SHA-256 of what storage holds under the blob's name (None when nothing)."""
    digest = hashlib.sha256()
    try:
        with default_storage.open(blob_storage_name(sha256), "rb") as stored:
            while chunk := stored.read(CHUNK):
                digest.update(chunk)
    except FileNotFoundError:
        return None
    return digest.hexdigest()


def blob_collect_garbage(shas: Iterable[str]) -> tuple[int, int]:
    """Delete the blobs among `shas` that no manifest refers to any more, bytes included;
    returns how many went, and their bytes."""
    shas = list(shas)
    count = size = 0
    for start in range(0, len(shas), 500):
        batch = shas[start : start + 500]
        in_use = set(
            ManifestEntry.objects.filter(blob_id__in=batch).values_list("blob_id", flat=True)
        )
        for blob in Blob.objects.filter(sha256__in=batch).exclude(sha256__in=in_use):
            # The row goes first: if an upload has just referred to this blob again, the
            # delete is refused and its bytes stay.
            name = blob.storage_name
            try:
                blob.delete()
            except ProtectedError:
                continue
            default_storage.delete(name)
            count += 1
            size += blob.size
    return count, size

"""A worker machine's copies of the blobs its runs and skill replicas read, when storage is remote
(S3). A blob is named by its SHA-256 and never changes, so a copy is never stale: a package's
files or a dataset are fetched once per machine, not once per run. Fetched through the storage
API like everything else (a worker on another machine shares nothing but the storage).

    <BLOB_CACHE_DIR>/<sha256[:2]>/<sha256>   a blob, checked against its name as it arrives

Its use time is its modification time, renewed at each use; past BLOB_CACHE_MAX_BYTES the least
recently used go. Several workers of one machine share the folder: a blob arrives under a
private name and is renamed into place, so nobody reads half a file.
"""

import logging
import os
import threading
import uuid
from pathlib import Path

from django.conf import settings
from django.core.files.storage import default_storage

from core.blobs import local_path, write_aside
from core.models import blob_storage_name

logger = logging.getLogger(__name__)
# A blob bigger than this share of the budget is streamed, never kept: one file must not
# empty the cache of everything else.
LARGEST_SHARE = 4
# Past the budget, blobs go until the cache is this share of it, so eviction isn't every time.
EVICT_TO = 0.8

_lock = threading.Lock()
_size = None  # bytes in the cache as this process counts them (None: not counted yet)


def local_blob(sha256: str, size: int | None = None) -> Path | None:
    """A file on this machine holding the blob: local storage's own, else this machine's copy
    (fetched now if it has none). None when the blob is too big to keep: stream it instead."""
    return local_path(sha256) or cached_blob(sha256, size)


def cached_blob(sha256: str, size: int | None = None) -> Path | None:
    """This machine's copy of the blob (fetched now if it has none), or None when the blob is
    too big to keep (the caller streams it from storage)."""
    budget = settings.BLOB_CACHE_MAX_BYTES
    if size is not None and size > budget // LARGEST_SHARE:
        return None
    path = settings.BLOB_CACHE_DIR / sha256[:2] / sha256
    try:
        os.utime(path)  # used now: last in line for eviction
        return path
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    with default_storage.open(blob_storage_name(sha256), "rb") as source:
        arrived = write_aside(
            source,
            path,
            sha256,
            private=path.with_name(f".{sha256}.{uuid.uuid4().hex}"),
            mismatch=lambda _digest: f"storage gave other bytes for blob {sha256}",
        )
    _added(arrived)
    return path


def _added(size: int) -> None:
    global _size
    with _lock:
        if _size is None:
            _size = sum(entry.stat().st_size for entry in _entries())
        else:
            _size += size
        if _size > settings.BLOB_CACHE_MAX_BYTES:
            _size = _evict(int(settings.BLOB_CACHE_MAX_BYTES * EVICT_TO))


def _entries():
    root = settings.BLOB_CACHE_DIR
    for folder in root.iterdir() if root.exists() else ():
        if folder.is_dir():
            yield from (entry for entry in folder.iterdir() if not entry.name.startswith("."))


def _evict(target: int) -> int:
    """Remove the least recently used blobs until the cache holds at most `target` bytes;
    returns what it holds then (counted afresh: other workers of this machine add too)."""
    found = []
    for entry in _entries():
        try:
            info = entry.stat()
        except FileNotFoundError:  # evicted by another worker meanwhile
            continue
        found.append((info.st_mtime, info.st_size, entry))
    total = sum(size for _, size, _ in found)
    for _, size, entry in sorted(found, key=lambda item: item[0]):
        if total <= target:
            break
        entry.unlink(missing_ok=True)
        total -= size
    logger.info("blob cache: evicted down to %.0f MB", total / 1024 / 1024)
    return total


def forget_size() -> None:
    """Count the cache afresh at the next addition (for tests that change the budget)."""
    global _size
    _size = None

"""Storage nothing refers to, reclaimed: what a killed web server or worker leaves behind.

A mark and sweep, run by the housekeeping. Marked: every manifest some row refers to (a
dataset, a package version, a run's artifacts or snapshots: found from the models' relations,
so a new kind of reference is counted without changing this module), and every blob an entry
of a manifest refers to. Swept, once older than the grace period: manifests no row refers to,
blobs no entry refers to (row and bytes), stored files no blob row names, blobs being written
that their writer left (`.partial-*`), and the web server's temporary upload files. The grace
period is longer than any upload or output collection takes, so work in progress, whose
manifest is referred to only when it ends, is never collected.
"""

import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.core.files.storage import default_storage
from django.db.models import Exists, OuterRef
from django.utils import timezone

from core.blobs import PARTIAL_PREFIX, blob_collect_garbage
from core.events import record
from core.models import Blob, Manifest, ManifestEntry, Project, blob_storage_name

logger = logging.getLogger(__name__)
BATCH = 500


@dataclass
class Reclaimed:
    manifests: int = 0
    blobs: int = 0
    files: int = 0
    bytes: int = 0

    def __bool__(self) -> bool:
        return bool(self.manifests or self.blobs or self.files)

    def __str__(self) -> str:
        return (
            f"reclaimed {self.manifests} manifests, {self.blobs} blobs and {self.files} "
            f"leftover files nothing referred to ({self.bytes / 1024 / 1024:.1f} MB)"
        )


def _referrers():
    """(model, field name) of every relation that points at a manifest, but its entries."""
    for relation in Manifest._meta.get_fields(include_hidden=True):
        if relation.auto_created and not relation.concrete and relation.related_model:
            if relation.related_model is not ManifestEntry:
                yield relation.related_model, relation.field.name


def unreferenced_manifests(older_than):
    manifests = Manifest.objects.filter(created_at__lt=older_than)
    for model, field in _referrers():
        manifests = manifests.exclude(Exists(model.objects.filter(**{field: OuterRef("pk")})))
    return manifests


def _sweep_manifests(older_than, found: Reclaimed) -> None:
    while ids := list(unreferenced_manifests(older_than).values_list("pk", flat=True)[:BATCH]):
        Manifest.objects.filter(pk__in=ids).delete()  # entries go with them
        found.manifests += len(ids)


def _sweep_blobs(older_than, found: Reclaimed) -> None:
    unused = Blob.objects.filter(created_at__lt=older_than).exclude(
        Exists(ManifestEntry.objects.filter(blob=OuterRef("pk")))
    )
    last = ""
    while batch := list(
        unused.filter(pk__gt=last).order_by("pk").values_list("pk", flat=True)[:BATCH]
    ):
        last = batch[-1]
        count, size = blob_collect_garbage(batch)
        found.blobs += count
        found.bytes += size


def _stored_blob_files():
    """(storage name, sha256 or '' for a partial write) of every file under blobs/."""
    folders = ["blobs"]
    while folders:
        folder = folders.pop()
        try:
            subfolders, files = default_storage.listdir(folder)
        except FileNotFoundError:
            continue
        folders += [f"{folder}/{name}" for name in subfolders]
        for name in files:
            yield f"{folder}/{name}", name


def _sweep_stored_files(grace: float, found: Reclaimed) -> None:
    """Files under blobs/ that no blob row names (the row went, or never came), and partial
    writes, once older than the grace period."""
    candidates = {}
    for name, base in _stored_blob_files():
        if base.startswith(PARTIAL_PREFIX) or blob_storage_name(base) == name:
            candidates[name] = base
    names = [b for b in candidates.values() if not b.startswith(PARTIAL_PREFIX)]
    known = set()
    for start in range(0, len(names), BATCH):
        batch = names[start : start + BATCH]
        known |= set(Blob.objects.filter(pk__in=batch).values_list("pk", flat=True))
    cutoff = timezone.now() - timedelta(seconds=grace)
    for name, base in candidates.items():
        if base in known:
            continue
        try:
            if default_storage.get_modified_time(name) >= cutoff:
                continue
            size = default_storage.size(name)
        except FileNotFoundError:
            continue
        # a blob recorded after the listing above: its row is there now, keep its bytes
        if not base.startswith(PARTIAL_PREFIX) and Blob.objects.filter(pk=base).exists():
            continue
        default_storage.delete(name)
        found.files += 1
        found.bytes += size


def _sweep_upload_temp_files(grace: float, found: Reclaimed) -> None:
    """Django's temporary files of uploads (`*.upload*`) that a killed web server left."""
    folder = Path(settings.FILE_UPLOAD_TEMP_DIR)
    cutoff = time.time() - grace
    for path in folder.glob("*.upload*") if folder.is_dir() else ():
        try:
            info = path.stat()
            if info.st_mtime < cutoff:
                path.unlink()
                found.files += 1
                found.bytes += info.st_size
        except FileNotFoundError:
            continue


def storage_reclaim(*, grace: float | None = None) -> Reclaimed:
    """Reclaim what nothing refers to and is older than `grace` seconds (default: the
    AICENTER_RECLAIM_GRACE_HOURS setting)."""
    grace = settings.RECLAIM_GRACE_SECONDS if grace is None else grace
    older_than = timezone.now() - timedelta(seconds=grace)
    found = Reclaimed()
    _sweep_manifests(older_than, found)
    _sweep_blobs(older_than, found)
    _sweep_stored_files(grace, found)
    _sweep_upload_temp_files(grace, found)
    if found:
        logger.info("storage: %s", found)
    return found


# Reclaiming storage reads every manifest's references: hourly is soon enough for leftovers.
RECLAIM_EVERY_SECONDS = 3600
_reclaim_next_at = 0.0


def reclaim_storage_hourly() -> None:
    """storage_reclaim() at most once an hour in this process; what it reclaimed is told in
    the ML Logs of the installation's first project (storage belongs to no one project)."""
    global _reclaim_next_at
    if time.monotonic() < _reclaim_next_at:
        return
    _reclaim_next_at = time.monotonic() + RECLAIM_EVERY_SECONDS
    found = storage_reclaim()
    project = Project.objects.order_by("pk").first()
    if found and project:
        record(
            project=project,
            category="storage",
            action="reclaimed",
            object_type="storage",
            object_name="Storage",
            message=str(found).capitalize(),
            data={
                "manifests": found.manifests,
                "blobs": found.blobs,
                "files": found.files,
                "bytes": found.bytes,
            },
        )

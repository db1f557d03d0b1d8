"""Content-addressed file storage: blobs named by their SHA-256 and manifests of path → blob.

Datasets, package versions, artifacts and snapshots are all manifests. A file uploaded twice is
stored once; a snapshot copies rows, never bytes. Every byte goes through Django's storage API,
so local disk and S3 behave the same and a worker elsewhere needs only the storage.
"""

import hashlib
import posixpath
import shutil
import tempfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import ProtectedError, Q
from django.db.models.functions import Left
from django.db.models.lookups import Exact

from aicenter.models import Blob, Manifest, ManifestEntry

CHUNK = 1024 * 1024


def clean_path(path: str, *, field: str = "path") -> str:
    """A relative, '/'-separated path inside a folder tree, or a ValidationError saying why not."""
    original = path
    path = (path or "").replace("\\", "/").strip("/")
    parts = path.split("/")
    if not path:
        raise ValidationError({field: "A path is required."})
    if original.startswith("/"):
        raise ValidationError({field: f"'{original}' is an absolute path; use a relative one."})
    for part in parts:
        if part in ("", ".", ".."):
            raise ValidationError(
                {field: f"'{original}' is not a valid path: it has an empty, '.' or '..' part."}
            )
        if any(ord(c) < 32 for c in part):
            raise ValidationError({field: f"'{original}' contains control characters."})
    if len(path.encode()) > 1000:
        raise ValidationError({field: "The path is longer than 1000 bytes."})
    return path


def clean_folder(folder: str) -> str:
    """'' for the root, else a clean path: used for prefixes and sub-folder choices."""
    folder = (folder or "").strip().strip("/")
    return clean_path(folder, field="folder") if folder else ""


def under_folder(prefix: str) -> Q:
    """Entries whose path starts with `prefix`, a folder path ending in '/'.

    LIKE narrows the rows, but SQLite's LIKE ignores ASCII case ('data/' would match
    'Data/x'), so the leading characters must also be equal."""
    return Q(path__startswith=prefix) & Q(Exact(Left("path", len(prefix)), prefix))


def blob_store(fileobj) -> Blob:
    """Store a file's content once; return its Blob (existing or new)."""
    digest = hashlib.sha256()
    size = 0
    with tempfile.SpooledTemporaryFile(max_size=8 * CHUNK) as spool:
        while chunk := fileobj.read(CHUNK):
            digest.update(chunk)
            spool.write(chunk)
            size += len(chunk)
        sha = digest.hexdigest()
        blob = Blob.objects.filter(sha256=sha).first()
        if blob is None:
            blob = Blob(sha256=sha, size=size)
            spool.seek(0)
            default_storage.save(blob.storage_name, File(spool))
            blob, _ = Blob.objects.get_or_create(sha256=sha, defaults={"size": size})
    return blob


def blob_open(blob: Blob):
    return default_storage.open(blob.storage_name, "rb")


def manifest_create() -> Manifest:
    return Manifest.objects.create()


def _check_no_conflict(manifest: Manifest, path: str) -> None:
    """A path can't be both a file and a folder."""
    parents = ["/".join(path.split("/")[:i]) for i in range(1, path.count("/") + 1)]
    clash = manifest.entries.filter(path__in=parents, blob__isnull=False).first()
    if clash:
        raise ValidationError({"path": f"'{clash.path}' is a file, so it can't hold '{path}'."})
    if manifest.entries.filter(under_folder(path + "/")).exists():
        raise ValidationError({"path": f"'{path}' is a folder; a file can't replace it."})


def manifest_put_file(manifest: Manifest, path: str, fileobj) -> ManifestEntry:
    """Add or replace the file at `path` (already cleaned) with the content of `fileobj`."""
    _check_no_conflict(manifest, path)
    blob = blob_store(fileobj)
    entry, _ = ManifestEntry.objects.update_or_create(
        manifest=manifest, path=path, defaults={"blob": blob, "size": blob.size}
    )
    # An explicitly created empty folder is no longer empty: its marker is not needed.
    parents = ["/".join(path.split("/")[:i]) + "/" for i in range(1, path.count("/") + 1)]
    manifest.entries.filter(path__in=parents, blob__isnull=True).delete()
    return entry


def manifest_put_folder(manifest: Manifest, path: str) -> ManifestEntry | None:
    """Create an empty folder (a marker entry 'path/'), unless the folder already exists."""
    if manifest.entries.filter(under_folder(path + "/")).exists():
        raise ValidationError({"name": f"The folder '{path}' already exists."})
    if manifest.entries.filter(path=path).exists():
        raise ValidationError({"name": f"'{path}' is a file; pick another name."})
    _check_no_conflict(manifest, path)
    return ManifestEntry.objects.create(manifest=manifest, path=path + "/", size=0)


def manifest_delete_path(manifest: Manifest, path: str) -> int:
    """Delete a file or a whole folder; returns how many entries went. Bytes are collected
    later by blob_collect_garbage once nothing refers to them."""
    entries = manifest.entries.filter(Q(path=path) | under_folder(path + "/"))
    shas = set(entries.exclude(blob=None).values_list("blob_id", flat=True))
    count, _ = entries.delete()
    if count:
        transaction.on_commit(lambda: blob_collect_garbage(shas))
    return count


def manifest_copy(manifest: Manifest, *, prefix: str = "") -> Manifest:
    """A new manifest holding the files under `prefix`, re-rooted there. No bytes are copied."""
    copy = Manifest.objects.create()
    entries = manifest.entries.all()
    if prefix:
        # the folder's own marker ('prefix/') would become a nameless entry: the new root
        entries = entries.filter(under_folder(prefix + "/")).exclude(path=prefix + "/")
    cut = len(prefix) + 1 if prefix else 0
    ManifestEntry.objects.bulk_create(
        [
            ManifestEntry(manifest=copy, path=path[cut:], blob_id=blob_id, size=size)
            for path, blob_id, size in entries.values_list("path", "blob_id", "size").iterator()
        ],
        batch_size=2000,
    )
    return copy


def manifest_delete(manifest: Manifest) -> None:
    shas = set(manifest.entries.exclude(blob=None).values_list("blob_id", flat=True))
    manifest.delete()
    transaction.on_commit(lambda: blob_collect_garbage(shas))


def blob_collect_garbage(shas: Iterable[str]) -> None:
    """Delete the blobs among `shas` that no manifest refers to any more, bytes included."""
    shas = list(shas)
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


@dataclass
class Folder:
    name: str
    path: str
    file_count: int = 0
    size: int = 0


@dataclass
class Listing:
    folder: str
    folders: list[Folder]
    files: list[ManifestEntry]
    file_count: int  # files in the whole sub-tree
    size: int

    @property
    def is_empty(self):
        return not self.folders and not self.files


def manifest_listing(manifest: Manifest, folder: str = "") -> Listing:
    """The direct children of `folder`: sub-folders with their file counts and sizes, and files.

    One query for the whole sub-tree; counting in Python beats one query per folder."""
    prefix = folder + "/" if folder else ""
    rows = manifest.entries.filter(under_folder(prefix)) if prefix else manifest.entries.all()
    folders: dict[str, Folder] = {}
    file_ids = []
    total_files = total_size = 0
    for pk, path, blob_id, size in rows.values_list("pk", "path", "blob_id", "size").iterator():
        rest = path[len(prefix) :]
        if not rest:
            continue  # the marker of this very folder, created empty
        if blob_id is not None:
            total_files += 1
            total_size += size
        if "/" in rest:
            name = rest.split("/", 1)[0]
            entry = folders.setdefault(name, Folder(name=name, path=prefix + name))
            if blob_id is not None:
                entry.file_count += 1
                entry.size += size
        else:
            file_ids.append(pk)
    files = list(ManifestEntry.objects.filter(pk__in=file_ids).order_by("path")) if file_ids else []
    return Listing(
        folder=folder,
        folders=sorted(folders.values(), key=lambda f: f.name.lower()),
        files=files,
        file_count=total_files,
        size=total_size,
    )


def manifest_folder_exists(manifest: Manifest, folder: str) -> bool:
    return not folder or manifest.entries.filter(under_folder(folder + "/")).exists()


def manifest_files(manifest: Manifest, prefix: str = "") -> list[tuple[str, int]]:
    """(path, size) of every file under `prefix`, for the API's file listings."""
    rows = manifest.entries.exclude(blob=None)
    if prefix:
        rows = rows.filter(Q(path=prefix) | under_folder(prefix.rstrip("/") + "/"))
    return list(rows.order_by("path").values_list("path", "size"))


def manifest_file(manifest: Manifest, path: str) -> ManifestEntry | None:
    return manifest.entries.filter(path=path, blob__isnull=False).select_related("blob").first()


def manifest_write_zip(manifest: Manifest, target, *, prefix: str = "", root: str = "") -> None:
    """Write the files under `prefix` into a zip at `target` (a path or a writable file),
    each under `root/`."""
    entries = manifest.entries.exclude(blob=None).select_related("blob").order_by("path")
    if prefix:
        entries = entries.filter(under_folder(prefix + "/"))
    cut = len(prefix) + 1 if prefix else 0
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for entry in entries.iterator():
            name = posixpath.join(root, entry.path[cut:]) if root else entry.path[cut:]
            with blob_open(entry.blob) as src, archive.open(name, "w", force_zip64=True) as dst:
                shutil.copyfileobj(src, dst, CHUNK)


def manifest_zip_file(manifest: Manifest, *, prefix: str = "", root: str = ""):
    """The zip as a temporary file, rewound, for a FileResponse."""
    spool = tempfile.TemporaryFile()
    manifest_write_zip(manifest, spool, prefix=prefix, root=root)
    spool.seek(0)
    return spool


def manifest_from_files(items: Iterable[tuple[str, object]]) -> Manifest:
    """A new manifest from (clean path, file object) pairs, e.g. an unpacked zip."""
    manifest = Manifest.objects.create()
    entries = []
    for path, fileobj in items:
        blob = blob_store(fileobj)
        entries.append(ManifestEntry(manifest=manifest, path=path, blob=blob, size=blob.size))
    ManifestEntry.objects.bulk_create(entries, batch_size=2000)
    return manifest

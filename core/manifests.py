"""Content-addressed file storage: blobs named by their SHA-256 and manifests of path → blob.

Datasets, package versions, artifacts and snapshots are all manifests. A file uploaded twice is
stored once; a snapshot copies rows, never bytes. Every byte goes through Django's storage API,
so local disk and S3 behave the same and a worker elsewhere needs only the storage.
"""

import posixpath
import shutil
import tempfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Case, Count, F, Q, Sum, Value, When
from django.db.models.functions import Left, StrIndex, Substr
from django.db.models.lookups import Exact

from core.blobs import CHUNK, blob_collect_garbage, blob_open, store_files
from core.database import retry_when_locked
from core.models import Manifest, ManifestEntry

MAX_PATH_BYTES = 1000  # a file's whole path in a manifest, in UTF-8


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
        if len(part.encode()) > 255:  # every file system's limit on one name, counted in bytes
            shown = part if len(part) <= 40 else part[:40] + "…"
            raise ValidationError(
                {
                    field: f"'{shown}' is longer than 255 bytes ({len(part.encode())}): a file or "
                    "folder name can have at most 255 bytes in UTF-8."
                }
            )
    if len(path.encode()) > MAX_PATH_BYTES:
        raise ValidationError({field: f"The path is longer than {MAX_PATH_BYTES} bytes."})
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


def manifest_create() -> Manifest:
    return Manifest.objects.create()


def _parents(path: str) -> list[str]:
    """'a/b/c.txt' → ['a', 'a/b']"""
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def _check_no_conflict(manifest: Manifest, paths: list[str]) -> None:
    """No path may be both a file and a folder: among `paths`, nor against the manifest.
    One query, whatever the number of paths; compared exactly (case matters)."""
    new_folders = {parent for path in paths for parent in _parents(path)}
    files, folders = set(), set()
    for existing, blob_id in manifest.entries.values_list("path", "blob_id").iterator():
        if blob_id is None:
            folders.add(existing.rstrip("/"))
        else:
            files.add(existing)
        folders.update(_parents(existing.rstrip("/")))
    for path in paths:
        if path in new_folders or path in folders:
            raise ValidationError({"path": f"'{path}' is a folder; a file can't replace it."})
        for parent in _parents(path):
            if parent in files:
                raise ValidationError({"path": f"'{parent}' is a file, so it can't hold '{path}'."})


def manifest_put_files(manifest: Manifest, items, *, then=None) -> int:
    """Add or replace files: `items` are (clean path, file object). Everything is checked
    before anything is stored; the entries are written in bulk. Returns how many. `then`, if
    given, is called with the new entries inside the transaction that writes them (so what
    it writes, an ML Logs event, stands or falls with them)."""
    items = dict(items)  # the same path twice: the last one wins
    paths = list(items)
    _check_no_conflict(manifest, paths)
    entries = [
        ManifestEntry(manifest=manifest, path=path, blob_id=sha, size=size)
        for path, sha, size in store_files(items.items())
    ]
    # empty-folder markers of the new files' folders go: those folders are no longer empty
    markers = [f"{parent}/" for parent in {p for path in paths for p in _parents(path)}]
    replaced = set()
    with transaction.atomic():
        for start in range(0, len(paths), 500):
            old = manifest.entries.filter(path__in=paths[start : start + 500])
            replaced.update(old.exclude(blob=None).values_list("blob_id", flat=True))
            old.delete()
        for start in range(0, len(markers), 500):
            manifest.entries.filter(path__in=markers[start : start + 500], blob=None).delete()
        ManifestEntry.objects.bulk_create(entries, batch_size=2000)
        if then is not None:
            then(entries)
        if replaced:
            transaction.on_commit(lambda: blob_collect_garbage(replaced))
    return len(entries)


def manifest_put_file(manifest: Manifest, path: str, fileobj, *, then=None) -> ManifestEntry:
    """Add or replace the file at `path` (already cleaned) with the content of `fileobj`."""
    manifest_put_files(manifest, [(path, fileobj)], then=then)
    return manifest.entries.get(path=path)


def manifest_put_folder(manifest: Manifest, path: str) -> ManifestEntry | None:
    """Create an empty folder (a marker entry 'path/'), unless the folder already exists."""
    if manifest.entries.filter(under_folder(path + "/")).exists():
        raise ValidationError({"name": f"The folder '{path}' already exists."})
    if manifest.entries.filter(path=path).exists():
        raise ValidationError({"name": f"'{path}' is a file; pick another name."})
    _check_no_conflict(manifest, [path])
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


def _manifest_write(rows: list[tuple[str, str | None, int]]) -> Manifest:
    """A new manifest of (path, sha256, size) rows, in one transaction of its own. Runs make
    theirs this way (artifacts, versions, snapshots): a database locked by someone else is
    waited out, it doesn't fail the run."""

    def write():
        with transaction.atomic():
            manifest = Manifest.objects.create()
            ManifestEntry.objects.bulk_create(
                [
                    ManifestEntry(manifest=manifest, path=path, blob_id=sha, size=size)
                    for path, sha, size in rows
                ],
                batch_size=2000,
            )
        return manifest

    manifest = retry_when_locked(write)
    # its files as written, so the version a run makes of it needs no query to count them
    manifest.written = {path: (sha, size) for path, sha, size in rows if sha is not None}
    return manifest


def manifest_totals(manifest: Manifest) -> tuple[int, int]:
    """(files, bytes) of a manifest: from its rows when this process has just written it."""
    if (written := getattr(manifest, "written", None)) is not None:
        return len(written), sum(size for _, size in written.values())
    totals = manifest.entries.exclude(blob=None).aggregate(size=Sum("size"), count=Count("id"))
    return totals["count"], totals["size"] or 0


def entry_rows(entries, *fields: str, page: int = 5000):
    """values_list(path, *fields) of `entries`, by path, a page per query, each resuming after
    the last path (the unique index on manifest and path): a run's manifests are read with one
    query when small, and never through a server-side cursor (three round trips on
    PostgreSQL)."""
    after = None
    while True:
        window = entries if after is None else entries.filter(path__gt=after)
        rows = list(window.order_by("path").values_list("path", *fields)[:page])
        yield from rows
        if len(rows) < page:
            return
        after = rows[-1][0]


def manifest_copy(manifest: Manifest, *, prefix: str = "") -> Manifest:
    """A new manifest holding the files under `prefix`, re-rooted there. No bytes are copied."""
    entries = manifest.entries.all()
    if prefix:
        # the folder's own marker ('prefix/') would become a nameless entry: the new root
        entries = entries.filter(under_folder(prefix + "/")).exclude(path=prefix + "/")
    cut = len(prefix) + 1 if prefix else 0
    return _manifest_write(
        [
            (path[cut:], blob_id, size)
            for path, blob_id, size in entries.values_list("path", "blob_id", "size").iterator()
        ]
    )


def manifest_delete(manifest: Manifest) -> None:
    shas = set(manifest.entries.exclude(blob=None).values_list("blob_id", flat=True))
    retry_when_locked(manifest.delete)  # one transaction (Django's delete is atomic)
    transaction.on_commit(lambda: blob_collect_garbage(shas))


@dataclass
class Folder:
    name: str
    path: str
    file_count: int = 0
    size: int = 0


@dataclass
class FolderSummary:
    """What the file tree's head says of a folder: the files and bytes of its whole sub-tree,
    and how many sub-folders and files it holds itself."""

    folder: str
    file_count: int
    size: int
    folder_count: int
    files_here: int

    @property
    def is_empty(self):
        return not self.folder_count and not self.files_here


class FolderRows:
    """One folder's rows, sub-folders (by name, with their sub-trees' file counts and sizes)
    then files (by path), for a Paginator: two queries, never the 10,000 entries of a big tree
    as Python objects. The sub-tree is grouped once by the sub-folder each entry is in (the
    folder's own files in one group, ''), which gives the folder rows and the totals; then
    the page's files are read."""

    def __init__(self, manifest, folder: str):
        self.folder, self.prefix = folder, folder + "/" if folder else ""
        entries = manifest.entries.all()
        if self.prefix:
            entries = entries.filter(under_folder(self.prefix))
        if self.prefix and connection.vendor == "sqlite":
            # SQLite compares text byte by byte, so a folder's paths are one range of the
            # (manifest, path) index ('/' + 1 is '0'); its LIKE ignores case and can't use
            # it. PostgreSQL's collation may not keep them together: there LIKE filters.
            entries = entries.filter(path__gte=self.prefix, path__lt=self.prefix[:-1] + "0")
        # the path inside the folder (few string functions: they are most of the query's time)
        rest = Substr("path", len(self.prefix) + 1) if self.prefix else F("path")
        slash = StrIndex(rest, Value("/"))  # 0: a file of this very folder (or its marker)
        self.entries = entries.alias(slash=slash)
        self.child = Case(  # the sub-folder it is in, '' for this folder's own
            When(slash__gt=0, then=Left(rest, slash - 1)), default=Value("")
        )

    @cached_property
    def groups(self) -> list[dict]:
        """{child, file_count, size} of each sub-folder, by name (in Python: a few rows), and
        of the folder's own files (child '') first."""
        grouped = self.entries.annotate(child=self.child).values("child").order_by()
        grouped = grouped.annotate(file_count=Count("blob"), size=Sum("size"))
        return sorted(grouped, key=lambda group: (group["child"].lower(), group["child"]))

    @cached_property
    def totals(self) -> FolderSummary:
        own = [group for group in self.groups if group["child"] == ""]
        return FolderSummary(
            folder=self.folder,
            file_count=sum(group["file_count"] for group in self.groups),
            size=sum(group["size"] for group in self.groups),
            folder_count=len(self.groups) - len(own),
            files_here=own[0]["file_count"] if own else 0,  # not counting its empty marker
        )

    def count(self):
        return self.totals.folder_count + self.totals.files_here

    def __len__(self):
        return self.count()

    def __getitem__(self, window: slice):
        start, stop = window.start or 0, window.stop
        folders = [group for group in self.groups if group["child"] != ""]
        rows = [
            ("folder", Folder(g["child"], self.prefix + g["child"], g["file_count"], g["size"]))
            for g in folders[start:stop]
        ]
        if stop > len(folders):
            files = self.entries.filter(slash=0, blob__isnull=False).order_by("path")
            window = files[max(start - len(folders), 0) : stop - len(folders)]
            rows += [("file", entry) for entry in window]
        return rows


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
    return _manifest_write(list(store_files(items)))

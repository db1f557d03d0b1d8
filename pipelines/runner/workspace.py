"""A run's private workspace: the package version's files, the data at `data_directory`, and
afterwards the new version and artifacts collected from it.

    <workspace>/package   the working directory of the user's process (the seed's ~/mlpackage)
    <workspace>/home      its HOME, outside the package so nothing there becomes a version
    <workspace>/tmp       its TMPDIR
"""

import os
import shutil
import stat
import tempfile
from pathlib import Path

from django.conf import settings
from django.core.files.storage import default_storage

from aicenter.manifests import CHUNK, under_folder
from aicenter.models import blob_storage_name


class Workspace:
    def __init__(self, root: Path):
        self.root = root
        self.package = root / "package"
        self.home = root / "home"
        self.tmp = root / "tmp"

    @classmethod
    def create(cls, run_id: int) -> "Workspace":
        settings.WORKSPACES_DIR.mkdir(parents=True, exist_ok=True)
        root = Path(tempfile.mkdtemp(prefix=f"run-{run_id}-", dir=settings.WORKSPACES_DIR))
        root.chmod(0o700)
        workspace = cls(root)
        for folder in (workspace.package, workspace.home, workspace.tmp):
            folder.mkdir()
        return workspace

    def materialise(self, manifest, target: Path, *, prefix: str = "") -> int:
        """Write the manifest's files (those under `prefix`, re-rooted) into `target` as
        private copies: user code may change or delete them, never the stored data."""
        rows = manifest.entries.values_list("path", "blob_id")
        if prefix:
            rows = rows.filter(under_folder(prefix + "/")).exclude(path=prefix + "/")
        cut = len(prefix) + 1 if prefix else 0
        files, folders = [], {target}
        for path, blob_id in rows.iterator(chunk_size=5000):
            destination = target / path[cut:]
            if blob_id is None:  # an empty folder
                folders.add(destination)
                continue
            folders.add(destination.parent)
            files.append((blob_id, destination))
        for folder in sorted(folders):
            folder.mkdir(parents=True, exist_ok=True)
        for sha256, destination in files:
            blob_copy(sha256, destination)
        return len(files)

    def remove(self):
        def make_writable_and_retry(function, path, _exc_info):
            os.chmod(os.path.dirname(path), 0o700)
            if os.path.isdir(path) and not os.path.islink(path):
                os.chmod(path, 0o700)
            function(path)

        shutil.rmtree(self.root, onerror=make_writable_and_retry)


def blob_copy(sha256: str, destination: Path) -> None:
    """Copy one blob out of storage into a private file. Local storage: the kernel copies it
    (copy_file_range, as fast as `cp`); any other storage (S3): streamed through its API."""
    name = blob_storage_name(sha256)
    try:
        source = default_storage.path(name)
    except NotImplementedError:
        with default_storage.open(name, "rb") as src, open(destination, "wb") as dst:
            shutil.copyfileobj(src, dst, CHUNK)
        return
    with open(source, "rb") as src, open(destination, "wb") as dst:
        remaining = os.fstat(src.fileno()).st_size
        while remaining > 0:
            try:
                copied = os.copy_file_range(src.fileno(), dst.fileno(), remaining)
            except OSError:  # e.g. across file systems on old kernels: copy by hand
                shutil.copyfileobj(src, dst, CHUNK)
                return
            if copied == 0:
                break
            remaining -= copied


def collect_files(root: Path, *, exclude: list[str]) -> list[tuple[str, Path]]:
    """Every regular file under `root` as (relative '/' path, absolute path), skipping the
    `exclude` folders, Python caches, symlinks and special files (never followed: user code
    could point them anywhere on the worker)."""
    excluded = {e.strip("/") for e in exclude if e}
    found = []
    for folder, dirnames, filenames in os.walk(root):
        relative_folder = os.path.relpath(folder, root)
        relative_folder = "" if relative_folder == "." else relative_folder
        kept = []
        for name in dirnames:
            relative = f"{relative_folder}/{name}" if relative_folder else name
            if name == "__pycache__" or relative in excluded:
                continue
            kept.append(name)
        dirnames[:] = kept
        for name in filenames:
            path = Path(folder) / name
            relative = f"{relative_folder}/{name}" if relative_folder else name
            if relative in excluded or not stat.S_ISREG(os.lstat(path).st_mode):
                continue
            found.append((relative, path))
    return sorted(found)

"""A run's private workspace: the package version's files, the data at `data_directory`, and
afterwards the new version and artifacts collected from it.

    <workspace>/package   the working directory of the user's process (the seed's ~/mlpackage)
    <workspace>/home      its HOME, outside the package so nothing there becomes a version
    <workspace>/tmp       its TMPDIR
"""

import errno
import logging
import os
import shutil
import stat
import tempfile
from pathlib import Path

from django.conf import settings
from django.core.files.storage import default_storage

from aicenter.blobs import CHUNK
from aicenter.manifests import MAX_PATH_BYTES, entry_rows, under_folder
from aicenter.models import blob_storage_name
from pipelines.runner.blob_cache import local_blob
from pipelines.runner.trees import remove_tree

logger = logging.getLogger(__name__)


class Workspace:
    def __init__(self, root: Path):
        self.root = root
        self.package = root / "package"
        self.home = root / "home"
        self.tmp = root / "tmp"
        # metrics_file and MLflow's store (MLFLOW_TRACKING_URI): read by the worker as they grow
        self.metrics = root / "metrics"
        self.metrics_file = self.metrics / "metrics.jsonl"
        self.mlflow_store = self.metrics / "mlruns"

    @classmethod
    def create(cls, run_id: int, *, kind: str = "run") -> "Workspace":
        """A new private workspace, `<kind>-<id>-<random>` (a skill replica's: kind "skill")."""
        settings.WORKSPACES_DIR.mkdir(parents=True, exist_ok=True)
        root = Path(tempfile.mkdtemp(prefix=f"{kind}-{run_id}-", dir=settings.WORKSPACES_DIR))
        root.chmod(0o700)
        workspace = cls(root)
        for folder in (workspace.package, workspace.home, workspace.tmp, workspace.metrics):
            folder.mkdir()
        return workspace

    def materialise(self, manifest, target: Path, *, prefix: str = "") -> int:
        """Write the manifest's files (those under `prefix`, re-rooted) into `target` as
        private copies: user code may change or delete them, never the stored data."""
        entries = manifest.entries.all()
        if prefix:
            entries = entries.filter(under_folder(prefix + "/")).exclude(path=prefix + "/")
        cut = len(prefix) + 1 if prefix else 0
        files, folders = [], {target}
        for path, blob_id, size in entry_rows(entries, "blob_id", "size"):
            destination = target / path[cut:]
            if blob_id is None:  # an empty folder
                folders.add(destination)
                continue
            folders.add(destination.parent)
            files.append((blob_id, destination, size))
        for folder in sorted(folders):
            folder.mkdir(parents=True, exist_ok=True)
        for sha256, destination, size in files:
            blob_copy(sha256, destination, size)
        return len(files)

    def remove(self) -> bool:
        """Delete the workspace; True when it is gone. A failure (say, a busy mount) is logged,
        not raised: the run's outcome stands, and the sweeper removes the leftovers of finished
        runs later."""
        try:
            remove_tree(self.root)
        except OSError as error:
            logger.warning(
                "could not remove the workspace %s (%s); a later sweep will try again",
                self.root,
                error,
            )
        return not self.root.exists()


def blob_copy(sha256: str, destination: Path, size: int | None = None) -> None:
    """Copy one blob into a private file. From a file on this machine (local storage's, or the
    blob cache's copy of a remote one) the kernel copies it (copy_file_range, as fast as `cp`);
    a blob too big for the cache is streamed through the storage API."""
    source = local_blob(sha256, size)
    if source is None:
        with default_storage.open(blob_storage_name(sha256), "rb") as src:
            with open(destination, "wb") as dst:
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


class UnsafeOutput(Exception):
    """An output folder the run turned into a link: refused, with `reason` for the user."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


LINK = "a symbolic link (outputs are never collected through links)"
TOO_DEEP = f"its path is longer than {MAX_PATH_BYTES} bytes"
NOT_UTF8 = "its name is not UTF-8"
NO_FOLLOW = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


def open_folder(root: Path, relative: str = "") -> int | None:
    """A directory fd for `root`/`relative`, reached one component at a time without following
    a symbolic link (None if it doesn't exist). Raises UnsafeOutput when a component is a link."""
    try:
        fd = os.open(root, NO_FOLLOW | os.O_DIRECTORY)
    except FileNotFoundError:
        return None
    except OSError as error:
        raise UnsafeOutput(f"the run's folder {root.name} was replaced by a link") from error
    for part in [p for p in relative.split("/") if p]:
        try:
            child = os.open(part, NO_FOLLOW | os.O_DIRECTORY, dir_fd=fd)
        except FileNotFoundError:
            os.close(fd)
            return None
        except OSError as error:  # a symlink, or a file where a folder should be
            is_link = stat.S_ISLNK(os.lstat(part, dir_fd=fd).st_mode)
            os.close(fd)
            if not is_link:
                return None
            raise UnsafeOutput(
                f"'{relative}' is a symbolic link: outputs are never collected through links"
            ) from error
        os.close(fd)
        fd = child
    return fd


def collected_files(root: Path, relative: str = "", *, exclude=(), note=None):
    """Yield (relative '/' path, open file) for every regular file under `root`/`relative`,
    skipping the `exclude` folders and Python caches. Nothing is ever followed: the walk holds
    directory fds (os.fwalk), each file is opened relative to its folder with O_NOFOLLOW and its
    type checked on the open file, so a link swapped in at any moment leads nowhere. Links,
    special files, names that aren't UTF-8 and paths longer than a manifest holds are skipped
    with a `note(text)`; the last also keeps the walk (os.fwalk recurses once per level) well
    within Python's stack."""
    excluded = {e.strip("/") for e in exclude if e}
    top = open_folder(root, relative)
    if top is None:
        return
    try:
        for folder, dirnames, filenames, dirfd in os.fwalk(".", dir_fd=top):
            here = "" if folder == "." else folder[2:]
            kept = []
            for name in sorted(dirnames):
                path = _join(here, name)
                if name == "__pycache__" or path in excluded:
                    continue
                if stat.S_ISLNK(os.lstat(name, dir_fd=dirfd).st_mode):  # fwalk won't enter it
                    if note:
                        note(f"skipped {_join(relative, path)}: {LINK}")
                    continue
                if len(os.fsencode(path)) > MAX_PATH_BYTES:  # names may be any bytes
                    if note:
                        note(f"skipped {_shortened(_join(relative, path))}/: {TOO_DEEP}")
                    continue
                if not is_utf8(name):
                    if note:
                        note(f"skipped {_shown(_join(relative, path))}/: {NOT_UTF8}")
                    continue
                kept.append(name)
            dirnames[:] = kept
            for name in sorted(filenames):
                path = _join(here, name)
                if path in excluded:
                    continue
                if len(os.fsencode(path)) > MAX_PATH_BYTES:
                    if note:
                        note(f"skipped {_shortened(_join(relative, path))}: {TOO_DEEP}")
                    continue
                if not is_utf8(name):
                    if note:
                        note(f"skipped {_shown(_join(relative, path))}: {NOT_UTF8}")
                    continue
                opened = open_regular(name, dirfd)
                if isinstance(opened, str):
                    if note:
                        note(f"skipped {_join(relative, path)}: {opened}")
                    continue
                with opened:
                    yield path, opened
    finally:
        os.close(top)


def _join(folder: str, name: str) -> str:
    return f"{folder}/{name}" if folder else name


def _shortened(path: str) -> str:
    return path if len(path) <= 120 else f"{path[:60]}…{path[-40:]}"


def is_utf8(name: str) -> bool:
    """Whether a name the file system gave (any bytes: os.fsdecode makes those that aren't
    UTF-8 surrogates) is UTF-8, as every path a manifest or a column stores must be."""
    try:
        name.encode()
    except UnicodeEncodeError:
        return False
    return True


def _shown(path: str) -> str:
    """A path that isn't UTF-8, for a note: the bytes that aren't written as \\xNN."""
    return _shortened(os.fsencode(path).decode(errors="backslashreplace"))


def open_regular(name: str, dirfd: int):
    """The open file, or why it was skipped."""
    try:
        fd = os.open(name, NO_FOLLOW, dir_fd=dirfd)
    except OSError as error:
        if error.errno == errno.ELOOP:
            return LINK
        return f"unreadable ({error.strerror})"
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return "not a regular file"
    return os.fdopen(fd, "rb")


def disk_usage(root: Path) -> int:
    """Bytes the files under `root` take on disk (links not followed)."""
    total, folders = 0, [str(root)]
    while folders:
        try:
            with os.scandir(folders.pop()) as entries:
                for entry in entries:
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            folders.append(entry.path)
                        total += entry.stat(follow_symlinks=False).st_blocks * 512
                    except OSError:
                        pass
        except OSError:
            pass
    return total

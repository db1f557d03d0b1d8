"""A run's private workspace: the package version's files, the data at `data_directory`, and
afterwards the new version and artifacts collected from it.

    <workspace>/package   the working directory of the user's process (the package's files)
    <workspace>/home      its HOME, outside the package so nothing there becomes a version
    <workspace>/tmp       its TMPDIR

A run's workspace is on a file system of its own where the worker can make one (disks.py):
the kernel then holds its disk and file limits. Elsewhere it is a folder of the workspaces
folder, and the limits are checked by walking it.
"""

import contextlib
import errno
import logging
import os
import shutil
import stat
import tempfile
from pathlib import Path

from django.conf import settings
from django.core.files.storage import default_storage

from core.blob_cache import local_blob
from core.blobs import CHUNK
from core.manifests import MAX_PATH_BYTES, entry_rows, under_folder
from core.models import blob_storage_name
from sandbox import disks
from sandbox.trees import remove_tree

logger = logging.getLogger(__name__)
# Workspaces of these kinds are on a disk of their own (runs', and those started ahead for
# the next run); skill replicas' are folders.
DISK_KINDS = ("run", "ahead")
# Without a disk of its own, a workspace's size is walked this often: a walk of the whole
# folder costs far more than asking a file system what it holds.
LIMITS_WALK_SECONDS = 2.0
FULL = (errno.ENOSPC, errno.EDQUOT)


class OverLimit(Exception):
    """The run's files don't fit its limits ("disk" or "files"), with `reason` for the user."""

    def __init__(self, which: str):
        self.which, self.reason = which, limit_reason(which)
        super().__init__(self.reason)


def limit_reason(which: str) -> str:
    """Why a run that went over its disk ("disk") or file ("files") limit failed."""
    if which == "files":
        return (
            f"the run went over its file limit of {settings.PIPELINE_FILES_LIMIT:,} files and "
            "folders (AICENTER_RUN_FILES)"
        )
    return (
        f"the run went over its disk limit of {settings.PIPELINE_DISK_LIMIT_MB:,} MB "
        "(AICENTER_RUN_DISK_MB)"
    )


class Workspace:
    def __init__(self, root: Path, disk: disks.Disk | None = None):
        self.root = root
        self.disk = disk  # its own file system, if it has one
        self.package = root / "package"
        self.home = root / "home"
        self.tmp = root / "tmp"
        # metrics_file and MLflow's store (MLFLOW_TRACKING_URI): read by the worker as they grow
        self.metrics = root / "metrics"
        self.metrics_file = self.metrics / "metrics.jsonl"
        self.mlflow_store = self.metrics / "mlruns"

    @classmethod
    def create(cls, run_id: int, *, kind: str = "run") -> "Workspace":
        """A new private workspace, `<kind>-<id>-<random>` (a skill replica's: kind "skill"),
        on a disk of its own when it is a run's and this worker can make one."""
        settings.WORKSPACES_DIR.mkdir(parents=True, exist_ok=True)
        prefix = f"{kind}-{run_id}-"
        taken = disks.take(prefix) if kind in DISK_KINDS else None
        if taken:
            disk, root = taken
        else:
            disk, root = None, Path(tempfile.mkdtemp(prefix=prefix, dir=settings.WORKSPACES_DIR))
        root.chmod(0o700)
        workspace = cls(root, disk)
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
        try:
            for folder in sorted(folders):
                folder.mkdir(parents=True, exist_ok=True)
            for sha256, destination, size in files:
                blob_copy(sha256, destination, size)
        except OSError as error:
            if self.disk is None or error.errno not in FULL:  # the machine's disk, not the run's
                raise
            raise OverLimit(self.over_limit() or "disk") from error
        return len(files)

    @property
    def limits_enforced_by(self) -> str:
        """'filesystem': the kernel holds its limits; 'check': walking it does."""
        return "filesystem" if self.disk else "check"

    @property
    def limits_check_seconds(self) -> float:
        """How often over_limit() is worth asking while the run runs."""
        return 0.0 if self.disk else LIMITS_WALK_SECONDS

    def over_limit(self, *, final: bool = False) -> str:
        """Which of the run's limits the workspace went over: "disk", "files", or "". On a
        disk of its own, the file system says at once (what it holds, files deleted while open
        included). `final`: the run has ended, and its outputs are about to be collected:
        every name counts, so hard links to one file count each."""
        limit_bytes, limit_files = disks.wanted_limits()
        if self.disk:
            used_bytes, used_files = self.disk.usage()
            if final and limit_files and used_files <= limit_files:
                used_files = max(used_files, workspace_names(self.root, most=limit_files))
        else:
            used_bytes, used_files = workspace_usage(self.root, most=limit_files)
        if limit_bytes and used_bytes > limit_bytes:
            return "disk"
        if limit_files and used_files > limit_files:
            return "files"
        return ""

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
    blob cache's copy of a remote one) the kernel copies it; a blob too big for the cache is
    streamed through the storage API."""
    source = local_blob(sha256, size)
    if source is None:
        with default_storage.open(blob_storage_name(sha256), "rb") as src:
            with open(destination, "wb") as dst:
                shutil.copyfileobj(src, dst, CHUNK)
        return
    with open(source, "rb") as src, open(destination, "wb") as dst:
        remaining = os.fstat(src.fileno()).st_size
        copy = os.copy_file_range  # as fast as `cp`, within one file system
        while remaining > 0:
            try:
                copied = copy(src.fileno(), dst.fileno(), remaining)
            except OSError as error:
                if error.errno in FULL:
                    raise
                if copy is os.copy_file_range:  # across file systems (a run's own disk)
                    copy = _send
                    continue
                shutil.copyfileobj(src, dst, CHUNK)  # neither: by hand
                return
            if copied == 0:
                break
            remaining -= copied


def _send(src: int, dst: int, count: int) -> int:
    """sendfile: the kernel copies between any two files, without bytes through Python."""
    return os.sendfile(dst, src, None, count)


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


def workspace_names(root: Path, *, most: int = 0) -> int:
    """How many names (files, folders, links) are under `root`; with `most`, counted only
    until there are more than that. Only the folders' listings are read: no file's details."""
    names, folders = 0, [str(root)]
    while folders and not (most and names > most):
        try:
            with os.scandir(folders.pop()) as entries:
                for entry in entries:
                    names += 1
                    with contextlib.suppress(OSError):
                        if entry.is_dir(follow_symlinks=False):
                            folders.append(entry.path)
        except OSError:
            pass
    return names


def workspace_usage(root: Path, *, most: int = 0) -> tuple[int, int]:
    """(bytes the files under `root` take on disk, how many names it holds), links not
    followed, a file with several names counted once in bytes and once per name. With `most`,
    the walk stops once there are more names than that."""
    total, names, seen, folders = 0, 0, set(), [str(root)]
    while folders:
        try:
            with os.scandir(folders.pop()) as entries:
                for entry in entries:
                    names += 1
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            folders.append(entry.path)
                        found = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    if found.st_nlink > 1 and not stat.S_ISDIR(found.st_mode):
                        if found.st_ino in seen:
                            continue
                        seen.add(found.st_ino)
                    total += found.st_blocks * 512
        except OSError:
            pass
        if most and names > most:
            break
    return total, names


def workspace_folders(pattern: str) -> list[Path]:
    """This machine's workspaces whose names match `pattern` (e.g. "run-12-*"): folders of
    the workspaces folder, and those at the top of runs' disks (disks.py)."""
    top = settings.WORKSPACES_DIR
    return [*top.glob(pattern), *top.glob(f"{disks.DISKS}/*/{pattern}")]

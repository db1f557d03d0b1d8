"""A file system of its own for every run's workspace, so that the kernel holds its disk and
file limits: a sparse ext4 image, mounted through a loop device, with room for the run's disk
limit (AICENTER_RUN_DISK_MB) and inodes for its file limit (AICENTER_RUN_FILES). Nothing a run
does writes past them, not a file deleted while still open nor a process it left running,
which a walk of the workspace doesn't see. (Hard links take no inode: the runner counts names
as the run ends, see Workspace.over_limit.)

Making and mounting an image costs more than a trivial run's whole budget for its sandbox,
so a worker process keeps its images, mounted, for as long as it lives, and gives each new
workspace one that holds none (at most two are in use: the run's and the next run's, started
ahead). The workspace is a folder at the top of its disk, removed after the run like any
workspace; the disk is mounted with `discard`, so what a run deleted goes back to the
machine's disk at once.

    <workspaces>/disks/disk-<pid>-<random>.img   the image (sparse: it takes what is written)
    <workspaces>/disks/disk-<pid>-<random>/      where it is mounted: the workspace is in it

Its worker holds a lock (flock) on each image as long as it lives; the sweeper reclaims the
images whose lock nobody holds (a worker that was killed): unmounted, its loop device
detached, deleted. A worker that isn't root can't mount: its workspaces are plain folders
and the runner checks their size by walking them (`enforcement()` says which).
"""

import atexit
import fcntl
import functools
import logging
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

logger = logging.getLogger(__name__)
DISKS = "disks"  # the folder in the workspaces folder that holds the images
# ext4's own inodes (the root folder, lost+found, the journal's, ...), used before any file.
EXT4_RESERVED_INODES = 11
# What the kernel lets a run write past its limits: enough for the runner to see that it went
# over (usage above the limit fails the run), little enough to be no room worth taking. The
# disk's free space is made to be its limit and up to as much again of this.
SLACK_BYTES = 4 * 1024 * 1024
SLACK_FILES = 64
# An inode takes 256 bytes of its image; the first guess of ext4's other bookkeeping (bitmaps,
# group descriptors, the blocks it keeps for delayed allocation), corrected once measured.
INODE_BYTES = 256
BOOKKEEPING_BYTES = 16 * 1024 * 1024
SIZING_ATTEMPTS = 4
COMMAND_TIMEOUT_SECONDS = 60
MKFS = [
    "mkfs.ext4",
    "-q",
    "-F",
    "-b",
    "4096",
    "-m",
    "0",  # no blocks kept for root: the run's limit is all it gets
    "-O",
    "^has_journal,^resize_inode",  # a workspace outlives no crash, and never grows
    "-E",
    "lazy_itable_init=1,nodiscard",  # the image is sparse already: nothing to write or trim
]
# noinit_itable: the kernel doesn't zero inode tables in the background (they would take
# their whole size in the image); nosuid, nodev: nothing a run leaves there acts as such.
MOUNT_OPTIONS = "loop,discard,noinit_itable,nosuid,nodev"


@dataclass
class Disk:
    image: Path
    mount: Path
    limits: tuple[int, int]  # (bytes, files) it was made for
    lock: object  # the image, open and locked: its worker is alive
    used_bytes: int = 0  # what it held when its workspace was made
    used_files: int = 0

    def usage(self) -> tuple[int, int]:
        """(bytes, files and folders) written since its workspace was made."""
        found = os.statvfs(self.mount)
        used_bytes = (found.f_blocks - found.f_bfree) * found.f_frsize
        used_files = found.f_files - found.f_ffree
        return used_bytes - self.used_bytes, used_files - self.used_files

    def holds_workspace(self) -> bool:
        return any(name != "lost+found" for name in os.listdir(self.mount))


_disks: list[Disk] = []
_lock = threading.Lock()
_problem = ""  # why this worker could not make a disk, once it tried and failed


def wanted_limits() -> tuple[int, int]:
    """(bytes, files) a run may use; 0: no limit."""
    return settings.PIPELINE_DISK_LIMIT_MB * 1024 * 1024, settings.PIPELINE_FILES_LIMIT


@functools.cache
def _tools() -> bool:
    return all(shutil.which(tool) for tool in ("mkfs.ext4", "mount", "umount", "losetup"))


def enforcement() -> str:
    """'filesystem' where this worker gives each run a disk of its own, else 'check'."""
    possible = settings.SANDBOX_DISKS and os.geteuid() == 0 and all(wanted_limits())
    return "filesystem" if possible and _tools() and not _problem else "check"


def described() -> str:
    """What a run's workspace gets here, in a sentence for the worker's log."""
    limit_mb, files = settings.PIPELINE_DISK_LIMIT_MB, settings.PIPELINE_FILES_LIMIT
    limits = (
        f"disk ≤ {limit_mb:,} MB (AICENTER_RUN_DISK_MB), files ≤ {files:,} (AICENTER_RUN_FILES)"
    )
    if enforcement() == "filesystem":
        return f"{limits}, held by the kernel: each run's workspace is a file system of its own"
    return (
        f"{limits}, checked by walking the workspace every few seconds: no file system of its "
        f"own per run ({_why_not()}); a file deleted while still open escapes the check"
    )


def _why_not() -> str:
    if _problem:
        return _problem
    if os.geteuid() != 0:
        return "this worker isn't root and can't mount one"
    if not settings.SANDBOX_DISKS:
        return "AICENTER_SANDBOX_DISKS=false"
    if not all(wanted_limits()):
        return "AICENTER_RUN_DISK_MB or AICENTER_RUN_FILES is 0, no limit, and an image needs both"
    return "mkfs.ext4, mount, umount or losetup is missing"


def prepare() -> str:
    """Make this worker's first disk now, so its start log says what runs really get."""
    if enforcement() == "filesystem":
        try:
            with _lock:
                _free_disk()
        except OSError:
            pass  # said by described()
    return described()


def take(prefix: str) -> tuple[Disk, Path] | None:
    """A disk for a new workspace, holding none, its usage counted from now, and the
    workspace's folder made on it (`prefix`<random>); None: this worker can't make one, and
    the workspace is a plain folder."""
    if enforcement() != "filesystem":
        return None
    try:
        with _lock:  # the folder made before the lock goes: the disk holds a workspace now
            disk = _free_disk()
            found = os.statvfs(disk.mount)
            disk.used_bytes = (found.f_blocks - found.f_bfree) * found.f_frsize
            disk.used_files = found.f_files - found.f_ffree
            return disk, Path(tempfile.mkdtemp(prefix=prefix, dir=disk.mount))
    except OSError:
        return None


def _free_disk() -> Disk:
    limits = wanted_limits()
    for disk in list(_disks):
        if disk.limits != limits and not disk.holds_workspace():  # the settings changed
            _release(disk)
        elif disk.limits == limits and not disk.holds_workspace():
            return disk
    disk = _new_disk(limits)
    _disks.append(disk)
    if len(_disks) == 1:
        atexit.register(release_all)
    return disk


def _new_disk(limits: tuple[int, int]) -> Disk:
    """Make and mount an image with room for `limits`: what ext4 keeps for itself depends on
    the size, so the free space is measured once mounted, and the image made again, bigger or
    smaller, until the run gets its limit and little more."""
    global _problem
    folder = settings.WORKSPACES_DIR / DISKS
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o711)
    name = f"disk-{os.getpid()}-{secrets.token_hex(4)}"
    image, mount = folder / f"{name}.img", folder / name
    # locked before it has its name: the sweeper takes an image nobody holds for a lost one
    making = folder / f"{name}.new"
    lock = open(making, "wb")  # noqa: SIM115 - held open as long as the disk lives
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    making.rename(image)
    disk = Disk(image, mount, limits, lock)
    want_bytes, want_files = limits[0] + SLACK_BYTES, limits[1] + SLACK_FILES
    inodes = want_files + EXT4_RESERVED_INODES
    size = want_bytes + inodes * INODE_BYTES + BOOKKEEPING_BYTES
    try:
        mount.mkdir(exist_ok=True)
        for _ in range(SIZING_ATTEMPTS):
            os.truncate(image, 0)  # a fresh, sparse image
            os.truncate(image, size)
            _command(*MKFS, "-N", str(inodes), str(image))
            _command("mount", "-t", "ext4", "-o", MOUNT_OPTIONS, str(image), str(mount))
            found = os.statvfs(mount)
            extra_bytes = found.f_bavail * found.f_frsize - want_bytes
            extra_files = found.f_favail - want_files
            if 0 <= extra_bytes <= SLACK_BYTES and extra_files >= 0:
                mount.chmod(0o711)
                return disk
            _command("umount", str(mount))
            size -= extra_bytes - SLACK_BYTES // 2
            inodes -= min(extra_files, 0)
        raise OSError(f"no image size gives {want_bytes:,} bytes and {want_files:,} files")
    except (OSError, subprocess.SubprocessError) as error:
        _problem = f"making one failed: {error}"
        logger.warning("no file system of its own for runs' workspaces: %s", _problem)
        _release(disk)
        raise OSError(_problem) from error


def _command(*argv: str) -> None:
    answer = subprocess.run(argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_SECONDS)
    if answer.returncode:
        raise OSError(f"{' '.join(argv[:2])}: {answer.stderr.strip()[-300:]}")


def _release(disk: Disk) -> None:
    if disk in _disks:
        _disks.remove(disk)
    reclaim(disk.image, disk.mount)
    disk.lock.close()


def release_all() -> None:
    """Unmount and delete every disk of this process (at its exit)."""
    with _lock:
        for disk in list(_disks):
            _release(disk)


def reclaim(image: Path, mount: Path) -> None:
    """An image's mount gone (lazily: anything still using it keeps it till it lets go, and
    the loop device, set to clear itself, goes with it), any loop device left on it detached,
    the image and its mount point deleted."""
    if _mounted(mount):
        subprocess.run(["umount", "--lazy", str(mount)], capture_output=True, check=False)
    for device in _loop_devices(image):
        subprocess.run(["losetup", "--detach", device], capture_output=True, check=False)
    image.unlink(missing_ok=True)
    try:
        mount.rmdir()
    except FileNotFoundError:
        pass
    except OSError as error:
        logger.warning("could not remove %s (%s)", mount, error)


def lost_disks():
    """(image, mount point) of the disks on this machine whose worker is gone: nobody holds
    their lock. Each is yielded locked, so no other sweeper takes it meanwhile. (The lock is
    the image's open file's: a process that shares it, a fork of the worker, keeps it held.)"""
    folder = settings.WORKSPACES_DIR / DISKS
    # disk-<pid>-<random>.img, or .new: its worker was killed while it made it
    for image in sorted(folder.glob("disk-*.*")):
        try:
            held = open(image, "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            continue
        with held:
            try:
                fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # its worker lives
            yield image, image.with_suffix("")


def _mounted(mount: Path) -> bool:
    target = str(mount).encode()
    with open("/proc/self/mountinfo", "rb") as mounts:
        # the mount point is the fifth field, with spaces and the like escaped as \040
        return any(_unescape(line.split()[4]) == target for line in mounts)


def _unescape(field: bytes) -> bytes:
    return re.sub(rb"\\([0-7]{3})", lambda octal: bytes([int(octal[1], 8)]), field)


def _loop_devices(image: Path) -> list[str]:
    answer = subprocess.run(
        ["losetup", "--associated", str(image), "--noheadings", "--output", "NAME"],
        capture_output=True,
        text=True,
        check=False,
    )
    return answer.stdout.split()

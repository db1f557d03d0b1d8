"""Free space on the disks this process writes to, against the reserve AI Center keeps on them
(AICENTER_DISK_RESERVE_MB). Below it nothing new comes in: uploads are refused with 507
before anything is stored, workers start no run (runs wait, queued, saying why) and
`/healthz` answers 503. A disk that fills up is then a state that says so, with room left for
what is under way (runs finishing, the database, logs), instead of errors everywhere.

The disks are the data dir's and, where they are elsewhere, local storage's and the
workspaces' (AICENTER_WORKSPACES_DIR): the fullest one decides. This module alone decides."""

import os
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.storage import FileSystemStorage, storages

MB = 1024 * 1024


@dataclass(frozen=True)
class DiskSpace:
    free: int  # bytes anyone may still write on the fullest disk
    path: Path  # a folder of that disk
    reserve: int  # bytes (0: no reserve)

    @property
    def low(self) -> bool:
        return self.free < self.reserve

    def problem(self) -> str:
        """What is wrong, in words ('' when nothing is)."""
        if not self.low:
            return ""
        return (
            f"the data disk has {self.free // MB:,} MB free, under the "
            f"{self.reserve // MB:,} MB kept in reserve (AICENTER_DISK_RESERVE_MB)"
        )


class DiskFull(ValidationError):
    """An upload refused because the data disk is below its reserve: 507 in the API, a form
    error on pages (it is a ValidationError of the upload's field)."""


def data_disk_space() -> DiskSpace:
    """The free space of the fullest disk AI Center writes to here (a few statvfs calls)."""
    folders = [settings.DATA_DIR, settings.WORKSPACES_DIR]
    storage = storages["default"]
    if isinstance(storage, FileSystemStorage):  # S3's space is not ours to watch
        folders.append(storage.location)
    seen, fullest = set(), None
    for folder in folders:
        existing = _existing(Path(folder))
        disk = os.stat(existing).st_dev
        if disk in seen:
            continue
        seen.add(disk)
        found = os.statvfs(existing)
        free = found.f_bavail * found.f_frsize
        if fullest is None or free < fullest.free:
            fullest = DiskSpace(free, existing, settings.DISK_RESERVE_MB * MB)
    return fullest


def data_disk_refuse_when_low(*, field: str) -> None:
    """Raise DiskFull (for the upload's `field`) when the data disk is below its reserve;
    called before anything of an upload is read or stored."""
    problem = data_disk_space().problem()
    if problem:
        raise DiskFull(
            {field: f"Not stored: {problem}. Try again once an administrator has freed space."},
        )


def _existing(folder: Path) -> Path:
    """The folder, or the nearest one above it that exists (a folder not made yet will be
    on that one's disk)."""
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder

"""Reading uploaded zips safely: decided from the zip's directory before anything is extracted."""

import stat
import zipfile

from django.conf import settings
from django.core.exceptions import ValidationError

IGNORED_PREFIXES = ("__MACOSX/",)
IGNORED_NAMES = (".DS_Store",)


def _entry_problem(info: zipfile.ZipInfo) -> str | None:
    name = info.filename
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return f"'{name}' has an absolute path."
    if ".." in parts:
        return f"'{name}' points outside the archive ('..')."
    kind = stat.S_IFMT(info.external_attr >> 16)
    if kind == stat.S_IFLNK:
        return f"'{name}' is a symbolic link; only regular files are accepted."
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        return f"'{name}' is a special file; only regular files are accepted."
    return None


def open_safe_zip(upload, *, max_bytes: int, field: str = "file"):
    """Open `upload` as a zip and return (zip, {name: info} of its regular files).

    Refuses, with a ValidationError on `field`: non-zips, '..' or absolute paths, symlinks and
    special files, more than `max_bytes` uncompressed, and absurd compression ratios."""

    def fail(message):
        raise ValidationError({field: message})

    if upload is None:
        fail("Choose a zip file.")
    try:
        archive = zipfile.ZipFile(upload)
        infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        fail("This file is not a zip archive.")
    problems = [problem for info in infos if (problem := _entry_problem(info))]
    if problems:
        fail(problems)
    total = sum(info.file_size for info in infos)
    compressed = sum(info.compress_size for info in infos)
    if total > max_bytes:
        fail(f"The zip unpacks to {total:,} bytes, over the limit of {max_bytes:,} bytes.")
    ratio = settings.PACKAGE_MAX_COMPRESSION_RATIO
    if total > 1024 * 1024 and total > ratio * max(compressed, 1):
        fail(
            f"The zip's compression ratio ({total // max(compressed, 1)}:1) is absurd; "
            "it looks like a zip bomb."
        )
    files = {
        info.filename.replace("\\", "/"): info
        for info in infos
        if not info.is_dir()
        and not info.filename.startswith(IGNORED_PREFIXES)
        and info.filename.rsplit("/", 1)[-1] not in IGNORED_NAMES
    }
    return archive, files

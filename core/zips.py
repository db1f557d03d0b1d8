"""Reading uploaded zips safely: decided from the zip's directory, and one reading of every
member, before anything is stored."""

import lzma
import stat
import zipfile
import zlib

from django.conf import settings
from django.core.exceptions import ValidationError

IGNORED_PREFIXES = ("__MACOSX/",)
IGNORED_NAMES = (".DS_Store",)
UTF8_NAME_FLAG = 0x800  # general purpose bit 11: the name is UTF-8
ENCRYPTED_FLAG = 0x1
READABLE_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)
CHUNK = 1024 * 1024


def _decode_name(info: zipfile.ZipInfo) -> None:
    """Info-ZIP's `zip` (Linux, macOS) stores UTF-8 names without the UTF-8 flag, and zipfile
    decodes every unflagged name as cp437: 'データ.txt' would become 'πâçπâ╝πé┐.txt'. An
    unflagged name that is valid UTF-8 is read as UTF-8; any other stays cp437, as old Windows
    tools wrote it (b'caf\\x82.txt' is 'café.txt')."""
    if info.flag_bits & UTF8_NAME_FLAG or info.orig_filename.isascii():
        return
    try:
        name = info.orig_filename.encode("cp437").decode("utf-8")
    except UnicodeError:
        return
    # only `filename` changes: zipfile checks each local header against `orig_filename`
    info.filename = name.split("\0", 1)[0]  # cut at a NUL, as zipfile does


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
    if info.flag_bits & ENCRYPTED_FLAG:
        return f"'{name}' is encrypted; upload a zip without a password."
    if info.compress_type not in READABLE_METHODS:
        return (
            f"'{name}' is compressed with a method this server can't read "
            f"(method {info.compress_type}); use Deflate, the usual one."
        )
    return None


def _files_and_folders_problems(infos: list[zipfile.ZipInfo]) -> list[str]:
    """A path can't be a file and a folder at once ('a' and 'a/b.txt'): nothing could unpack
    it, so refuse it here rather than fail every run that uses it."""
    names = [info.filename.replace("\\", "/") for info in infos]
    files = {name for name in names if not name.endswith("/")}
    folders = {name.rstrip("/") for name in names if name.endswith("/")}
    for name in names:
        parts = name.rstrip("/").split("/")
        folders.update("/".join(parts[:i]) for i in range(1, len(parts)))
    return [f"'{name}' is both a file and a folder." for name in sorted(files & folders)]


def _damage(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> str | None:
    """Read one member through, as storing it will: a damaged member is only found by reading
    it, and storing must not begin before every member is known to be whole."""
    name = info.filename
    try:
        member = archive.open(info)
    except zipfile.BadZipFile as error:
        if "differ" in str(error):  # zipfile: "File name in directory … and header … differ."
            return f"The zip is damaged: {name} has another name in its local header."
        return f"The zip is damaged: the local header of {name} is unreadable."
    try:
        with member:
            while member.read(CHUNK):
                pass
    except zipfile.BadZipFile:  # the only one a read raises: "Bad CRC-32 for file …"
        return f"The zip is damaged: {name} fails its CRC check."
    except (EOFError, OSError, ValueError, zlib.error, lzma.LZMAError):
        return f"The zip is damaged: {name} is cut short or its data is corrupt."
    return None


def open_safe_zip(upload, *, max_bytes: int, field: str = "file"):
    """Open `upload` as a zip and return (zip, {name: info} of its regular files).

    Names without the UTF-8 flag are read as UTF-8 when they are valid UTF-8, else as cp437.
    Refuses, with a ValidationError on `field`: non-zips, '..' or absolute paths, symlinks and
    special files, encrypted members and unknown compression methods, more than `max_bytes`
    uncompressed, absurd compression ratios, a path that is both a file and a folder, and
    damaged members (a bad CRC, a local header that disagrees with the directory)."""

    def fail(message):
        raise ValidationError({field: message})

    if upload is None:
        fail("Choose a zip file.")
    try:
        archive = zipfile.ZipFile(upload)
        infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        fail("This file is not a zip archive.")
    for info in infos:
        _decode_name(info)
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
    kept = [
        info
        for info in infos
        if not info.filename.startswith(IGNORED_PREFIXES)
        and info.filename.rsplit("/", 1)[-1] not in IGNORED_NAMES
    ]
    if problems := _files_and_folders_problems(kept):
        fail(problems)
    files = {info.filename.replace("\\", "/"): info for info in kept if not info.is_dir()}
    if problems := [problem for info in files.values() if (problem := _damage(archive, info))]:
        fail(problems)
    return archive, files

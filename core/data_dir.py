"""The data dir holds every project's files, the embedded Redis, the signing key (run.py's) and,
by default, the SQLite database: only the server's own user may read it. Made 0700 (0600 for
the database file) from the start, and narrowed at every start where found wider (a data dir
made by an older version, a copy, a restore).

Sandboxes still reach the folders they need under it: bubblewrap mounts them (as root, or as
the data dir's owner in a user namespace) at their own paths, under folders it makes, so
nothing inside a sandbox crosses the data dir itself. Only unsandboxed runs
(AICENTER_SANDBOX=off) cross it as other uids: then it stays crossable (0711), never readable.

Standard library only: the settings import it."""

import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)

PRIVATE_DIR, CROSSABLE_DIR, PRIVATE_FILE = 0o700, 0o711, 0o600
# SQLite's companions of a database file, given its mode by SQLite when it makes them.
COMPANIONS = ("-wal", "-shm", "-journal")


def _narrow(path: Path, mode: int) -> None:
    """Take away every permission `mode` doesn't grant (none is added)."""
    try:
        current = path.stat().st_mode & 0o777
        if current & ~mode:
            path.chmod(current & mode)
    except FileNotFoundError:
        pass
    except OSError as error:  # not its owner (a volume mounted by another user, say)
        logger.warning("%s can't be narrowed to %s: %s", path, oct(mode), error)


def data_dir_protect(data_dir: Path, *, database: dict, crossable: bool = False) -> None:
    """Make the data dir (if missing) and narrow it to 0700 (0711 when `crossable`), and the
    SQLite database file of `database` (Django's DATABASES entry) to 0600, made empty with
    that mode if missing, so SQLite never creates it with the umask's 0644."""
    mode = CROSSABLE_DIR if crossable else PRIVATE_DIR
    data_dir.mkdir(parents=True, exist_ok=True, mode=mode)
    _narrow(data_dir, mode)
    name = str(database.get("NAME") or "")
    if not database.get("ENGINE", "").endswith("sqlite3") or name in ("", ":memory:"):
        return
    if name.startswith("file:"):  # a URI (shared in-memory databases of tests): not a file
        return
    path = Path(name)
    if path.parent.is_dir() and not path.exists():
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE))
        except FileExistsError:  # made by another process a moment ago
            pass
    for file in (path, *(Path(f"{path}{suffix}") for suffix in COMPANIONS)):
        _narrow(file, PRIVATE_FILE)

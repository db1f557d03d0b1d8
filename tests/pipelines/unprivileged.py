"""A real pipeline worker that isn't root, for the tests of the sandbox's non-root mode (user
namespaces): `manage.py rqworker` as a uid of its own, with its own data dir, on the session's
test database, Redis and an S3 storage (moto's server, which every uid reaches over loopback).

Starting it takes root: the test session is root, the worker is not. What it needs of the
session's is lent to its uid's group for as long as it runs: on SQLite the test database's
folder and files, with the embedded Redis that server's socket (PostgreSQL and a Redis server
are reached over TCP). Where the interpreter lives in a folder only root may enter (pyenv under
/root), the worker starts in a mount namespace of its own that shows that folder (and only it)
to its uid, through a root bwrap that shares everything else of the machine: processes,
network, the rest of the files."""

import contextlib
import os
import stat
import sys
from pathlib import Path

from django.conf import settings
from django.db import connection

from core.embedded_redis import socket_path
from sandbox.bubblewrap import bubblewrap
from tests.conftest import BUCKET, start_manage


def worker_uid() -> int:
    """The last uid of the session's sandbox range: root workers' sandboxes take theirs from
    the start of its halves (sandbox/sandbox.py), so it is no run's while it is the
    worker's, and no other session's (each has its own range)."""
    return settings.SANDBOX_UIDS[1]


def hidden_from_others(path: Path) -> Path | None:
    """The outermost folder above `path` that a uid other than its owner can't enter."""
    for parent in reversed(path.parents):
        if not parent.stat().st_mode & stat.S_IXOTH:
            return parent
    return None


def view_for(uid: int) -> list[str]:
    """A root bwrap that runs what follows it as `uid`, in a mount namespace where the
    interpreter's and the code's folders are reachable (each folder that hides one becomes an
    empty tmpfs showing only that one's branch); the machine's everything else as it is."""
    shown = {}  # folder hidden from others -> its branches to show
    for needed in map(Path, (sys.base_prefix, sys.prefix, settings.BASE_DIR)):
        if hidden := hidden_from_others(needed):
            shown.setdefault(hidden, set()).add(hidden / needed.relative_to(hidden).parts[0])
    args = [bubblewrap().path, "--dev-bind", "/", "/"]
    for hidden, branches in shown.items():
        args += ["--tmpfs", str(hidden)]
        for branch in sorted(branches):
            args += ["--ro-bind", str(branch), str(branch)]
    return [
        *args,
        "--",
        "setpriv",
        f"--reuid={uid}",
        f"--regid={uid}",
        "--clear-groups",
        "--inh-caps=-all",
    ]


def storage_env(endpoint: str) -> dict:
    return {
        "AICENTER_STORAGE": "s3",
        "AWS_STORAGE_BUCKET_NAME": BUCKET,
        "AWS_S3_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_S3_REGION_NAME": "us-east-1",
    }


def session_services() -> list[Path]:
    """What of the session's own data dir the worker must reach: SQLite's database (its folder,
    where SQLite makes its -wal and -shm files, and those) and the embedded Redis's socket."""
    lent = []
    if connection.vendor == "sqlite":
        database = Path(connection.settings_dict["NAME"])
        lent += [database.parent, database]
        lent += [Path(f"{database}{suffix}") for suffix in ("-wal", "-shm")]
    if settings.EMBEDDED_REDIS:
        sock = socket_path(settings.DATA_DIR)
        lent += [*(p for p in sock.parents if settings.DATA_DIR in (p, *p.parents)), sock]
    return [path for path in dict.fromkeys(lent) if path.exists()]


@contextlib.contextmanager
def lent_to_group(paths: list[Path], gid: int):
    """The group of `paths` is `gid`, with read and write (and entry, for folders), until the
    block ends. SQLite gives the -wal and -shm files it makes the database's group and mode."""
    before = [(path, path.stat()) for path in paths]
    for path, was in before:
        os.chown(path, -1, gid)
        extra = stat.S_IRGRP | stat.S_IWGRP | (stat.S_IXGRP if stat.S_ISDIR(was.st_mode) else 0)
        os.chmod(path, stat.S_IMODE(was.st_mode) | extra)
    try:
        yield
    finally:
        for path, was in before:
            with contextlib.suppress(FileNotFoundError):
                os.chown(path, -1, was.st_gid)
                os.chmod(path, stat.S_IMODE(was.st_mode))


def start_unprivileged_worker(queue: str, *, data_dir: Path, endpoint: str, env=None):
    """`manage.py rqworker <queue>` as worker_uid(), its data dir `data_dir` (made its own);
    the caller lends it the session's services (lent_to_group(session_services(), uid))."""
    uid = worker_uid()
    data_dir.mkdir(mode=0o700, exist_ok=True)
    os.chown(data_dir, uid, uid)
    variables = {
        "AICENTER_DATA_DIR": str(data_dir),
        "HOME": str(data_dir),
        "REDIS_URL": settings.REDIS_URL,  # the session's, embedded or not
        **storage_env(endpoint),
        **(env or {}),
    }
    return start_manage(
        ["rqworker", queue],
        log="unprivileged-worker",
        env=variables,
        new_session=True,
        wrapper=view_for(uid),
    )

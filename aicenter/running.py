"""One `manage.py start` per data dir, and a busy port said in one line.

Two starts on one data dir would share its database, its embedded Redis and its workspaces:
the second one's Ctrl-C used to stop the Redis the first one served from. The running start
holds an exclusive flock on `aicenter.pid` in the data dir for as long as it lives (the kernel
lets go when the process ends, however it ends, so a crash leaves no stale lock) and writes its
pid and address there, for the refusal of the next one to name.
"""

import errno
import fcntl
import os
import socket
import time
from pathlib import Path

PID_FILE = "aicenter.pid"


class AlreadyRunning(Exception):
    """Another start holds this data dir; the message names its pid and address."""


def hold(data_dir: Path, url: str) -> int:
    """Take this data dir for the calling process and record its pid and `url`; return the
    open file descriptor, which must stay open (and is not inherited by children) while the
    process runs. AlreadyRunning if another process holds it."""
    path = Path(data_dir) / PID_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    # not O_TRUNC: the holder's pid and address must survive a refused start's open
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise AlreadyRunning(_refusal(path)) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n{url}\n".encode())
    os.fsync(fd)
    return fd


def _refusal(path: Path) -> str:
    # The holder writes right after it locks: an empty file is one caught in between.
    for _ in range(20):
        lines = path.read_text().split()
        if len(lines) >= 2:
            return f"AI Center is already running from this data dir, pid {lines[0]}, {lines[1]}"
        time.sleep(0.05)
    return f"AI Center is already running from this data dir (see {path})"


def port_refusal(addr: str, port: int) -> str | None:
    """Why the web server could not listen on addr:port, in one line; None if it can. Bound
    as waitress binds (SO_REUSEADDR), so a port left in TIME_WAIT is not called busy."""
    try:
        infos = socket.getaddrinfo(addr, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        return f"Cannot listen on {addr}:{port}: {error}."
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                return (
                    f"Port {port} on {addr} is already in use by another program: "
                    f"start on another one with --port N (or AICENTER_PORT=N)."
                )
            return f"Cannot listen on {addr}:{port}: {error.strerror or error}."
    return None

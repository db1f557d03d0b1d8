"""The README's start command on its defaults: SQLite and the embedded Redis, nothing else."""

import contextlib
import http.cookiejar
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import redis
import rq
from redis.backoff import NoBackoff
from redis.retry import Retry

from core.embedded_redis import socket_path
from tests.conftest import alive, free_port

ROOT = Path(__file__).resolve().parent.parent


def _wait_for(check, *, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.2)
    if callable(what):
        what = what()
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _redis(sock: Path) -> redis.Redis:
    # without redis-py's retries, a stopped server says so at once
    return redis.Redis(unix_socket_path=str(sock), retry=Retry(NoBackoff(), 0))


def _answers(sock: Path) -> bool:
    try:
        return _redis(sock).ping()
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return False


def _group_members(pgid: int) -> list[int]:
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            members.append(int(stat.parent.name))
    return members


@contextlib.contextmanager
def _app(tmp_path):
    """`manage.py start` on its own data dir and port, in its own process group as a terminal
    gives it (Ctrl-C signals the whole group); whatever is left of it is killed afterwards."""
    data_dir = tmp_path / "d"
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AICENTER_", "DJANGO_", "AWS_"))
        and key not in ("DATABASE_URL", "REDIS_URL", "PYTHONUNBUFFERED")
    }
    env["AICENTER_DATA_DIR"] = str(data_dir)
    log = tmp_path / "start.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "start", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    process.log, process.data_dir = log, data_dir
    process.base = f"http://127.0.0.1:{port}"
    sock = socket_path(data_dir)
    try:
        yield process
    finally:
        if process.poll() is None or _group_members(process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        if _answers(sock):
            _redis(sock).shutdown(nosave=True)


def _stop_with_ctrl_c(process):
    os.killpg(process.pid, signal.SIGINT)
    assert process.wait(timeout=15) == 0, process.log.read_text()
    assert "Stopped." in process.log.read_text()
    assert _group_members(process.pid) == []


def test_it_starts_everything_and_stops_it_on_ctrl_c(tmp_path):
    with _app(tmp_path) as process:
        base, log, data_dir = process.base, process.log, process.data_dir
        sock = socket_path(data_dir)

        def login_page():
            try:
                with urllib.request.urlopen(f"{base}/login/", timeout=2) as response:
                    return response.status == 200
            except OSError:  # not up yet, or too busy starting to answer within 2 s
                assert process.poll() is None, log.read_text()
                return False

        _wait_for(login_page, timeout=60, what="GET /login/")
        # stdout is a file, not a terminal: the command must flush what it prints
        banner = _wait_for(
            lambda: re.search(r"Log in as 'admin' with password '([^']+)'", log.read_text()),
            timeout=5,
            what="the admin password on stdout",
        )
        password = banner[1]

        browser = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )
        form = browser.open(f"{base}/login/", timeout=5).read().decode()
        csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form)[1]
        data = {"username": "admin", "password": password, "csrfmiddlewaretoken": csrf}
        with browser.open(
            f"{base}/login/", urllib.parse.urlencode(data).encode(), timeout=5
        ) as response:
            assert response.url == f"{base}/p/default/"  # landed in the admin's project
            home = response.read().decode()
        assert 'href="/p/default/datasets/"' in home
        # a production WSGI server, with its static files (whitenoise), and no warning
        with urllib.request.urlopen(f"{base}/static/css/app.css", timeout=5) as response:
            assert response.status == 200
        assert "development server" not in log.read_text()

        connection = _redis(sock)
        workers = _wait_for(
            lambda: rq.Worker.all(connection=connection),
            timeout=20,
            what="an rq worker registered in the embedded Redis",
        )
        assert any("pipelines" in worker.queue_names() for worker in workers)
        assert (data_dir / "aicenter.sqlite3").is_file()
        redis_pid = int((data_dir / "redis" / "redis.pid").read_text())
        connection.close()

        _stop_with_ctrl_c(process)
        assert not _answers(sock)
        _wait_for(lambda: not alive(redis_pid), timeout=5, what="redis-server to exit")


def _listening_worker(connection, *, not_pid=None):
    """The pid of a live worker registered on the pipelines queue (other than `not_pid`)."""
    try:
        workers = rq.Worker.all(connection=connection)
    except (redis.ConnectionError, OSError):
        return None
    for worker in workers:
        if "pipelines" in worker.queue_names() and worker.pid != not_pid and alive(worker.pid):
            return worker.pid
    return None


def _orphans(pgid: int) -> list[int]:
    """Members of the group whose parent is not in it: left behind by a process that died."""
    members = set(_group_members(pgid))
    orphans = []
    for pid in members - {pgid}:
        try:
            parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (FileNotFoundError, IndexError):
            continue
        if parent not in members:
            orphans.append(pid)
    return orphans


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except FileNotFoundError:
        return f"{pid} (gone)"


def test_it_restarts_a_dead_worker_with_backoff_and_still_stops_on_ctrl_c(tmp_path):
    with _app(tmp_path) as process:
        connection = _redis(socket_path(process.data_dir))
        log = process.log

        def first_worker():
            assert process.poll() is None, log.read_text()
            return _listening_worker(connection)

        first = _wait_for(first_worker, timeout=90, what="a worker listening")
        os.kill(first, signal.SIGKILL)
        second = _wait_for(
            lambda: _listening_worker(connection, not_pid=first),
            timeout=10,
            what=f"a new worker after killing worker {first}",
        )
        assert process.poll() is None, log.read_text()
        text = log.read_text()
        assert f"Worker 1 (pid {first}) was killed by SIGKILL; restarting it in 1 s" in text
        assert f"Worker 1 restarted (pid {second})" in text
        # its scheduler (and any work horse) died with it: nothing of it is left behind
        _wait_for(
            lambda: not _orphans(process.pid),
            timeout=5,
            what=lambda: f"no orphans: {[_command(pid) for pid in _orphans(process.pid)]}",
        )

        # dead again right away: the next restart waits longer, never a tight loop
        os.kill(second, signal.SIGKILL)
        third = _wait_for(
            lambda: _listening_worker(connection, not_pid=second),
            timeout=15,
            what=f"a new worker after killing worker {second}",
        )
        text = log.read_text()
        assert f"Worker 1 (pid {second}) was killed by SIGKILL; restarting it in 2 s" in text
        assert f"Worker 1 restarted (pid {third})" in text
        connection.close()

        _stop_with_ctrl_c(process)

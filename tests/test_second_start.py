"""A second `manage.py start` refuses in one line and touches nothing of the first; a start
stops only the embedded Redis it started itself."""

import os
import socket
import subprocess
import sys
import urllib.request

from aicenter import running
from core.embedded_redis import socket_path, start_unless_running
from tests.conftest import free_port
from tests.test_embedded import ROOT, _answers, _app, _stop_with_ctrl_c, _wait_for


def _serves(process) -> bool:
    try:
        with urllib.request.urlopen(f"{process.base}/healthz", timeout=2) as response:
            return response.status == 200
    except OSError:
        assert process.poll() is None, process.log.read_text()
        return False


def _start_again(data_dir, port) -> subprocess.CompletedProcess:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AICENTER_", "DJANGO_", "AWS_"))
        and key not in ("DATABASE_URL", "REDIS_URL", "PYTHONUNBUFFERED")
    }
    env["AICENTER_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [sys.executable, "manage.py", "start", "--port", str(port)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_it_refuses_a_second_start_and_a_busy_port_in_one_line(tmp_path):
    with _app(tmp_path) as first:
        _wait_for(lambda: _serves(first), timeout=60, what="the first start's /healthz")
        port = first.base.rsplit(":", 1)[1]

        # the same data dir on another port: refused, naming the running one
        second = _start_again(first.data_dir, free_port())
        assert second.returncode == 1, second.stdout + second.stderr
        assert second.stdout == ""
        assert second.stderr.strip() == (
            f"AI Center is already running from this data dir, pid {first.pid}, "
            f"http://localhost:{port}/"
        )
        # another data dir on the first one's port: the port is named, no traceback
        third = _start_again(tmp_path / "other", port)
        assert third.returncode == 1, third.stdout + third.stderr
        assert third.stderr.strip() == (
            f"Port {port} on 127.0.0.1 is already in use by another program: "
            "start on another one with --port N (or AICENTER_PORT=N)."
        )

        # nothing of the first was touched: its Redis answers, its pages too
        assert _answers(socket_path(first.data_dir))
        assert _serves(first)
        assert "Stopping" not in first.log.read_text()
        _stop_with_ctrl_c(first)
        assert not _answers(socket_path(first.data_dir))  # it started it: it stopped it


def test_it_leaves_running_a_redis_it_did_not_start(tmp_path):
    data_dir = tmp_path / "d"
    assert start_unless_running(data_dir)  # e.g. a worker started by hand, before the start
    with _app(tmp_path) as process:
        _wait_for(lambda: _serves(process), timeout=60, what="/healthz")
        assert "(was running; left so)" in process.log.read_text()
        _stop_with_ctrl_c(process)
        assert _answers(socket_path(data_dir))  # _app shuts it down afterwards


def test_a_held_data_dir_is_let_go_when_its_start_dies(tmp_path):
    """The lock is the kernel's: a start killed with SIGKILL leaves nothing to clean up."""

    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from aicenter import running; "
            f"running.hold({str(tmp_path)!r}, 'http://localhost:1/'); "
            "print('held', flush=True); time.sleep(60)",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline() == "held\n"
        try:
            running.hold(tmp_path, "http://localhost:2/")
        except running.AlreadyRunning as refusal:
            assert str(refusal) == (
                f"AI Center is already running from this data dir, pid {holder.pid}, "
                "http://localhost:1/"
            )
        else:
            raise AssertionError("a held data dir was taken twice")
    finally:
        holder.kill()
        holder.wait()
    fd = running.hold(tmp_path, "http://localhost:2/")
    os.close(fd)
    assert (tmp_path / running.PID_FILE).read_text() == f"{os.getpid()}\nhttp://localhost:2/\n"


def test_port_refusal_names_a_busy_port_only():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert "already in use" in running.port_refusal("127.0.0.1", port)
    assert running.port_refusal("127.0.0.1", free_port()) is None

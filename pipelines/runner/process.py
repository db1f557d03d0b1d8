"""The user's code in its own process: exact environment, live logs, reports from bootstrap."""

import codecs
import json
import os
import selectors
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

BOOTSTRAP = (Path(__file__).parent / "bootstrap.py").read_text()
# What a Python process needs besides SPEC's variables; nothing of the server's environment.
BASE_PATH = "/usr/local/bin:/usr/bin:/bin"


@dataclass
class Outcome:
    exit_code: int | None = None
    error: str = ""  # the exception line of the user's code, if it raised
    score: float | None = None
    calls: list[dict] = field(default_factory=list)  # [{"name", "start", "end"}]
    started_at: float | None = None  # when the user's code began (bootstrap's first report)
    stopped: str = ""  # why the platform stopped it: "killed" or "timeout"
    spawned_at: float | None = None  # when the platform started the process

    @property
    def succeeded(self):
        return self.exit_code == 0 and not self.error


def run_limits() -> dict:
    """Resource limits of the user's process (0: none), from settings."""
    return {
        "memory": settings.PIPELINE_MEMORY_LIMIT_MB * 1024 * 1024,
        "file_size": settings.PIPELINE_FILE_SIZE_LIMIT_MB * 1024 * 1024,
        "open_files": settings.PIPELINE_OPEN_FILES_LIMIT,
        "processes": settings.PIPELINE_PROCESSES_LIMIT,
    }


def user_environment(*, python: str, workspace, variables: dict[str, str]) -> dict[str, str]:
    bin_dir = os.path.dirname(python)
    return {
        "PATH": f"{bin_dir}:{BASE_PATH}",
        "HOME": str(workspace.home),
        "TMPDIR": str(workspace.tmp),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        **variables,
    }


def run_user_code(
    *,
    python,
    workspace,
    variables,
    plan,
    log,
    should_stop=None,
    on_start=None,
    extra_env=None,
    user_ids=None,
) -> Outcome:
    """Run `plan` ([call, argument] pairs) on train.Main in a new session; stream its output into
    `log` as it comes; return what happened. `should_stop()` returning a reason ends the whole
    process group (SIGTERM, grace, SIGKILL)."""
    outcome = Outcome()
    read_end, write_end = os.pipe()
    outcome.spawned_at = time.time()
    process = subprocess.Popen(
        [
            python,
            "-B",
            "-u",
            "-c",
            BOOTSTRAP,
            str(write_end),
            json.dumps(plan),
            json.dumps(run_limits()),
        ],
        cwd=workspace.package,
        env={
            **user_environment(python=python, workspace=workspace, variables=variables),
            **(extra_env or {}),
        },
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        pass_fds=(write_end,),
        start_new_session=True,  # its own process group: kill reaches its children too
        **({"user": user_ids[0], "group": user_ids[1], "extra_groups": []} if user_ids else {}),
    )
    os.close(write_end)
    if on_start:
        on_start(process.pid)
    output = process.stdout.fileno()
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    reports = b""
    open_calls = {}
    selector = selectors.DefaultSelector()
    selector.register(output, selectors.EVENT_READ, "output")
    selector.register(read_end, selectors.EVENT_READ, "reports")
    exited_at = None
    try:
        while selector.get_map():
            for key, _ in selector.select(timeout=0.25):
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    selector.unregister(key.fd)
                elif key.data == "output":
                    log.write(decoder.decode(chunk))
                else:
                    reports += chunk
                    *lines, reports = reports.split(b"\n")
                    for line in lines:
                        _on_report(line, outcome, open_calls)
            log.flush_if_due()
            if should_stop and not outcome.stopped and (reason := should_stop()):
                outcome.stopped = reason
                stop_process_group(process, grace=settings.PIPELINE_KILL_GRACE_SECONDS)
            if process.poll() is not None:
                # A child the package left behind may hold the pipes open: don't wait forever.
                exited_at = exited_at or time.monotonic()
                if time.monotonic() - exited_at > 1.0:
                    break
    finally:
        selector.close()
        os.close(read_end)
        stop_process_group(process)
        process.stdout.close()
    log.write(decoder.decode(b"", final=True))
    outcome.exit_code = process.wait()
    for name, start in open_calls.items():  # cut short by a kill or a time limit
        outcome.calls.append({"name": name, "start": start, "end": time.time()})
    return outcome


def _on_report(line: bytes, outcome: Outcome, open_calls: dict) -> None:
    try:
        message = json.loads(line)
        event = message["event"]
    except (ValueError, KeyError, TypeError):
        return  # the package wrote garbage to our pipe: ignore it
    if event == "start":
        open_calls[message["call"]] = message["t"]
        if outcome.started_at is None:
            outcome.started_at = message["t"]
    elif event == "end":
        start = open_calls.pop(message["call"], message["t"])
        outcome.calls.append({"name": message["call"], "start": start, "end": message["t"]})
    elif event == "score":
        outcome.score = message["value"]
    elif event == "error":
        outcome.error = str(message.get("reason", ""))[:2000]


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def stop_process_group(process, grace: float = 3.0) -> None:
    """SIGTERM the whole process group, then SIGKILL what is left after `grace` seconds."""
    process.poll()  # reap the leader if it exited, so it doesn't count as alive
    if not _group_alive(process.pid):
        return
    os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        process.poll()
        if not _group_alive(process.pid):
            return
        time.sleep(0.05)
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass

"""The user's code in its own process: exact environment, live logs, reports from bootstrap."""

import codecs
import marshal
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings

from core.durations import duration_text
from sandbox.reports import Reports
from sandbox.workspace import limit_reason

BOOTSTRAP = (Path(__file__).parent / "bootstrap.py").read_text()
# What a Python process needs besides the run's variables; nothing of the server's environment.
BASE_PATH = "/usr/local/bin:/usr/bin:/bin"
# The output loop wakes at least this often (no output) to flush the log and check the limits.
OUTPUT_WAIT_SECONDS = 0.25
# After the package's process exits, a child it left holding the pipes gets this long.
PIPES_AFTER_EXIT_SECONDS = 1.0
# Its pipes closed: the process is exiting, and is reaped within this (else stop() ends it).
EXITING_WAIT_SECONDS = 0.1
# Memory summed over the sandbox's processes (no cgroup) is read this often: cheap, /proc.
MEMORY_CHECK_SECONDS = 0.5
# stop_process_group's grace when none is given (settings.PIPELINE_KILL_GRACE_SECONDS's default).
DEFAULT_GRACE_SECONDS = 3.0
# How often a stopping process group is looked at during its grace.
STOP_POLL_SECONDS = 0.05


@dataclass
class Outcome:
    exit_code: int | None = None
    error: str = ""  # the exception line of the user's code, if it raised
    score: float | None = None
    calls: list[dict] = field(default_factory=list)  # [{"name", "start", "end"}]
    started_at: float | None = None  # when the user's code began (bootstrap's first report)
    stopped: str = ""  # why the platform stopped it: "killed" or "timeout"
    spawned_at: float | None = None  # when the platform started the process
    out_of_memory: bool = False  # the kernel killed one of its processes at the memory limit

    @property
    def succeeded(self):
        return self.exit_code == 0 and not self.error

    @property
    def killed(self) -> bool:
        """Someone stopped it (a kill), rather than it failing on its own or at a limit: the
        caller says what that means for its run or replica."""
        return self.stopped == "killed"

    def failure_reason(self, *, time_limit: int) -> str:
        """Why it failed, in the user's words ('' for a kill: the kill already said who)."""
        if self.stopped == "memory" or (self.out_of_memory and self.stopped != "killed"):
            return (
                f"the run went over its memory limit of {settings.PIPELINE_MEMORY_LIMIT_MB:,} MB"
                " (all its processes together)"
            )
        if self.stopped in ("disk", "files"):
            return limit_reason(self.stopped)
        if self.stopped == "timeout":
            return f"timed out after {duration_text(time_limit)}"
        if self.stopped == "killed":
            return ""
        if self.error:
            return self.error
        if self.started_at is None and self.exit_code:
            return (
                f"the package's process could not start (exit code {self.exit_code}): see the log"
            )
        if self.exit_code is not None and self.exit_code < 0:
            return f"the package's process was killed by signal {-self.exit_code}"
        return f"the package's process exited with code {self.exit_code}"


def run_limits(memory_mb: int | None = None) -> dict:
    """Resource limits of the user's process (0: none), from settings: a run's, or a skill
    replica's with its own memory limit."""
    if memory_mb is None:
        memory_mb = settings.PIPELINE_MEMORY_LIMIT_MB
    return {
        "memory": memory_mb * 1024 * 1024,
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
        "metrics_file": str(workspace.metrics_file),
        # MLflow-instrumented code logs into a store in the workspace; mlflow-skinny's file
        # store refuses to work without the second variable.
        "MLFLOW_TRACKING_URI": workspace.mlflow_store.as_uri(),
        "MLFLOW_ALLOW_FILE_STORE": "true",
        **variables,
    }


@dataclass
class UserCode:
    """The package's code to run: `plan` ([call, argument] pairs) on train.Main, with `python`,
    in `workspace`, given `variables` (and `extra_env`) as its environment."""

    python: str
    workspace: Any
    variables: dict[str, str]
    plan: list
    extra_env: dict[str, str] | None = None


@dataclass
class Supervision:
    """Who hears of the code while it runs: `log` gets its output as it comes; `on_start(pid)`
    once its process started; `tick()` at least every OUTPUT_WAIT_SECONDS (reading its
    metrics); `should_stop()` returning a reason ends everything it started (SIGTERM, grace,
    SIGKILL)."""

    log: Any
    should_stop: Callable[[], str] | None = None
    on_start: Callable[[int], None] | None = None
    tick: Callable[[], None] | None = None


def run_user_code(
    code: UserCode, supervision: Supervision, *, sandbox=None, user_ids=None, ahead=None
) -> Outcome:
    """Run `code` in `sandbox` (None: a plain process in a new session, as `user_ids` if
    given), supervised, and return what happened. Going over the memory, disk or file limit
    ends it too. `ahead`: the process already started in `sandbox` (runner/ahead.py), given
    its run here."""
    outcome = Outcome(spawned_at=time.time())
    limits = {**run_limits(), "sandboxed": bool(sandbox)}
    env = {
        **user_environment(python=code.python, workspace=code.workspace, variables=code.variables),
        **(code.extra_env or {}),
    }
    if ahead:
        read_end, process = ahead.reports, ahead.process
        ahead.send(code.plan, limits, env)
    else:
        read_end, process = _start(
            code.python, code.workspace, code.plan, limits, env, sandbox, user_ids
        )
    if supervision.on_start:
        supervision.on_start(process.pid)
    running = _Running(code, supervision, outcome, process, read_end, sandbox)
    try:
        running.follow()
    finally:
        running.close()
    return running.ended()


class _Running:
    """The package's process while it runs: its output and reports read as they come, and at
    each wake its log flushed, its limits and stop requests checked."""

    def __init__(self, code, supervision, outcome, process, read_end, sandbox):
        self.supervision, self.log = supervision, supervision.log
        self.outcome, self.process, self.read_end, self.sandbox = (
            outcome,
            process,
            read_end,
            sandbox,
        )
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.reports = Reports(code.plan, spawned_at=outcome.spawned_at, note=self.log.platform)
        self.selector = selectors.DefaultSelector()
        self.selector.register(process.stdout.fileno(), selectors.EVENT_READ, "output")
        self.selector.register(read_end, selectors.EVENT_READ, "reports")
        self.watch = ResourceWatch(sandbox, code.workspace)
        self.exited_at = None

    def follow(self):
        """Until its pipes close, or it exited and a child it left holds them."""
        while self.selector.get_map():
            self._read()
            self.log.flush_if_due()
            if self.supervision.tick:
                self.supervision.tick()
            self._check_stop()
            if self._left_pipes_open():
                return
        # its pipes closed: it is exiting, give it the moment to be reaped (cheaper than
        # stop()'s look through /proc for what it left)
        try:
            self.process.wait(timeout=EXITING_WAIT_SECONDS)
        except subprocess.TimeoutExpired:
            pass

    def _read(self):
        for key, _ in self.selector.select(timeout=OUTPUT_WAIT_SECONDS):
            chunk = os.read(key.fd, 65536)
            if not chunk:
                self.selector.unregister(key.fd)
            elif key.data == "output":
                self.log.write(self.decoder.decode(chunk))
            elif not self.reports.feed(chunk):  # past its limits: closed, nothing more read
                self.selector.unregister(key.fd)
                os.close(self.read_end)
                self.read_end = None

    def _check_stop(self):
        """Over a limit: stopped at once, it would only grow; asked to stop: with a grace."""
        outcome, should_stop = self.outcome, self.supervision.should_stop
        if not outcome.stopped and (reason := self.watch.exceeded()):
            outcome.stopped = reason
            self.stop(0)
        if should_stop and not outcome.stopped and (reason := should_stop()):
            outcome.stopped = reason
            self.stop(settings.PIPELINE_KILL_GRACE_SECONDS)

    def _left_pipes_open(self) -> bool:
        """It exited, but a child it left behind has held the pipes open too long: don't wait
        forever."""
        if self.process.poll() is None:
            return False
        self.exited_at = self.exited_at or time.monotonic()
        return time.monotonic() - self.exited_at > PIPES_AFTER_EXIT_SECONDS

    def stop(self, grace):
        if self.sandbox:
            self.sandbox.stop(grace)
        else:
            stop_process_group(self.process, grace)

    def close(self):
        self.selector.close()
        if self.read_end is not None:
            os.close(self.read_end)
        self.stop(0)
        self.process.stdout.close()

    def ended(self) -> Outcome:
        """How it ended, once its process is gone."""
        outcome = self.outcome
        self.log.write(self.decoder.decode(b"", final=True))
        outcome.exit_code = self.process.wait()
        if not outcome.stopped:  # what it left, before anything of it is collected
            outcome.stopped = self.watch.exceeded(final=True)
        if self.sandbox:
            if outcome.exit_code > 128:  # bwrap's way of saying the process died of a signal
                outcome.exit_code = 128 - outcome.exit_code
            outcome.out_of_memory = self.sandbox.out_of_memory()
        # a call cut short by a kill or a time limit ends now
        timeline = self.reports.finish(time.time())
        outcome.calls, outcome.started_at = timeline.calls, timeline.started_at
        outcome.score, outcome.error = timeline.score, timeline.error
        return outcome


def _start(python, workspace, plan, limits, env, sandbox, user_ids):
    """The package's process, started now: (the read end of its report pipe, the process)."""
    read_end, write_end = os.pipe()
    # marshal's version 4: what every Python since 3.4 reads, without an import
    argv = [
        python,
        "-B",
        "-u",
        "-c",
        BOOTSTRAP,
        str(write_end),
        marshal.dumps((plan, limits), 4).hex(),
    ]
    common = {
        "env": env,
        "stdin": subprocess.DEVNULL,
        "stdout": subprocess.PIPE,
        "stderr": subprocess.STDOUT,
        "start_new_session": True,  # its own process group: kill reaches its children too
    }
    if sandbox:
        command = sandbox.command(argv, cwd=str(workspace.package))
        process = subprocess.Popen(command, pass_fds=(write_end, *sandbox.fds), **common)
        sandbox.started(process)
    else:
        ids = {"user": user_ids[0], "group": user_ids[1], "extra_groups": []} if user_ids else {}
        process = subprocess.Popen(
            argv, cwd=workspace.package, pass_fds=(write_end,), **common, **ids
        )
    os.close(write_end)
    return read_end, process


class ResourceWatch:
    """Whether the run went over a limit: the whole run's memory where there is no cgroup; its
    workspace's disk and file limits, which the kernel holds where the workspace is a file
    system of its own (a run that reached them fails, even if its code swallowed the error),
    and which a walk checks elsewhere. Checked at the log's rhythm, cheaply."""

    def __init__(self, sandbox, workspace):
        self.sandbox = sandbox
        self.workspace = workspace
        self.next_memory = self.next_disk = time.monotonic()

    def exceeded(self, *, final: bool = False) -> str:
        now = time.monotonic()
        if self.sandbox and self.sandbox.watchdog and now >= self.next_memory and not final:
            self.next_memory = now + MEMORY_CHECK_SECONDS
            if self.sandbox.memory_over_limit():
                return "memory"
        if now >= self.next_disk or final:
            self.next_disk = now + self.workspace.limits_check_seconds
            return self.workspace.over_limit(final=final)
        return ""


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def stop_process_group(process, grace: float = DEFAULT_GRACE_SECONDS) -> None:
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
        time.sleep(STOP_POLL_SECONDS)
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass

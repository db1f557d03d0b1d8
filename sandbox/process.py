"""The user's code in its own process: exact environment, live logs, reports from bootstrap."""

import codecs
import marshal
import os
import selectors
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

from core.durations import duration_text
from sandbox.reports import Reports
from sandbox.workspace import limit_reason

BOOTSTRAP = (Path(__file__).parent / "bootstrap.py").read_text()
# What a Python process needs besides SPEC's variables; nothing of the server's environment.
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


def run_user_code(
    *,
    python,
    workspace,
    variables,
    plan,
    log,
    sandbox=None,
    should_stop=None,
    on_start=None,
    extra_env=None,
    user_ids=None,
    tick=None,
    ahead=None,
) -> Outcome:
    """Run `plan` ([call, argument] pairs) on train.Main in `sandbox` (None: a plain process in
    a new session, as `user_ids` if given); stream its output into `log` as it comes; return
    what happened. `should_stop()` returning a reason ends everything the package started
    (SIGTERM, grace, SIGKILL), and so does going over the memory, disk or file limit.
    `tick()` is called at least every OUTPUT_WAIT_SECONDS meanwhile (reading its metrics).
    `ahead`: the process already started in `sandbox` (runner/ahead.py), given its run here."""
    outcome = Outcome()
    outcome.spawned_at = time.time()
    limits = {**run_limits(), "sandboxed": bool(sandbox)}
    env = {
        **user_environment(python=python, workspace=workspace, variables=variables),
        **(extra_env or {}),
    }
    if ahead:
        read_end, process = ahead.reports, ahead.process
        ahead.send(plan, limits, env)
    else:
        read_end, process = _start(python, workspace, plan, limits, env, sandbox, user_ids)
    if on_start:
        on_start(process.pid)
    output = process.stdout.fileno()
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    reports = Reports(plan, spawned_at=outcome.spawned_at, note=log.platform)
    selector = selectors.DefaultSelector()
    selector.register(output, selectors.EVENT_READ, "output")
    selector.register(read_end, selectors.EVENT_READ, "reports")
    exited_at = None
    watch = ResourceWatch(sandbox, workspace)

    def stop(grace):
        if sandbox:
            sandbox.stop(grace)
        else:
            stop_process_group(process, grace)

    try:
        while selector.get_map():
            for key, _ in selector.select(timeout=OUTPUT_WAIT_SECONDS):
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    selector.unregister(key.fd)
                elif key.data == "output":
                    log.write(decoder.decode(chunk))
                elif not reports.feed(chunk):  # past its limits: closed, nothing more read
                    selector.unregister(key.fd)
                    os.close(read_end)
                    read_end = None
            log.flush_if_due()
            if tick:
                tick()
            if not outcome.stopped and (reason := watch.exceeded()):
                outcome.stopped = reason
                stop(0)  # over a limit: no grace, it would only grow
            if should_stop and not outcome.stopped and (reason := should_stop()):
                outcome.stopped = reason
                stop(settings.PIPELINE_KILL_GRACE_SECONDS)
            if process.poll() is not None:
                # A child the package left behind may hold the pipes open: don't wait forever.
                exited_at = exited_at or time.monotonic()
                if time.monotonic() - exited_at > PIPES_AFTER_EXIT_SECONDS:
                    break
        else:  # its pipes closed: it is exiting, give it the moment to be reaped (cheaper
            try:  # than stop()'s look through /proc for what it left, ~3 ms)
                process.wait(timeout=EXITING_WAIT_SECONDS)
            except subprocess.TimeoutExpired:
                pass
    finally:
        selector.close()
        if read_end is not None:
            os.close(read_end)
        stop(0)
        process.stdout.close()
    log.write(decoder.decode(b"", final=True))
    outcome.exit_code = process.wait()
    if not outcome.stopped:  # what it left, before anything of it is collected
        outcome.stopped = watch.exceeded(final=True)
    if sandbox:
        if outcome.exit_code > 128:  # bwrap's way of saying the process died of a signal
            outcome.exit_code = 128 - outcome.exit_code
        outcome.out_of_memory = sandbox.out_of_memory()
    timeline = reports.finish(time.time())  # a call cut short by a kill or a time limit ends now
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

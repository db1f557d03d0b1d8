"""The next run's sandbox, started ahead. Starting a sandboxed process (bubblewrap,
the cgroup, the environment's Python and the bootstrap) is a large share of a trivial run. So when a
worker's run ends, it starts the next one's: an empty workspace handed to a fresh uid, the
sandbox around it, and the last run's environment's Python with the bootstrap loaded, blocked
reading its stdin. The next run on that environment (and network setting) takes it: its files
are written into that workspace, and the plan, the limits and the environment variables go
down the pipe; nothing of the run's is in that process before. Anything else (another
environment or network setting, a GPU run) discards it and starts cold. (A run's variables
can't be any Python or the loader read as they start: PYTHON*, LD_* and LC_* are reserved.)

Safe as a cold start because nothing in it differs: the process runs as its own uid from the
start (never root: .pth files of the environment run at Python's start), in its own sandbox
and workspace, seeing no run's data until it is given its own; the worker holds the only end of
its stdin. Only pipeline workers go ahead (tasks.execute_run), one sandbox at a time each, and
bwrap's --die-with-parent ends it with its worker."""

import fcntl
import logging
import marshal
import os
import subprocess
from dataclasses import dataclass

from django.conf import settings

from environments.environments import READY
from sandbox import isolation, sandbox, sandbox_uids
from sandbox.process import BOOTSTRAP, user_environment
from sandbox.workspace import Workspace

logger = logging.getLogger(__name__)
KIND = "ahead"  # its workspace: ahead-<worker pid>-<random> (the sweeper's remove_ahead_leftovers)


@dataclass
class Ahead:
    key: tuple  # (environment key, network): what it was started for
    workspace: Workspace
    lease: sandbox_uids.Lease  # its uid's, the run's that takes it
    box: sandbox.Sandbox
    process: subprocess.Popen
    reports: int  # the read end of the bootstrap's report pipe
    lock: object  # its environment's lock, held shared: eviction must not remove it

    @property
    def uid(self) -> int:
        return self.lease.uid

    def send(self, plan, limits, environ) -> None:
        """Give it its run: it reads this, sets the variables, and goes on as a cold start."""
        try:
            self.process.stdin.write(marshal.dumps((plan, limits, environ), 4))
            self.process.stdin.close()
        except OSError:  # it died meanwhile: the runner sees it exit, and says so
            pass
        self.lock.close()

    def discard(self) -> None:
        self.box.stop()
        self.process.stdin.close()
        self.process.stdout.close()
        self.process.wait()
        self.box.close()
        os.close(self.reports)
        self.lock.close()
        self.workspace.remove()
        self.lease.release()


_ahead: Ahead | None = None


def possible() -> bool:
    """Only a root worker with the sandbox on: its processes get their own uids."""
    return settings.SANDBOX_AHEAD and os.geteuid() == 0 and sandbox.status().enabled


def start(*, environment, network: bool) -> None:
    """Start the next run's sandbox on `environment` (the run that just ended's)."""
    global _ahead
    discard()
    if not possible():
        return
    lock = open(settings.ENVIRONMENTS_DIR / f"{environment.key}.lock", "w")
    fcntl.flock(lock, fcntl.LOCK_SH)
    if not (environment.path / READY).exists():  # evicted meanwhile
        lock.close()
        return
    workspace = Workspace.create(os.getpid(), kind=KIND)
    try:
        lease = sandbox_uids.lease(sandbox_uids.AHEAD, workspace.root.name)
    except sandbox_uids.UidsExhausted:
        logger.exception("could not start a sandbox ahead")
        workspace.remove()
        lock.close()
        return
    uid = lease.uid
    # all but the package folder, which stays the worker's (read-only to this process) until
    # the run's files are in it; the others are empty, and only this process writes there
    isolation.hand_over(workspace, uid, folders=[workspace.home, workspace.tmp, workspace.metrics])
    box = sandbox.Sandbox(
        workspace.root.name,
        uid=uid,
        writable=[workspace.root, *settings.SANDBOX_SHARED_DIRS],
        readable=[environment.path, *sandbox.python_prefixes(environment.python)],
        network=network,
        memory=settings.PIPELINE_MEMORY_LIMIT_MB * 1024 * 1024,
        processes=settings.PIPELINE_PROCESSES_LIMIT,
        home=str(workspace.home),
    )
    environ = user_environment(python=environment.python, workspace=workspace, variables={})
    read_end, write_end = os.pipe()
    argv = [environment.python, "-B", "-u", "-c", BOOTSTRAP, str(write_end), "-"]
    try:
        process = subprocess.Popen(
            box.command(argv, cwd=str(workspace.package)),
            env=environ,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            pass_fds=(write_end, *box.fds),
        )
    except OSError:
        logger.exception("could not start a sandbox ahead")
        os.close(read_end)
        box.close()
        workspace.remove()
        lease.release()
        lock.close()
        return
    finally:
        os.close(write_end)
    box.started(process)
    _ahead = Ahead((environment.key, network), workspace, lease, box, process, read_end, lock)


def take(*, environment, network: bool) -> Ahead | None:
    """The sandbox started ahead, if it fits this run; it is the caller's from now on."""
    global _ahead
    ahead, _ahead = _ahead, None
    if ahead is None:
        return None
    if ahead.key != (environment.key, network) or ahead.process.poll() is not None:
        ahead.discard()
        return None
    return ahead


def discard() -> None:
    global _ahead
    ahead, _ahead = _ahead, None
    if ahead is not None:
        ahead.discard()

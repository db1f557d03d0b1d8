"""Package code is hostile until proven otherwise: every run and every environment build runs
in a bubblewrap (bwrap) sandbox of its own.

- its own PID namespace: PID 1 inside is bwrap, and when the package's process ends the kernel
  kills whatever it left behind; it sees no other process of the machine;
- its own network namespace with loopback only, unless outbound network is allowed;
- its own mount namespace: the system runtime and the package's environment read-only, its
  workspace read-write, private /tmp, /var/tmp and /dev/shm; nothing of the data dir;
- a uid of its own: a root worker switches to one leased from AICENTER_SANDBOX_UIDS
  (sandbox/sandbox_uids.py) with setpriv (no capabilities, no new privileges); a worker that
  isn't root runs it as itself in a user namespace;
- one memory limit and one process limit for all its processes: a cgroup where the machine
  lets us make one, else a watchdog that sums the memory of its processes;
- a seccomp filter: no kernel keyrings, no new user namespaces (sandbox/syscall_filter.py).

Which bwrap makes them: sandbox/bubblewrap.py. Where none can be had the worker refuses to run
package code (see `refusal()`), unless the operator said AICENTER_SANDBOX=off.
"""

import functools
import logging
import os
import shutil
import signal
import subprocess
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from sandbox import syscall_filter
from sandbox.bubblewrap import bubblewrap
from sandbox.cgroups import Cgroup, cgroup_version, kill
from sandbox.mounts import Mounts
from sandbox.sandbox_uids import probe_uid

logger = logging.getLogger(__name__)
# The probe runs /bin/true in a sandbox: seconds on a busy machine, never this long unless
# bubblewrap hangs, which then reads as "no sandbox" rather than a worker that never starts.
PROBE_TIMEOUT_SECONDS = 30
# How often stop() looks whether the package's processes have gone during their grace.
STOP_POLL_SECONDS = 0.05


@dataclass(frozen=True)
class Status:
    enabled: bool  # False: AICENTER_SANDBOX=off, package code runs as a plain process
    bwrap: str = ""
    privileged: bool = False  # a root worker: a uid per run, cgroups possible
    cgroups: str = ""  # "v1", "v2" or "" (then a watchdog enforces the memory limit)
    problem: str = ""  # why there is no sandbox, when there should be one

    @property
    def memory_enforcement(self) -> str:
        return f"cgroup {self.cgroups}" if self.cgroups else "watchdog"


@functools.cache
def status() -> Status:
    """What this machine gives, probed once per process."""
    if settings.SANDBOX == "off":
        return Status(enabled=False)
    chosen = bubblewrap()
    if chosen.problem:
        return Status(enabled=False, bwrap=chosen.path, problem=chosen.problem)
    bwrap = chosen.path
    if problem := syscall_filter.problem():
        return Status(enabled=False, bwrap=bwrap, problem=problem)
    privileged = os.geteuid() == 0
    # the filter goes in too: a bwrap or kernel that can't load it makes no sandbox
    probe = Sandbox("probe", uid=probe_uid(), cgroups="")
    try:
        answer = subprocess.run(
            probe.command(["/bin/true"], cwd="/"),
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_SECONDS,
            pass_fds=probe.fds,
        )
    except OSError as error:
        answer = subprocess.CompletedProcess([], 1, "", str(error))
    finally:
        probe.close()
    if answer.returncode:
        return Status(
            enabled=False,
            bwrap=bwrap,
            problem=(
                f"bubblewrap can't make a sandbox here ({answer.stderr.strip()[-300:]}): this "
                "machine (or container) does not allow the namespaces it needs (user "
                "namespaces for a worker that isn't root). Run the worker where it can, or set "
                "AICENTER_SANDBOX=off to run package code unsandboxed at your own risk"
            ),
        )
    return Status(enabled=True, bwrap=bwrap, privileged=privileged, cgroups=cgroup_version())


def refusal() -> str:
    """Why this worker must not run package code ('' when it may)."""
    current = status()
    return "" if current.enabled or settings.SANDBOX == "off" else current.problem


def describe(*, network: bool, disk: str = "check") -> dict:
    """What a run's sandbox gives, as recorded on the run (page, API, _results.json). `disk`:
    what holds its workspace's disk and file limits, "filesystem" (its own, the kernel) or
    "check" (a walk of the workspace)."""
    current = status()
    if not current.enabled:
        return {"enabled": False}
    return {
        "enabled": True,
        "network": network,
        "memory_mb": settings.PIPELINE_MEMORY_LIMIT_MB,
        "memory_enforced_by": current.memory_enforcement,
        "disk_mb": settings.PIPELINE_DISK_LIMIT_MB,
        "files": settings.PIPELINE_FILES_LIMIT,
        "disk_enforced_by": disk,
        "uid": "own" if current.privileged else "worker's, in a user namespace",
        "bubblewrap": {"version": bubblewrap().version, "source": bubblewrap().source},
        "seccomp": syscall_filter.DESCRIPTION,
    }


class Sandbox:
    """One sandbox: `command()` wraps an argv, `stop()` ends everything in it, `close()` frees
    what it held. `writable` and `readable` folders appear at their own paths inside."""

    def __init__(
        self,
        name: str,
        *,
        uid: int,
        writable=(),
        readable=(),
        network: bool = False,
        memory: int = 0,
        processes: int = 0,
        gpu: bool = False,
        installer: bool = False,
        home: str = "/",
        cgroups: str | None = None,
    ):
        current = status() if cgroups is None else None
        self.name = name
        self.uid = uid
        self.writable = [str(p) for p in writable]
        self.readable = [str(p) for p in readable]
        self.network = network
        self.memory = memory
        self.processes_limit = processes
        self.gpu = gpu
        self.installer = installer
        self.home = home
        self.privileged = os.geteuid() == 0
        version = current.cgroups if current else cgroups
        self.cgroup = Cgroup(name, version) if version else None
        self.fds: tuple[int, ...] = ()
        self.process = None
        self._oom = False

    @property
    def watchdog(self) -> bool:
        """No cgroup: the runner checks memory_over_limit() itself."""
        return self.cgroup is None and bool(self.memory)

    def command(self, argv: list[str], *, cwd: str) -> list[str]:
        """The command line that runs `argv` in this sandbox."""
        self.fds = ()
        namespaces = self._namespaces()  # its seccomp filter's pipe first
        mounts = Mounts()
        mounts.system(memory=self.memory)
        mounts.etc(network=self.network, installer=self.installer)
        for path, fd in self._identity():
            mounts.place("--perms", "0644", "--ro-bind-data", str(fd), path)
        mounts.devices(gpu=self.gpu)
        mounts.folders(readable=self.readable, writable=self.writable)
        args = [*namespaces, *mounts.args, "--chdir", cwd, "--", *self._as_uid(), *argv]
        if self.cgroup:
            # the shell joins the cgroup, then becomes bwrap: every process of the sandbox
            # starts inside it, none can slip out before
            self.cgroup.create(memory=self.memory, processes=self.processes_limit)
            join = " && ".join(f"echo $$ > {path}" for path in self.cgroup.procs_files)
            args = ["/bin/sh", "-c", f'{join} && unset PWD OLDPWD && exec "$@"', "sh", *args]
        return args

    def _namespaces(self) -> list[str]:
        """bwrap and the namespaces and seccomp filter it puts the sandbox in."""
        args = [
            bubblewrap().path or "bwrap",
            "--die-with-parent",
            "--new-session",
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-cgroup-try",
        ]
        if not self.network:
            args.append("--unshare-net")
        if not self.privileged:
            args += ["--unshare-user", "--disable-userns"]
        return [*args, "--seccomp", str(self._data_fd(syscall_filter.program()))]

    def _as_uid(self) -> list[str]:
        """A root worker's sandbox switches to its leased uid, without capabilities."""
        if not self.privileged:
            return []
        uid = str(self.uid)
        # where the sandbox has it: the PATH may name it by a link from a folder not shown
        setpriv = os.path.realpath(shutil.which("setpriv") or "/usr/bin/setpriv")
        return [
            setpriv,
            "--reuid",
            uid,
            "--regid",
            uid,
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--no-new-privs",
            "--",
        ]

    def _identity(self) -> list[tuple[str, int]]:
        """/etc/passwd and /etc/group naming the sandbox's uid, so getpass and friends work:
        (path, fd of a pipe holding its text) pairs."""
        uid = self.uid if self.privileged else os.geteuid()
        passwd = f"root:x:0:0::/root:/bin/sh\naicenter:x:{uid}:{uid}::{self.home}:/bin/sh\n"
        group = f"root:x:0:\naicenter:x:{uid}:\n"
        return [
            (path, self._data_fd(text.encode()))
            for path, text in (("/etc/passwd", passwd), ("/etc/group", group))
        ]

    def _data_fd(self, data: bytes) -> int:
        """A pipe holding `data` for bwrap to read (a few hundred bytes: less than the pipe
        holds), its read end kept in `fds` until the sandbox starts."""
        read_end, write_end = os.pipe()
        os.write(write_end, data)
        os.close(write_end)
        self.fds += (read_end,)
        return read_end

    def started(self, process) -> None:
        """The sandbox's process is running: its copies of the data pipes are enough."""
        self.process = process
        for fd in self.fds:
            os.close(fd)
        self.fds = ()

    def processes(self) -> list[int]:
        """Host pids of the package's processes."""
        return sandbox_processes(self.process.pid) if self.process else []

    def memory_over_limit(self) -> bool:
        """The watchdog's check: do the sandbox's processes together use more than the limit?"""
        if not self.memory:
            return False
        page = os.sysconf("SC_PAGE_SIZE")
        used = 0
        for pid in self.processes():
            try:
                used += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * page
            except (OSError, ValueError, IndexError):
                pass
        if used > self.memory:
            self._oom = True
        return self._oom

    def out_of_memory(self) -> bool:
        """Was anything of it killed for going over the memory limit?"""
        return self._oom or bool(self.cgroup and self.cgroup.oom_killed())

    def stop(self, grace: float = 0.0) -> None:
        """SIGTERM the package's processes, give them `grace` seconds, then end the sandbox
        (bwrap and its PID 1 get SIGKILL, and the kernel ends everything in the namespace)."""
        if self.process is None:
            return
        if grace and self.process.poll() is None:
            for pid in self.processes():
                kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and self.processes():
                time.sleep(STOP_POLL_SECONDS)
        if self.process.poll() is None:
            for init in _children().get(self.process.pid, []):
                kill(init, signal.SIGKILL)
            kill(self.process.pid, signal.SIGKILL)
        if self.cgroup:
            for pid in self.cgroup.pids():
                kill(pid, signal.SIGKILL)

    def close(self) -> None:
        """Free what the last command held; the sandbox may run another command after."""
        for fd in self.fds:
            os.close(fd)
        self.fds = ()
        self.process = None
        self._oom = False
        if self.cgroup:
            self.cgroup.remove()


def sandbox_processes(bwrap_pid: int) -> list[int]:
    """Host pids of every process below the sandbox's PID 1 (bwrap's child), that is of every
    process the package started, daemons included: they are reparented to that PID 1."""
    children = _children()
    found = []
    todo = [pid for init in children.get(bwrap_pid, []) for pid in children.get(init, [])]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def _children() -> dict[int, list[int]]:
    """Every process's children, from /proc (a few milliseconds for hundreds of processes)."""
    children = defaultdict(list)
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children[int(fields[1])].append(int(entry.name))
    return children


def remove_leftovers(name: str) -> None:
    """A lost run's cgroup, if this machine made one: its processes killed, the group freed."""
    version = status().cgroups
    if version:
        Cgroup(name, version).remove()


def python_prefixes(python: str) -> list[str]:
    """The installation an interpreter (or a virtual environment's) belongs to, to be seen
    read-only inside the sandbox; nothing when it is part of /usr, which always is."""
    prefix = Path(os.path.realpath(python)).parent.parent
    if prefix == Path("/usr") or str(prefix).startswith("/usr/") or prefix == Path("/"):
        return []
    return [str(prefix)]

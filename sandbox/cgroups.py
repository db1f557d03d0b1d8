"""The cgroup of one sandbox: one memory limit and one process limit for all its processes,
which the kernel enforces, and the list of its processes. cgroup v1 (a memory and a pids
hierarchy) or v2 (one tree with both controllers), whichever this machine lets root use;
where neither, sandbox.py falls back to a watchdog."""

import logging
import os
import signal
import time
from pathlib import Path

from django.conf import settings

logger = logging.getLogger(__name__)
CGROUP_ROOT = Path("/sys/fs/cgroup")
# The kernel frees a cgroup a moment after its last process exits: try its rmdir this often,
# this many times (half a second in all) before leaving it to the sweeper.
CGROUP_REMOVE_ATTEMPTS = 1000
CGROUP_REMOVE_PAUSE_SECONDS = 0.0005


def cgroup_version() -> str:
    """'v1' or 'v2' if this (root) worker can make cgroups with a memory controller, else ''."""
    if os.geteuid() != 0 or not settings.SANDBOX_CGROUPS:
        return ""
    try:
        if (CGROUP_ROOT / "memory" / "memory.limit_in_bytes").exists() and (
            CGROUP_ROOT / "pids"
        ).is_dir():
            for controller in ("memory", "pids"):
                (CGROUP_ROOT / controller / "aicenter").mkdir(exist_ok=True)
            return "v1"
        controllers = CGROUP_ROOT / "cgroup.controllers"
        if controllers.exists() and "memory" in controllers.read_text().split():
            (CGROUP_ROOT / "cgroup.subtree_control").write_text("+memory +pids")
            (CGROUP_ROOT / "aicenter").mkdir(exist_ok=True)
            (CGROUP_ROOT / "aicenter" / "cgroup.subtree_control").write_text("+memory +pids")
            return "v2"
    except OSError as error:
        logger.info("no cgroups for sandboxes (%s): a watchdog enforces memory limits", error)
    return ""


class Cgroup:
    """The cgroup(s) of one sandbox: its memory and process limits, its processes."""

    def __init__(self, name: str, version: str):
        self.version = version
        if version == "v1":
            self.paths = [CGROUP_ROOT / c / "aicenter" / name for c in ("memory", "pids")]
        else:
            self.paths = [CGROUP_ROOT / "aicenter" / name]

    def create(self, *, memory: int, processes: int) -> None:
        for path in self.paths:
            path.mkdir(exist_ok=True)
        if self.version == "v1":
            memory_dir, pids_dir = self.paths
            if memory:
                (memory_dir / "memory.limit_in_bytes").write_text(str(memory))
                swap = memory_dir / "memory.memsw.limit_in_bytes"
                if swap.exists():  # no swapping past the limit either
                    swap.write_text(str(memory))
            if processes:
                (pids_dir / "pids.max").write_text(str(processes))
        else:
            (path,) = self.paths
            if memory:
                (path / "memory.max").write_text(str(memory))
                if (path / "memory.swap.max").exists():
                    (path / "memory.swap.max").write_text("0")
            if processes:
                (path / "pids.max").write_text(str(processes))

    @property
    def procs_files(self) -> list[str]:
        return [str(path / "cgroup.procs") for path in self.paths]

    def pids(self) -> list[int]:
        found = set()
        for name in self.procs_files:
            try:
                found.update(int(line) for line in Path(name).read_text().split())
            except OSError:
                pass
        found.discard(0)  # a process of another PID namespace (cgroup v2 lists it as 0)
        return sorted(found)

    def oom_killed(self) -> bool:
        """Did the kernel kill one of its processes for going over the memory limit?"""
        events = self.paths[0] / ("memory.oom_control" if self.version == "v1" else "memory.events")
        try:
            for line in events.read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill" and int(value) > 0:
                    return True
        except (OSError, ValueError):
            pass
        return False

    def remove(self) -> None:
        for pid in self.pids():  # nothing may outlive the sandbox
            kill(pid, signal.SIGKILL)
        for path in self.paths:
            for _ in range(CGROUP_REMOVE_ATTEMPTS):
                try:
                    path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(CGROUP_REMOVE_PAUSE_SECONDS)


def kill(pid: int, sig: int) -> None:
    if pid <= 0:  # 0 or -1 would be a whole process group, or everything
        return
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass

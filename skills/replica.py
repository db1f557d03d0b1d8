"""One replica of a skill on this skill host: the package version's main.Main, loaded once in
its own sandboxed process (its environment, no network, its own uid, a memory limit), asked
predict() over a pipe, one call at a time. Only the host talks to Redis and the database.

The replica's answers are hostile input: predict() runs in the process that answers, so it can
write frames of its own to the answer pipe (no fd of that process is out of its reach, and no
key in it is secret from it). Each frame is checked field by field where it is read here; one
that isn't as the replica bootstrap writes it ends the replica, and only the checked fields go
on to the caller and the call's record."""

import collections
import json
import os
import select
import struct
import subprocess
import threading
import time
from contextlib import ExitStack
from pathlib import Path

from django.conf import settings

from environments.builds import EnvironmentUnavailable
from environments.environments import using_environment
from environments.records import version_environment, version_requirements
from sandbox import isolation, sandbox, sandbox_uids
from sandbox.process import run_limits, user_environment
from sandbox.sandbox import python_prefixes
from sandbox.workspace import Workspace

BOOTSTRAP = (Path(__file__).parent / "replica_bootstrap.py").read_text()
# The replica's last lines of output, kept to say why it failed.
LOG_LINES = 200
# An answer bigger than this breaks the protocol (the replica is restarted).
MOST_ANSWER_BYTES = 64 * 1024 * 1024
# What the replica bootstrap says of predict's return (200), and what a reason is cut to.
ANSWER_TYPES = ("text", "bytes", "json")
REASON_CHARS = 2000
BROKE_PROTOCOL = "the replica broke the protocol (its pipe was written to)"


class ReplicaFailed(Exception):
    """The replica could not load, or broke while answering; `reason` says why."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class ReplicaTimeout(ReplicaFailed):
    """predict() took longer than the call may: the replica is stopped (it may be stuck)."""


class Replica:
    def __init__(self, *, key: int, version, network: bool = False, gpu_devices: str = ""):
        self.key = key  # its SkillReplica row
        self.version = version
        self.network = network
        self.gpu_devices = gpu_devices
        self.process = None
        self.box = None
        self.log = collections.deque(maxlen=LOG_LINES)
        self.lock = threading.Lock()
        self.stack = ExitStack()
        self.to_replica = self.from_replica = None

    def start(self) -> None:
        """Start it and wait until Main() has loaded. Raises ReplicaFailed with the reason."""
        try:
            self._start()
            header, _ = self._frame(time.monotonic() + settings.SKILL_LOAD_SECONDS)
        except ReplicaFailed as error:
            self.stop()
            raise ReplicaFailed(self._with_log(error.reason)) from None
        except EnvironmentUnavailable as error:
            self.stop()
            raise ReplicaFailed(error.reason) from None
        if header.get("event") != "ready":
            self.stop()
            reason = header.get("reason")
            if not isinstance(reason, str) or not reason:
                reason = "main.Main() did not load"
            raise ReplicaFailed(self._with_log(reason[:REASON_CHARS]))

    def _start(self):
        version, package = self.version, self.version.package
        requirements = version_requirements(version)
        version_environment(version, requirements)  # the version's page shows its build
        environment = self.stack.enter_context(
            using_environment(python_version=package.language, requirements=requirements)
        )
        workspace = Workspace.create(self.key, kind="skill")
        try:
            lease = sandbox_uids.lease(sandbox_uids.REPLICA, workspace.root.name)
        except sandbox_uids.UidsExhausted as error:
            workspace.remove()
            raise ReplicaFailed(f"this skill host can't sandbox package code: {error}") from None
        self.stack.callback(lease.release)  # last: once the workspace is gone
        self.stack.callback(workspace.remove)
        workspace.materialise(version.manifest, workspace.package)
        request_read, self.to_replica = os.pipe()
        self.from_replica, answer_write = os.pipe()
        argv = [environment.python, "-B", "-u", "-c", BOOTSTRAP, str(request_read)]
        limits = run_limits(settings.SKILL_MEMORY_LIMIT_MB)
        argv += [str(answer_write), package.input_type, json.dumps(limits)]
        argv.append(f"aicenter-replica-{self.key}")  # unused: names the process in ps
        env = user_environment(python=environment.python, workspace=workspace, variables={})
        if self.gpu_devices:
            env["CUDA_VISIBLE_DEVICES"] = self.gpu_devices
        common = {
            "env": env,
            "stdin": subprocess.DEVNULL,
            "stdout": subprocess.PIPE,
            "stderr": subprocess.STDOUT,
            "start_new_session": True,
        }
        uid = lease.uid
        if os.geteuid() == 0:
            isolation.hand_over(workspace, uid)
        pipes = (request_read, answer_write)
        try:
            if problem := sandbox.refusal():
                raise ReplicaFailed(f"this skill host can't sandbox package code: {problem}")
            if sandbox.status().enabled:
                self.box = sandbox.Sandbox(
                    workspace.root.name,  # skill-<key>-<random>: unique on this machine
                    uid=uid,
                    writable=[workspace.root, *settings.SANDBOX_SHARED_DIRS],
                    readable=[environment.path, *python_prefixes(environment.python)],
                    network=self.network,
                    memory=settings.SKILL_MEMORY_LIMIT_MB * 1024 * 1024,
                    processes=settings.PIPELINE_PROCESSES_LIMIT,
                    gpu=bool(self.gpu_devices),
                    home=str(workspace.home),
                )
                self.stack.callback(self.box.close)
                command = self.box.command(argv, cwd=str(workspace.package))
                self.process = subprocess.Popen(command, pass_fds=(*pipes, *self.box.fds), **common)
                self.box.started(self.process)
            else:  # AICENTER_SANDBOX=off: never as root all the same
                root = os.geteuid() == 0
                ids = {"user": uid, "group": uid, "extra_groups": []} if root else {}
                self.process = subprocess.Popen(
                    argv, cwd=workspace.package, pass_fds=pipes, **common, **ids
                )
        finally:
            for fd in pipes:
                os.close(fd)
        threading.Thread(target=self._read_output, daemon=True).start()

    def _read_output(self):
        """Keep its last lines (a line is cut at 2,000 characters: it may never end)."""
        rest = b""
        for chunk in iter(lambda: self.process.stdout.read1(65536), b""):
            *lines, rest = (rest + chunk).split(b"\n")
            for line in lines:
                self.log.append(line[:2000].decode("utf-8", errors="replace"))
            rest = rest[-2000:]
        if rest:
            self.log.append(rest.decode("utf-8", errors="replace"))

    def _with_log(self, reason: str) -> str:
        time.sleep(0.05)  # the last lines of a process that just ended
        tail = "\n".join(list(self.log)[-20:])
        return f"{reason}\n{tail}".strip() if tail else reason

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def call(self, body: bytes, *, timeout: float) -> tuple[dict, bytes]:
        """predict(body)'s answer as (header, body). Raises ReplicaFailed when the replica
        dies, breaks the protocol or takes longer than `timeout` (it is stopped then)."""
        with self.lock:
            try:
                data = struct.pack(">I", len(body)) + body
                while data:
                    data = data[os.write(self.to_replica, data) :]
                header, answer = self._frame(time.monotonic() + timeout)
                return _answer_header(header), answer
            except ReplicaTimeout:
                self.stop()
                raise
            except (OSError, ReplicaFailed) as error:
                self.stop()
                reason = getattr(error, "reason", None) or "the replica stopped while answering"
                raise ReplicaFailed(reason) from None

    def _frame(self, deadline: float) -> tuple[dict, bytes]:
        size = struct.unpack(">I", self._exactly(4, deadline))[0]
        if size > MOST_ANSWER_BYTES:
            raise ReplicaFailed(f"an answer over {MOST_ANSWER_BYTES // 2**20} MB")
        header, _, body = self._exactly(size, deadline).partition(b"\n")
        try:
            header = json.loads(header)
        except ValueError:
            header = None
        if not isinstance(header, dict):
            raise ReplicaFailed(BROKE_PROTOCOL)
        return header, body

    def _exactly(self, count: int, deadline: float) -> bytes:
        parts = []
        while count:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.from_replica], [], [], left)[0]:
                raise ReplicaTimeout("no answer in time")
            part = os.read(self.from_replica, min(count, 1 << 20))
            if not part:
                code = self.process.wait(timeout=5) if self.process else None
                raise ReplicaFailed(f"the replica's process ended (exit code {code})")
            parts.append(part)
            count -= len(part)
        return b"".join(parts)

    def stop(self, grace: float = 0.0) -> None:
        """End it (a call in flight is answered first when `grace` allows) and free all."""
        for fd in (self.to_replica,):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.to_replica = None
        if self.process is not None:
            try:
                self.process.wait(timeout=grace)  # EOF on its pipe: it ends by itself
            except subprocess.TimeoutExpired:
                pass
            if self.box:
                self.box.stop(0)
            elif self.process.poll() is None:
                self.process.kill()
            self.process.wait()
        if self.from_replica is not None:
            os.close(self.from_replica)
            self.from_replica = None
        self.stack.close()


def _answer_header(header: dict) -> dict:
    """predict's answer header, field by field, as the replica bootstrap writes it: status 200
    and the type of the body, or 422 and the reason predict raised. predict runs in the
    replica's process and may write frames of its own to the pipe: any other header breaks the
    protocol (the replica is stopped), and nothing else of it goes any further."""
    status, kind, detail = header.get("status"), header.get("type"), header.get("detail")
    if status == 200 and isinstance(kind, str) and kind in ANSWER_TYPES:
        return {"status": 200, "type": kind}
    if status == 422 and isinstance(detail, str):
        return {"status": 422, "detail": detail[:REASON_CHARS]}
    raise ReplicaFailed(BROKE_PROTOCOL)

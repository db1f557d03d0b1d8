"""Building a package's environment: uv (pip where uv is missing) in the build sandbox, wheels
only unless source builds are allowed, its output recorded as it comes (EnvironmentBuild), a
time limit and a stop. environments.py decides when to build; this module does it.

Every wheel is hostile: a .pth in it runs at every start of a Python that has it on its path.
So no code a package brings runs outside its run's sandbox, builds included:

1. create the environment (no network);
2. install, nothing compiled, so no Python with the new packages starts; the only step that
   reaches out: the sandbox has no network of its own, and the installer reaches the
   operator's package index through our relay inside it and the worker's allow-listing proxy
   (index_relay.py, index_proxy.py beside this file). A proxy rather than a fetch step of the
   platform's: the installer resolves and downloads as it always does (sdists included, when
   allowed), and what it can reach is decided by the worker, not by the sandbox;
3. compile the bytecode runs need with the base Python isolated and without site (-I -S):
   no .pth runs, nothing of the environment is imported; no network.

The installers' cache is the build's own, in the environment's folder, removed before step 3:
no two builds share a writable cache, so nothing one build plants reaches another. The cost is
a download of what each build installs (an environment is built once per machine and
requirements, usually ahead of its first run); sharing a cache would mean sharing uv's
unpacked files, which no check can vouch for once a sandbox could write them.

Requirement lines that change where packages come from are refused first, unless allowed.
"""

import codecs
import functools
import os
import re
import selectors
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from django.conf import settings
from django.dispatch import Signal
from django.utils import timezone
from uv import find_uv_bin

from core.database import retry_when_locked
from core.log_marks import marked_as_output
from environments.index_proxy import IndexProxy, index_hosts
from environments.models import EnvironmentBuild
from environments.requirement_sources import refusals, source_urls
from sandbox import sandbox_uids
from sandbox.sandbox import Sandbox, python_prefixes, refusal, status
from sandbox.trees import remove_tree

# Sent while an environment builds (key=its environment_key), at its start and every flush:
# pipelines moves the runs that wait for it to Packaging (pipelines/apps.py).
environment_building = Signal()

# A build's output goes to the database this often, for the pages of the runs waiting on it.
BUILD_FLUSH_SECONDS = 0.5
# The installer's output loop wakes at least this often to flush.
OUTPUT_WAIT_SECONDS = 0.25


class EnvironmentUnavailable(Exception):
    """The environment can't be had: `reason` says why in the user's words."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class BuildStopped(EnvironmentUnavailable):
    """The run that was building it was killed: the build stopped, nothing is cached."""

    def __init__(self):
        super().__init__("killed while its environment was being built")


def find_uv() -> str | None:
    try:
        return find_uv_bin()
    except FileNotFoundError:
        return shutil.which("uv")


class BuildRecord:
    """The database's view of a build as it happens: status, the installer's output (every
    half second, so any page shows it live), and the end. Runs queued on a version with these
    requirements show Packaging meanwhile, whichever job builds it."""

    OUTPUT_MAX_CHARS = 200_000

    def __init__(self, key: str, python_version: str, log=None):
        self.key = key
        self.log = log
        self.output = []
        self.at_line_start = True
        self.size = 0
        self.flushed_at = time.monotonic()
        retry_when_locked(lambda: self._start(python_version))
        self.mark_waiting_runs()

    def _start(self, python_version: str) -> None:
        EnvironmentBuild.objects.update_or_create(
            key=self.key,
            defaults={
                "python_version": python_version,
                "status": EnvironmentBuild.BUILDING,
                "detail": "",
                "output": "",
                "started_at": timezone.now(),
                "finished_at": None,
            },
        )

    def mark_waiting_runs(self) -> None:
        """Tell whoever waits for this environment (pipelines: the runs queued on a version with
        these requirements, now or since the last look) that it is being built."""
        environment_building.send(sender=BuildRecord, key=self.key)

    def write(self, text: str, *, platform: bool = False) -> None:
        """The installer's output, or (`platform`) a line of the platform's own; stored with the
        installer's lines escaped (core.log_marks), so that the mark alone tells the platform's."""
        if self.log and platform:
            self.log(text, platform=True)
        elif self.log:
            self.log(text)
        if not platform:
            text, self.at_line_start = marked_as_output(text, at_line_start=self.at_line_start)
        elif not self.at_line_start:
            text, self.at_line_start = "\n" + text, True  # the installer's unfinished line ends
        if self.size < self.OUTPUT_MAX_CHARS:
            self.output.append(text)
            self.size += len(text)
        self.flush_if_due()

    def flush_if_due(self) -> None:
        """Every half second: the output so far, and the runs that came to wait meanwhile."""
        if time.monotonic() - self.flushed_at < BUILD_FLUSH_SECONDS:
            return
        self.flushed_at = time.monotonic()
        output = "".join(self.output)
        retry_when_locked(
            lambda: EnvironmentBuild.objects.filter(key=self.key).update(output=output)
        )
        self.mark_waiting_runs()

    def end(self, status: str, detail: str = "") -> None:
        output, now = "".join(self.output), timezone.now()
        retry_when_locked(
            lambda: EnvironmentBuild.objects.filter(key=self.key).update(
                status=status, detail=detail, output=output, finished_at=now
            )
        )


# What an installer may be told by the operator (which index, which proxy, which CA): the
# only variables of the server's that reach a build. Proxies and NO_PROXY are the index
# proxy's (environments/index_proxy.py), not the build's: a sandboxed build has no network.
INSTALLER_VARIABLES = re.compile(
    r"^(UV_(INDEX|DEFAULT_INDEX|EXTRA_INDEX|INDEX_URL|EXTRA_INDEX_URL|FIND_LINKS|NATIVE_TLS|"
    r"INSECURE_HOST)|PIP_(INDEX_URL|EXTRA_INDEX_URL|FIND_LINKS|TRUSTED_HOST|CERT)|"
    r"(HTTPS?|NO|ALL)_PROXY|(https?|no|all)_proxy|SSL_CERT_(FILE|DIR)|REQUESTS_CA_BUNDLE)$"
)
PROXY_VARIABLES = re.compile(r"^(HTTPS?|NO|ALL)_PROXY$", re.IGNORECASE)
# The build's own installers' cache, in the environment's folder while it is built: shared with
# no other build, removed before the environment is compiled and used.
CACHE = ".build-cache"
RELAY = Path(__file__).with_name("index_relay.py")


def _build_sandbox(path: Path, python: str, uv: str | None, proxy: IndexProxy, uid: int):
    """A build sees the environment it builds (its own installers' cache inside), read-write;
    the Python and uv it runs, our index relay and the folder of the index proxy's socket,
    read-only; no network; nothing else. It runs as its own uid, with none of the server's
    variables."""
    path.mkdir(parents=True)
    if os.geteuid() == 0:
        os.chown(path, uid, uid)
    cache = path / CACHE
    readable = python_prefixes(python) + ([uv] if uv else []) + [RELAY, proxy.folder]
    environment = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(cache),
        "LANG": "C.UTF-8",
        "UV_CACHE_DIR": str(cache),
        "PIP_CACHE_DIR": str(cache),
        "UV_PYTHON_DOWNLOADS": "never",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        **{k: v for k, v in os.environ.items() if INSTALLER_VARIABLES.match(k)},
    }
    if problem := refusal():  # never unsandboxed unless the operator said so
        raise EnvironmentUnavailable(f"this worker can't sandbox environment builds: {problem}")
    if not status().enabled:
        return None, environment  # the operator's choice: on the host, with its network
    for name in [k for k in environment if PROXY_VARIABLES.match(k)]:
        del environment[name]
    box = Sandbox(
        _name(path),
        uid=uid,
        writable=[path],
        readable=readable,
        network=False,
        installer=True,
        home=str(cache),
    )
    return box, environment


def _run(command, *, record, box, environment, deadline: float, should_stop=None):
    """Run one step of a build, its output to `record` as it comes; stop it at the build's
    deadline (EnvironmentUnavailable) or when `should_stop()` says so (BuildStopped)."""
    if box:
        command = box.command(command, cwd="/")
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=environment,
        pass_fds=box.fds if box else (),
        start_new_session=True,
    )
    if box:
        box.started(process)
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    output = []
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    try:
        while True:
            if selector.select(timeout=OUTPUT_WAIT_SECONDS):
                chunk = os.read(process.stdout.fileno(), 65536)
                if not chunk:
                    break
                text = decoder.decode(chunk)
                output.append(text)
                record.write(text)
            record.flush_if_due()  # also while the installer is silent
            if should_stop and should_stop():
                raise BuildStopped()
            if time.monotonic() > deadline:
                raise EnvironmentUnavailable(
                    "dependency install failed: the environment build went over its time limit "
                    f"of {settings.ENVIRONMENT_BUILD_MAX_SECONDS} s (AICENTER_BUILD_MAX_SECONDS)"
                )
        return process.wait(), "".join(output)
    finally:
        selector.close()
        if box:
            box.stop()
            box.close()
        elif process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        process.stdout.close()


def _name(path: Path) -> str:
    """Its cgroup's and lease's: hosts sharing a cgroup tree may share pids, not hostnames."""
    return f"build-{path.name}-{socket.gethostname()}-{os.getpid()}"


def build(path: Path, python: str, requirements: str, record, should_stop=None) -> None:
    """Build a virtual environment at `path` for these (normalised) requirements, as a uid of
    its own, given back when the build is over (sandbox/sandbox_uids.py): create it, install
    into it (the only step that reaches the package index), compile its bytecode."""
    # checked at upload too; again here for versions stored before, or written by a run
    refused = [] if settings.REQUIREMENTS_ALLOW_SOURCES else refusals(requirements, numbered=False)
    if refused:
        raise EnvironmentUnavailable(f"dependency install refused: {refused[0]} {refused[-1]}")
    lease = sandbox_uids.lease(sandbox_uids.BUILD, _name(path))
    try:
        _build(path, python, requirements, record, should_stop, lease.uid)
    finally:
        lease.release()


def _build(path: Path, python: str, requirements: str, record, should_stop, uid: int) -> None:
    uv = find_uv()
    record.write(
        f"[aicenter] building the package's environment with {'uv' if uv else 'pip'}\n",
        platform=True,
    )
    more = source_urls(requirements) if settings.REQUIREMENTS_ALLOW_SOURCES else []
    with IndexProxy(index_hosts(os.environ, uv=bool(uv), more=more)) as proxy:
        box, environment = _build_sandbox(path, python, uv, proxy, uid)
        step = functools.partial(
            _run,
            record=record,
            box=box,
            environment=environment,
            deadline=time.monotonic() + settings.ENVIRONMENT_BUILD_MAX_SECONDS,
            should_stop=should_stop,
        )
        _create(path, python, uv, step)
        if not requirements:
            return
        _install(path, python, uv, requirements, step, record, proxy if box else None)
        proxy.stop()  # the index is needed no more: nothing after this reaches out
        remove_tree(path / CACHE)
        _compile(path, python, step, record)


def _create(path: Path, python: str, uv: str | None, step) -> None:
    if uv:
        create = [uv, "venv", "--python", python, "--no-python-downloads", "--no-cache"]
        create += ["--quiet", str(path)]
    else:
        create = [python, "-m", "venv", str(path)]
    code, output = step(create)
    if code:
        raise EnvironmentUnavailable(f"could not create the environment: {output.strip()[-300:]}")


def _install(path: Path, python: str, uv, requirements: str, step, record, proxy) -> None:
    """Install the requirements, nothing compiled: no Python with the new packages on its path
    starts here (a wheel's .pth would run in it). The installer reaches the index through the
    relay (in the sandbox) and the index proxy (in the worker), and nothing else."""
    requirements_file = path / "requirements.txt"
    requirements_file.write_text(requirements + "\n")
    # wheels only, unless the operator allows source builds: no package's code runs at all
    binary = [] if settings.ENVIRONMENT_SOURCE_BUILDS else ["--only-binary", ":all:"]
    if uv:
        install = [uv, "pip", "install", *binary, "--python", str(path / "bin" / "python")]
    else:
        install = [str(path / "bin" / "python"), "-m", "pip", "install", "--no-compile", *binary]
    install += ["-r", str(requirements_file)]
    if proxy:
        install = [python, "-I", "-S", str(RELAY), proxy.path, "--", *install]
    code, output = step(install)
    for target in proxy.refused if proxy else ():
        record.write(
            f"[aicenter] refused a connection to {target}: builds reach only the package index\n",
            platform=True,
        )
    if code:
        reason = f"dependency install failed: {_failed_requirement(output, requirements)}"
        if binary and _needs_source_build(output):
            reason += (
                " (it has no wheel for this machine's Python, and building packages from "
                "source is off: set AICENTER_SOURCE_BUILDS=true to allow source builds, "
                "which then run in the build sandbox)"
            )
        if proxy and proxy.refused:
            reason += f" (it tried to reach {', '.join(proxy.refused)}: not the package index)"
        raise EnvironmentUnavailable(reason)


def _compile(path: Path, python: str, step, record) -> None:
    """Compile the environment's bytecode once, now: runs may not write .pyc files into it,
    and without them every run would spend seconds compiling pandas or scikit-learn. The base
    Python, isolated and without site (-I -S): no .pth runs and nothing of the environment is
    on its path; compileall only reads the sources. The test suites wheels ship (folders named
    `tests`) are left out: runs import the libraries, not their tests, and the tests are half
    of what there is to compile (a module imported from one is compiled in memory, as without
    a .pyc)."""
    folders = [str(p) for p in sorted(path.glob("lib/python*/site-packages"))]
    tests = rf"^({'|'.join(re.escape(folder) for folder in folders)})/(.+/)?tests/"
    compile_all = [python, "-I", "-S", "-m", "compileall", "-qq", "-j", "0", "-x", tests]
    code, _ = step([*compile_all, *folders])
    if code:  # a file that isn't valid Python (vendored, or for Python 2): compiled if imported
        record.write(
            "[aicenter] some of the environment's files could not be compiled\n", platform=True
        )


def _needs_source_build(output: str) -> bool:
    words = output.lower()
    return any(
        phrase in words
        for phrase in (
            "no usable wheel",
            "no wheels",
            "building source distributions is disabled",
            "building from source is disabled",
            "only-binary",
            "has no wheel",
            "no matching distribution",
            "source distribution",
        )
    )


def _failed_requirement(output: str, requirements: str) -> str:
    """Name the requirement the installer choked on, from its own words."""
    patterns = [
        r"Because ([A-Za-z0-9_.\-\[\]]+)(?:[<>=!~ ][^ ]*)? was not found",
        r"Because there is no version of ([^ ]+(?: ?[<>=!~]=?[^ ,]+)?)",
        r"No matching distribution found for ([^\s]+)",
        r"Could not find a version that satisfies the requirement ([^\s]+)",
        r"Failed to (?:build|download|fetch) `?([^`\s]+)`?",
    ]
    for pattern in patterns:
        if match := re.search(pattern, output):
            return match.group(1).rstrip(".,")
    for line in requirements.splitlines():
        name = re.split(r"[<>=!~;\[ ]", line, maxsplit=1)[0]
        if name and name.lower() in output.lower():
            return line
    return "see the logs for the installer's error"

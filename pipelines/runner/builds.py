"""Building a package's environment: uv (pip where uv is missing) in the build sandbox, wheels
only unless source builds are allowed, its output recorded as it comes (EnvironmentBuild), a
time limit and a stop. environments.py decides when to build; this module does it."""

import codecs
import os
import re
import selectors
import shutil
import signal
import subprocess
import time
from pathlib import Path

from django.conf import settings
from django.utils import timezone
from uv import find_uv_bin

from aicenter.database import retry_when_locked
from pipelines import transitions
from pipelines.models import EnvironmentBuild
from pipelines.runner import sandbox_uids
from pipelines.runner.sandbox import Sandbox, python_prefixes, refusal, status

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
        """Runs queued on a version with these requirements (now, or since the last look)."""
        transitions.waiting_for_build(self.key)

    def write(self, text: str, *, platform: bool = False) -> None:
        """The installer's output, or (`platform`) a line of the platform's own."""
        if self.log and platform:
            self.log(text, platform=True)
        elif self.log:
            self.log(text)
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
# only variables of the server's that reach a build.
INSTALLER_VARIABLES = re.compile(
    r"^(UV_(INDEX|DEFAULT_INDEX|EXTRA_INDEX|INDEX_URL|EXTRA_INDEX_URL|FIND_LINKS|NATIVE_TLS|"
    r"INSECURE_HOST)|PIP_(INDEX_URL|EXTRA_INDEX_URL|FIND_LINKS|TRUSTED_HOST|CERT)|"
    r"(HTTPS?|NO|ALL)_PROXY|(https?|no|all)_proxy|SSL_CERT_(FILE|DIR)|REQUESTS_CA_BUNDLE)$"
)


def _own(cache: Path, uid: int) -> None:
    """The installers' cache is the builds' uid's. A build run as root (AICENTER_SANDBOX=off)
    leaves root's folders in it, which a sandboxed build could not open: given back once."""
    for top in (cache, cache / "uv", cache / "pip"):
        if top.exists() and top.stat().st_uid != uid:
            os.chown(top, uid, uid)
            for folder, dirnames, filenames in os.walk(top):
                for name in dirnames + filenames:
                    os.chown(os.path.join(folder, name), uid, uid, follow_symlinks=False)


def _build_sandbox(path: Path, python: str, uv: str | None, uid: int):
    """A build sees the environment it builds and the installers' cache, read-write; the
    Python and uv it runs, read-only; the package index through the network; nothing else.
    It runs as its own uid, with none of the server's variables."""
    cache = settings.INSTALLER_CACHE_DIR
    cache.mkdir(parents=True, exist_ok=True)
    path.mkdir(parents=True)
    if os.geteuid() == 0:
        _own(cache, uid)
        os.chown(path, uid, uid)
    readable = python_prefixes(python) + ([uv] if uv else [])
    environment = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(cache),
        "LANG": "C.UTF-8",
        "UV_CACHE_DIR": str(cache / "uv"),
        "PIP_CACHE_DIR": str(cache / "pip"),
        "UV_PYTHON_DOWNLOADS": "never",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        **{k: v for k, v in os.environ.items() if INSTALLER_VARIABLES.match(k)},
    }
    if problem := refusal():  # never unsandboxed unless the operator said so
        raise EnvironmentUnavailable(f"this worker can't sandbox environment builds: {problem}")
    if not status().enabled:
        return None, environment
    box = Sandbox(
        _name(path),
        uid=uid,
        writable=[path, cache],
        readable=readable,
        network=True,
        installer=True,
        home=str(cache),
    )
    return box, environment


def _run(command, record, box, environment, deadline: float, should_stop=None):
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
    """The build's, for its cgroup and its uid's lease."""
    return f"build-{path.name}-{os.getpid()}"


def build(path: Path, python: str, requirements: str, record, should_stop=None) -> None:
    """Build a virtual environment at `path` for these (normalised) requirements, as a uid of
    its own, given back when the build is over (runner/sandbox_uids.py)."""
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
    box, environment = _build_sandbox(path, python, uv, uid)
    deadline = time.monotonic() + settings.ENVIRONMENT_BUILD_MAX_SECONDS
    if uv:
        create = [uv, "venv", "--python", python, "--no-python-downloads", "--quiet", str(path)]
    else:
        create = [python, "-m", "venv", str(path)]
    code, output = _run(create, record, box, environment, deadline, should_stop)
    if code:
        raise EnvironmentUnavailable(f"could not create the environment: {output.strip()[-300:]}")
    if not requirements:
        return
    requirements_file = path / "requirements.txt"
    requirements_file.write_text(requirements + "\n")
    # wheels only, unless the operator allows source builds: no package's code runs at all
    binary = [] if settings.ENVIRONMENT_SOURCE_BUILDS else ["--only-binary", ":all:"]
    if uv:
        # compiled now, once: package code may not write .pyc files here, and without them
        # every run would spend seconds compiling pandas or scikit-learn on import
        install = [
            uv,
            "pip",
            "install",
            "--compile-bytecode",
            *binary,
            "--python",
            str(path / "bin" / "python"),
            "-r",
            str(requirements_file),
        ]
    else:
        install = [str(path / "bin" / "python"), "-m", "pip", "install", *binary]
        install += ["-r", str(requirements_file)]
    code, output = _run(install, record, box, environment, deadline, should_stop)
    if code:
        reason = f"dependency install failed: {_failed_requirement(output, requirements)}"
        if binary and _needs_source_build(output):
            reason += (
                " (it has no wheel for this machine's Python, and building packages from "
                "source is off: set AICENTER_SOURCE_BUILDS=true to allow source builds, "
                "which then run in the build sandbox)"
            )
        raise EnvironmentUnavailable(reason)


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

"""Each package version runs in a Python environment built from its requirements.txt with uv
(pip where uv is missing), shared by every version and run with the same Python and the same
normalised requirements, built once per worker machine and reused.

    <ENVIRONMENTS_DIR>/<key>/          a virtual environment
    <ENVIRONMENTS_DIR>/<key>/.ready    written last: without it the environment is half-built
    <ENVIRONMENTS_DIR>/<key>.lock      workers building or using the same key wait on it
"""

import codecs
import fcntl
import hashlib
import logging
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from aicenter.database import retry_when_locked
from aicenter.manifests import blob_open, manifest_file
from pipelines import transitions
from pipelines.models import EnvironmentBuild
from pipelines.sandbox import Sandbox, python_prefixes, refusal, sandbox_uid, status

logger = logging.getLogger(__name__)
READY = ".ready"
# Asking an interpreter its version: instant, unless the machine is in trouble.
PYTHON_VERSION_TIMEOUT_SECONDS = 10
# A build's output goes to the database this often, for the pages of the runs waiting on it.
BUILD_FLUSH_SECONDS = 0.5
# The installer's output loop wakes at least this often to flush.
OUTPUT_WAIT_SECONDS = 0.25
# RQ's own time limit for a build job: the build's limit plus slack, so the build's own
# timeout (which records why) fires first.
BUILD_JOB_SLACK_SECONDS = 600
# RQ keeps a build job's result this long, for its dashboard only (the build row is the record).
BUILD_RESULT_TTL_SECONDS = 600


class EnvironmentError_(Exception):
    """The environment can't be had: `reason` says why in the user's words."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class BuildStopped(EnvironmentError_):
    """The run that was building it was killed: the build stopped, nothing is cached."""

    def __init__(self):
        super().__init__("killed while its environment was being built")


def normalise_requirements(text: str) -> str:
    """One requirement a line, comments and blanks dropped, sorted: the same set of requirements
    written differently shares an environment."""
    lines = []
    for line in text.splitlines():
        line = line.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            lines.append(" ".join(line.split()))
    return "\n".join(sorted(set(lines)))


def environment_key(python_version: str, requirements: str) -> str:
    text = f"python {python_version}\n{normalise_requirements(requirements)}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@cache
def find_python(version: str) -> str | None:
    """The interpreter of Python `version` ('3.11') on this machine, or None."""
    candidates = []
    if version == f"{sys.version_info.major}.{sys.version_info.minor}":
        candidates.append(Path(sys.base_prefix) / "bin" / f"python{version}")
    if found := shutil.which(f"python{version}"):
        candidates.append(Path(found))
    candidates += [Path(f"/usr/local/bin/python{version}"), Path(f"/usr/bin/python{version}")]
    candidates = [c for c in dict.fromkeys(candidates) if c.exists()]
    if not status().enabled and os.geteuid() == 0:
        # unsandboxed runs start as an unprivileged uid: one it can start comes first
        from pipelines.runner.isolation import can_run

        uid = sandbox_uid(1)
        candidates.sort(key=lambda c: not can_run(str(c), (uid, uid)))
    for candidate in candidates:
        try:
            answer = subprocess.run(
                [str(candidate), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                capture_output=True,
                text=True,
                timeout=PYTHON_VERSION_TIMEOUT_SECONDS,
            )
        except OSError:
            continue
        if answer.returncode == 0 and answer.stdout.strip() == version:
            return str(candidate)
    return None


def _uv() -> str | None:
    try:
        from uv import find_uv_bin

        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        return shutil.which("uv")


@dataclass
class Environment:
    key: str
    path: Path

    @property
    def python(self) -> str:
        return str(self.path / "bin" / "python")


@contextmanager
def _locked(key: str, on_wait=None):
    """The build lock of `key`; `on_wait()` is called first if someone else holds it."""
    root = settings.ENVIRONMENTS_DIR
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"{key}.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait:
                on_wait()
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def environment_ready(*, python_version: str, requirements: str) -> bool:
    """Is the environment for these requirements built on this machine?"""
    key = environment_key(python_version, requirements)
    return (settings.ENVIRONMENTS_DIR / key / READY).exists()


def environment_for(
    *, python_version: str, requirements: str, log=None, on_build=None, should_stop=None
):
    """The ready environment for these requirements, building it if needed (under a lock, so two
    workers never build the same one at once; a half-built one is removed and built again).
    `on_build()` is called before a build starts; `log(text)` receives the installer's output;
    `should_stop()` true stops a build (BuildStopped). A build that failed lately is not tried
    again until its Rebuild (or AICENTER_BUILD_FAILURE_TTL): its reason is raised at once.
    Raises EnvironmentError_ with a reason for the user."""
    key = environment_key(python_version, requirements)
    path = settings.ENVIRONMENTS_DIR / key
    environment = Environment(key=key, path=path)
    if (path / READY).exists():
        os.utime(path / READY)  # least recently used goes first when the disk budget is hit
        return environment
    _raise_recent_failure(key)
    python = find_python(python_version)
    if python is None:
        raise EnvironmentError_(
            f"Python {python_version} is not available on this worker; the package asks for it"
        )

    def waiting():
        if on_build:
            on_build()
        if log:
            log("[aicenter] waiting for this environment, which another run is building\n")

    with _locked(key, on_wait=waiting):
        if (path / READY).exists():  # another worker built it while we waited
            return environment
        _raise_recent_failure(key)  # another worker failed it while we waited
        if on_build:
            on_build()
        record = BuildRecord(key, python_version, log)
        if path.exists():
            record.write("[aicenter] removing a half-built environment left by a crashed worker\n")
            shutil.rmtree(path)
        started = time.monotonic()
        try:
            _build(path, python, normalise_requirements(requirements), record, should_stop)
        except BuildStopped:
            shutil.rmtree(path, ignore_errors=True)
            record.end(EnvironmentBuild.PENDING)
            raise
        except EnvironmentError_ as error:
            shutil.rmtree(path, ignore_errors=True)
            record.end(EnvironmentBuild.FAILED, error.reason)
            raise
        except BaseException:
            shutil.rmtree(path, ignore_errors=True)
            record.end(EnvironmentBuild.PENDING)
            raise
        (path / READY).write_text(f"built in {time.monotonic() - started:.1f} s\n")
        record.end(EnvironmentBuild.READY)
    evict_environments(keep=key)
    return environment


def _raise_recent_failure(key: str) -> None:
    """The same requirements failed to install lately: say so again instead of building again
    (an index that never answers would hold a worker each time)."""
    recent = timezone.now() - timedelta(seconds=settings.ENVIRONMENT_FAILURE_TTL_SECONDS)
    failed = EnvironmentBuild.objects.filter(
        key=key, status=EnvironmentBuild.FAILED, finished_at__gte=recent
    ).first()
    if failed:
        raise EnvironmentError_(
            f"{failed.detail} (the last build failed at {failed.finished_at:%H:%M} UTC; "
            "use Rebuild on the version to try again)"
        )


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

    def write(self, text: str) -> None:
        if self.log:
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


@contextmanager
def using_environment(
    *, python_version: str, requirements: str, log=None, on_build=None, should_stop=None
):
    """environment_for(), held in use (a shared lock) until the block ends, so eviction never
    removes an environment under a running package."""
    while True:
        environment = environment_for(
            python_version=python_version,
            requirements=requirements,
            log=log,
            on_build=on_build,
            should_stop=should_stop,
        )
        with open(settings.ENVIRONMENTS_DIR / f"{environment.key}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_SH)
            if (environment.path / READY).exists():
                yield environment
                return
        # evicted between the two steps: build it again


# What an installer may be told by the operator (which index, which proxy, which CA): the
# only variables of the server's that reach a build.
INSTALLER_VARIABLES = re.compile(
    r"^(UV_(INDEX|DEFAULT_INDEX|EXTRA_INDEX|INDEX_URL|EXTRA_INDEX_URL|FIND_LINKS|NATIVE_TLS|"
    r"INSECURE_HOST)|PIP_(INDEX_URL|EXTRA_INDEX_URL|FIND_LINKS|TRUSTED_HOST|CERT)|"
    r"(HTTPS?|NO|ALL)_PROXY|(https?|no|all)_proxy|SSL_CERT_(FILE|DIR)|REQUESTS_CA_BUNDLE)$"
)


def _build_sandbox(path: Path, python: str, uv: str | None):
    """A build sees the environment it builds and the installers' cache, read-write; the
    Python and uv it runs, read-only; the package index through the network; nothing else.
    It runs as the builds' own uid, with none of the server's variables."""
    uid = sandbox_uid(0)
    cache = settings.INSTALLER_CACHE_DIR
    cache.mkdir(parents=True, exist_ok=True)
    path.mkdir(parents=True)
    if os.geteuid() == 0:
        os.chown(cache, uid, uid)
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
        raise EnvironmentError_(f"this worker can't sandbox environment builds: {problem}")
    if not status().enabled:
        return None, environment
    box = Sandbox(
        f"build-{path.name}-{os.getpid()}",
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
    deadline (EnvironmentError_) or when `should_stop()` says so (BuildStopped)."""
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
                raise EnvironmentError_(
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


def _build(path: Path, python: str, requirements: str, record, should_stop=None) -> None:
    uv = _uv()
    record.write(f"[aicenter] building the package's environment with {'uv' if uv else 'pip'}\n")
    box, environment = _build_sandbox(path, python, uv)
    deadline = time.monotonic() + settings.ENVIRONMENT_BUILD_MAX_SECONDS
    if uv:
        create = [uv, "venv", "--python", python, "--no-python-downloads", "--quiet", str(path)]
    else:
        create = [python, "-m", "venv", str(path)]
    code, output = _run(create, record, box, environment, deadline, should_stop)
    if code:
        raise EnvironmentError_(f"could not create the environment: {output.strip()[-300:]}")
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
        raise EnvironmentError_(reason)


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


def _size(path: Path) -> int:
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:
                pass
    return total


def evict_environments(*, keep: str = "") -> None:
    """Remove the least recently used environments while they take more than the disk budget.
    One in use (its lock held) is skipped."""
    root = settings.ENVIRONMENTS_DIR
    ready = sorted(
        (p for p in root.iterdir() if (p / READY).exists() and p.name != keep),
        key=lambda p: (p / READY).stat().st_mtime,
    )
    sizes = {p: _size(p) for p in ready}
    total = sum(sizes.values()) + (_size(root / keep) if keep else 0)
    for path in ready:
        if total <= settings.ENVIRONMENTS_MAX_BYTES:
            break
        with open(root / f"{path.name}.lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            (path / READY).unlink(missing_ok=True)
            shutil.rmtree(path, ignore_errors=True)
            total -= sizes[path]
            logger.info("evicted environment %s (%d bytes)", path.name, sizes[path])


def version_requirements(version) -> str:
    entry = manifest_file(version.manifest, "requirements.txt")
    if entry is None:
        return ""
    with blob_open(entry.blob) as stored:
        return stored.read(1024 * 1024).decode("utf-8", errors="replace")


def version_environment(version, requirements: str | None = None) -> EnvironmentBuild:
    """The environment a version runs in, as recorded (pending until a worker builds it)."""
    if requirements is None:
        requirements = version_requirements(version)
    key = environment_key(version.package.language, requirements)
    record, _ = EnvironmentBuild.objects.get_or_create(
        key=key, defaults={"python_version": version.package.language}
    )
    record.versions.add(version)
    return record


def prepare_environment(version_id: int) -> None:
    """Build a version's environment ahead of its first run (an RQ job queued at upload)."""
    from packages.models import PackageVersion

    version = (
        PackageVersion.objects.select_related("package", "manifest").filter(pk=version_id).first()
    )
    if version is None:
        return
    try:
        environment_for(
            python_version=version.package.language, requirements=version_requirements(version)
        )
    except EnvironmentError_ as error:  # the version's page and its first run say why
        logger.warning("environment of %s not built ahead: %s", version, error.reason)


def prepare_environment_later(version) -> None:
    """Record a new version's environment and queue its build on the workers that will run it."""
    import django_rq

    from pipelines.tasks import build_environment

    version_environment(version)
    queues = ["pipelines"] + (["gpu"] if version.package.gpu_required else [])
    for name in queues:
        try:
            django_rq.get_queue(name).enqueue(
                build_environment,
                version.pk,
                job_timeout=settings.ENVIRONMENT_BUILD_MAX_SECONDS + BUILD_JOB_SLACK_SECONDS,
                result_ttl=BUILD_RESULT_TTL_SECONDS,
                description=f"environment of {version}",
            )
        except Exception:  # noqa: BLE001 - Redis away: the first run builds it
            logger.warning("could not queue the environment build of %s", version)


def environment_rebuild(*, version) -> EnvironmentBuild:
    """Forget a failed build of the version's environment and build it again (the caller
    checked the actor may run pipelines in the project)."""
    record = version_environment(version)
    if record.status == EnvironmentBuild.BUILDING:
        return record
    EnvironmentBuild.objects.filter(pk=record.pk).update(
        status=EnvironmentBuild.PENDING, detail="", finished_at=None
    )
    record.refresh_from_db()
    transaction.on_commit(lambda: prepare_environment_later(version))
    return record

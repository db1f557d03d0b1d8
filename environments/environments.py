"""Each package version runs in a Python environment built from its requirements.txt with uv
(pip where uv is missing), shared by every version and run with the same Python and the same
normalised requirements, built once per worker machine and reused.

    <ENVIRONMENTS_DIR>/<key>/          a virtual environment
    <ENVIRONMENTS_DIR>/<key>/.ready    written last: without it the environment is half-built
    <ENVIRONMENTS_DIR>/<key>.lock      workers building or using the same key wait on it
"""

import fcntl
import logging
import os
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from environments.builds import BuildRecord, BuildStopped, EnvironmentUnavailable, build
from environments.models import EnvironmentBuild
from environments.records import environment_key, manifest_requirements, normalise_requirements
from sandbox.isolation import can_run
from sandbox.sandbox import status
from sandbox.sandbox_uids import probe_uid
from sandbox.trees import remove_tree

logger = logging.getLogger(__name__)
READY = ".ready"
# Asking an interpreter its version: instant, unless the machine is in trouble.
PYTHON_VERSION_TIMEOUT_SECONDS = 10


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
        uid = probe_uid()
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


@dataclass
class Environment:
    key: str
    path: Path

    @property
    def python(self) -> str:
        return str(self.path / "bin" / "python")


@contextmanager
def _locked(key: str, on_wait=None):
    """The build lock of `key`; `on_wait()` is called first if someone else holds it. A file
    of its own: `<key>.lock` is the in-use lock (shared while a run or a skill replica uses
    the environment, exclusive to evict it), and a replica holds it as long as it lives."""
    root = settings.ENVIRONMENTS_DIR
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"{key}.build.lock", "w") as lock:
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
    *,
    python_version: str,
    requirements: str,
    log=None,
    on_build=None,
    should_stop=None,
    recorded_ready=False,
):
    """The ready environment for these requirements, building it if needed (under a lock, so two
    workers never build the same one at once; a half-built one is removed and built again).
    `on_build()` is called before a build starts; `log(text)` receives the installer's output,
    `log(line, platform=True)` the lines of the platform's own ("[aicenter] …\n");
    `should_stop()` true stops a build (BuildStopped). A build that failed lately is not tried
    again until its Rebuild (or AICENTER_BUILD_FAILURE_TTL): its reason is raised at once.
    `recorded_ready`: the caller has just read its record, and it said ready.
    Raises EnvironmentUnavailable with a reason for the user."""
    key = environment_key(python_version, requirements)
    path = settings.ENVIRONMENTS_DIR / key
    environment = Environment(key=key, path=path)
    if (path / READY).exists():
        _already_built(key, path, recorded_ready=recorded_ready)
        return environment
    _raise_recent_failure(key)
    python = find_python(python_version)
    if python is None:
        raise EnvironmentUnavailable(
            f"Python {python_version} is not available on this worker; the package asks for it"
        )

    def waiting():
        if on_build:
            on_build()
        if log:
            log(
                "[aicenter] waiting for this environment, which another run is building\n",
                platform=True,
            )

    with _locked(key, on_wait=waiting):
        if (path / READY).exists():  # another worker built it while we waited
            return environment
        _raise_recent_failure(key)  # another worker failed it while we waited
        if on_build:
            on_build()
        _build_here(key, path, python, python_version, requirements, log, should_stop)
    evict_environments(keep=key)
    return environment


def _already_built(key, path, *, recorded_ready) -> None:
    """Mark it used; and built here before its record said so (the record made later, or left
    pending), say it is ready: the versions' pages would say "Environment pending" for an
    environment runs use."""
    os.utime(path / READY)  # least recently used goes first when the disk budget is hit
    pending = EnvironmentBuild.objects.filter(key=key, status=EnvironmentBuild.PENDING)
    if not recorded_ready and pending.exists():  # a write only when one is due
        pending.update(status=EnvironmentBuild.READY, finished_at=timezone.now())


def _build_here(key, path, python, python_version, requirements, log, should_stop) -> None:
    """Build it at `path` (under its lock), its record kept as it goes: ready, failed with the
    reason, or pending again when stopped or broken off."""
    record = BuildRecord(key, python_version, log)
    if path.exists():
        record.write(
            "[aicenter] removing a half-built environment left by a crashed worker\n",
            platform=True,
        )
        remove_tree(path)
    started = time.monotonic()
    try:
        build(path, python, normalise_requirements(requirements), record, should_stop)
    except BuildStopped:  # to be built again, by the next run that needs it
        _discard(path)
        record.end(EnvironmentBuild.PENDING)
        raise
    except EnvironmentUnavailable as error:
        _discard(path)
        record.end(EnvironmentBuild.FAILED, error.reason)
        raise
    except BaseException:
        _discard(path)
        record.end(EnvironmentBuild.PENDING)
        raise
    (path / READY).write_text(f"built in {time.monotonic() - started:.1f} s\n")
    record.end(EnvironmentBuild.READY)


def _raise_recent_failure(key: str) -> None:
    """The same requirements failed to install lately: say so again instead of building again
    (an index that never answers would hold a worker each time)."""
    recent = timezone.now() - timedelta(seconds=settings.ENVIRONMENT_FAILURE_TTL_SECONDS)
    failed = EnvironmentBuild.objects.filter(
        key=key, status=EnvironmentBuild.FAILED, finished_at__gte=recent
    ).first()
    if failed:
        raise EnvironmentUnavailable(
            f"{failed.detail} (the last build failed at {failed.finished_at:%H:%M} UTC; "
            "use Rebuild on the version to try again)"
        )


@contextmanager
def using_environment(
    *,
    python_version: str,
    requirements: str,
    log=None,
    on_build=None,
    should_stop=None,
    recorded_ready=False,
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
            recorded_ready=recorded_ready,
        )
        with open(settings.ENVIRONMENTS_DIR / f"{environment.key}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_SH)
            if (environment.path / READY).exists():
                yield environment
                return
        # evicted between the two steps: build it again


def _size(path: Path) -> int:
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:
                pass
    return total


def _discard(path: Path) -> None:
    """Delete an environment being given up; a failure is logged, not raised: a later build
    of the same key removes what is left first."""
    try:
        remove_tree(path)
    except OSError as error:
        logger.warning("could not remove the environment %s (%s)", path, error)


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
            _discard(path)
            total -= sizes[path]
            logger.info("evicted environment %s (%d bytes)", path.name, sizes[path])


def build_ahead(python_version: str, manifest_id: int, name: str = "") -> None:
    """Build the environment of a version's requirements.txt (the file of `manifest_id`) ahead
    of its first run: the RQ job environments.records queues at upload (`name` says whose)."""
    try:
        environment_for(
            python_version=python_version, requirements=manifest_requirements(manifest_id)
        )
    except EnvironmentUnavailable as error:  # the version's page and its first run say why
        logger.warning("environment of %s not built ahead: %s", name or manifest_id, error.reason)

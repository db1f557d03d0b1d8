"""A package version's environment as the platform records it: its key (a Python and its
normalised requirements), its EnvironmentBuild row, and the build job queued ahead of its first
run. What pages, the API and uploads need, without the sandbox that builds
(environments/environments.py, on the workers)."""

import hashlib
import logging
from functools import lru_cache

from django.conf import settings
from django.db import transaction

from core import queue
from core.blob_cache import local_blob
from core.manifests import blob_open
from core.models import ManifestEntry
from core.services import RUN, require
from environments.models import EnvironmentBuild

logger = logging.getLogger(__name__)
# RQ's own time limit for a build job: the build's limit plus slack, so the build's own
# timeout (which records why) fires first.
BUILD_JOB_SLACK_SECONDS = 600
# RQ keeps a build job's result this long, for its dashboard only (the build row is the record).
BUILD_RESULT_TTL_SECONDS = 600


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


def version_requirements(version) -> str:
    return _requirements(version.manifest_id)[1]


def version_requirements_blob(version) -> str | None:
    """The blob of the version's requirements.txt (None without one): two versions with the
    same one run in the same environment."""
    return _requirements(version.manifest_id)[0]


# A version's files never change, so neither does its requirements.txt: each process reads it
# once per version, not before every run.
@lru_cache(maxsize=1024)
def _requirements(manifest_id: int) -> tuple[str | None, str]:
    entry = (
        ManifestEntry.objects.filter(
            manifest_id=manifest_id, path="requirements.txt", blob__isnull=False
        )
        .select_related("blob")
        .first()
    )
    if entry is None:
        return None, ""
    source = local_blob(entry.blob_id, entry.blob.size)  # this machine's copy of remote storage
    with open(source, "rb") if source else blob_open(entry.blob) as stored:
        return entry.blob_id, stored.read(1024 * 1024).decode("utf-8", errors="replace")


# A version's link to its environment's record is never removed: each process looks for it
# once per version, not before every run.
@lru_cache(maxsize=10_000)
def _link(record_id: int, version_id: int) -> None:
    links = EnvironmentBuild.versions.through.objects
    # a read, not a write: its version was recorded when it was made
    if not links.filter(environmentbuild_id=record_id, packageversion_id=version_id).exists():
        links.bulk_create(
            [links.model(environmentbuild_id=record_id, packageversion_id=version_id)],
            ignore_conflicts=True,
        )


def version_environment(version, requirements: str | None = None) -> EnvironmentBuild:
    """The environment a version runs in, as recorded (pending until a worker builds it)."""
    if requirements is None:
        requirements = version_requirements(version)
    key = environment_key(version.package.language, requirements)
    record, _ = EnvironmentBuild.objects.get_or_create(
        key=key, defaults={"python_version": version.package.language}
    )
    _link(record.pk, version.pk)
    return record


def prepare_environment_ahead(version) -> None:
    """Build a new version's environment ahead, once the transaction that stored the version
    commits, so its first run does not pay for it. Package uploads (packages/services.py)
    and the runner call this for each version they make."""
    if version.package.training_enabled and settings.PREPARE_ENVIRONMENTS:
        transaction.on_commit(lambda: prepare_environment_later(version))


def prepare_environment_later(version) -> None:
    """Record a new version's environment and queue its build on the workers that will run it."""
    version_environment(version)
    queues = ["pipelines"] + (["gpu"] if version.package.gpu_required else [])
    for name in queues:
        try:
            queue.enqueue(
                name,
                "environments.tasks.build_environment",
                version.package.language,
                version.manifest_id,
                str(version),
                job_timeout=settings.ENVIRONMENT_BUILD_MAX_SECONDS + BUILD_JOB_SLACK_SECONDS,
                result_ttl=BUILD_RESULT_TTL_SECONDS,
                description=f"environment of {version}",
            )
        except Exception:  # noqa: BLE001 - Redis away: the first run builds it
            logger.warning("could not queue the environment build of %s", version)


def environment_rebuild(*, version, user) -> EnvironmentBuild:
    """Forget a failed build of the version's environment and build it again."""
    require(user=user, project=version.package.project, need=RUN)
    record = version_environment(version)
    if record.status == EnvironmentBuild.BUILDING:
        return record
    EnvironmentBuild.objects.filter(pk=record.pk).update(
        status=EnvironmentBuild.PENDING, detail="", finished_at=None
    )
    record.refresh_from_db()
    transaction.on_commit(lambda: prepare_environment_later(version))
    return record


def manifest_requirements(manifest_id: int) -> str:
    """The requirements.txt of a version's files ('' without one)."""
    return _requirements(manifest_id)[1]


def failed_build_output(version_id: int) -> str:
    """What the installer said in the version's last failed build, if one failed."""
    build = EnvironmentBuild.objects.filter(
        versions=version_id, status=EnvironmentBuild.FAILED
    ).first()
    return build.output if build else ""

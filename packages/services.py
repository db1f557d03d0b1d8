"""Writes for ML packages and their versions. Views and the API both call these."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Max, ProtectedError
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils import timezone

from core.disk_space import data_disk_refuse_when_low
from core.errors import conflict, name_taken
from core.events import record
from core.in_use import refuse_live_runs
from core.manifests import (
    clean_path,
    manifest_delete,
    manifest_from_files,
    manifest_totals,
)
from core.services import RUN, require
from environments.records import prepare_environment_ahead
from packages.models import Package, PackageVersion
from packages.selectors import version_next_major
from packages.validation import read_package_zip

# Two writers racing for one version number: the loser takes the next one, this many times.
# Uploads race rarely (people, one zip each); trained versions more (runs of one recurring
# pipeline finishing together), so theirs is larger.
RESERVED_NAMES = {"new"}  # /p/<project>/packages/new/ is the upload form
UPLOAD_NUMBER_ATTEMPTS = 5
TRAINED_NUMBER_ATTEMPTS = 50


def _clean_package_fields(*, project, name, input_type, language) -> dict:
    errors = {}
    if not name:
        errors["name"] = "A name is required."
    elif not name.isidentifier() or not name.isascii():
        errors["name"] = (
            f"'{name}' is not a valid name: use letters, digits and underscores, "
            "not starting with a digit."
        )
    elif name in RESERVED_NAMES:
        errors["name"] = f"'{name}' names a page of the packages list; choose another name."
    elif Package.objects.filter(project=project, name=name).exists():
        errors["name"] = name_taken(f"A package named '{name}' already exists in this project.")
    if input_type not in dict(Package.INPUT_TYPES):
        errors["input_type"] = f"'{input_type}' is not an input type; use json, file or files."
    if language not in settings.PYTHON_VERSIONS:
        errors["language"] = (
            f"Python {language} is not available here; choose one of "
            f"{', '.join(settings.PYTHON_VERSIONS)}."
        )
    return errors


def _record(project, action, *, actor, package_name, version=None, message="", data=None, url=""):
    """A package's ML Logs event; about a version when `version` (its number) is given."""
    return record(
        project=project,
        category="package",
        action=action,
        actor=actor,
        object_type="version" if version else "package",
        object_key=f"{package_name} {version}" if version else package_name,
        object_name=f"{package_name} {version}" if version else package_name,
        url=url,
        message=message,
        data=data,
    )


def _size(version) -> str:
    files = f"{version.file_count} file{'s' if version.file_count != 1 else ''}"
    return f"{files}, {filesizeformat(version.size)}".replace("\xa0", " ")


def _version_url(version) -> str:
    package = version.package
    return reverse("version-detail", args=[package.project.slug, package.name, version.number])


def _record_refused(*, project, user, name: str, error: ValidationError, url: str = "") -> None:
    """An upload refused by validation is logged with its errors, although nothing of it is
    stored: outside the upload's transaction (it never opened, or it rolled back)."""
    errors = error.message_dict if hasattr(error, "error_dict") else {"file": error.messages}
    problems = "; ".join(message for messages in errors.values() for message in messages)
    _record(
        project,
        "refused",
        actor=user,
        package_name=name,
        message=f"Refused: {problems}"[:500],
        data={"errors": errors},
        url=url,
    )


def _version_from_archive(*, package, major, archive, user) -> PackageVersion:
    paths = {clean_path(path, field="file"): path for path in archive.files}
    manifest = manifest_from_files((clean, archive.open(raw)) for clean, raw in paths.items())
    file_count, size = manifest_totals(manifest)
    return PackageVersion.objects.create(
        package=package,
        major=major,
        minor=0,
        manifest=manifest,
        source=PackageVersion.UPLOADED,
        created_by=user,
        file_count=file_count,
        size=size,
    )


def package_create(
    *,
    project,
    user,
    name: str,
    file,
    description: str = "",
    input_type: str = "json",
    input_description: str = "",
    output_description: str = "",
    language: str = "",
    gpu_required: bool = False,
    training_enabled: bool = True,
    build_ahead: bool = False,
) -> Package:
    """Validate the upload and create the package with its version 1.0, or store nothing.
    `user` needs the Data scientist role (or Project admin) in `project`. `build_ahead`: an
    upload through the pages or the API, whose environment is built before its first run."""
    require(user=user, project=project, need=RUN)
    data_disk_refuse_when_low(field="file")
    name = (name or "").strip()
    try:
        package = _package_create(
            project=project,
            user=user,
            name=name,
            file=file,
            description=description,
            input_type=input_type,
            input_description=input_description,
            output_description=output_description,
            language=language or settings.PYTHON_VERSIONS[0],
            gpu_required=gpu_required,
            training_enabled=training_enabled,
        )
    except ValidationError as error:
        _record_refused(project=project, user=user, name=name, error=error)
        raise
    if build_ahead:
        _build_ahead(package.first_version)
    return package


def _build_ahead(version) -> None:
    """An uploaded version's environment, built ahead on the workers once it is stored, so its
    first run does not pay for it."""
    prepare_environment_ahead(version)


def _package_create(
    *,
    project,
    user,
    name,
    file,
    description,
    input_type,
    input_description,
    output_description,
    language,
    gpu_required,
    training_enabled,
) -> Package:
    errors = _clean_package_fields(
        project=project, name=name, input_type=input_type, language=language
    )
    try:
        archive = read_package_zip(file, training_enabled=training_enabled)
    except ValidationError as error:
        errors.update(error.message_dict)
    if errors:
        raise ValidationError(errors)
    try:
        with transaction.atomic():
            package = Package.objects.create(
                project=project,
                name=name,
                description=description,
                input_type=input_type,
                input_description=input_description,
                output_description=output_description,
                language=language,
                gpu_required=gpu_required,
                training_enabled=training_enabled,
                created_by=user,
            )
            package.first_version = version = _version_from_archive(
                package=package, major=1, archive=archive, user=user
            )
            _record(
                project,
                "uploaded",
                actor=user,
                package_name=name,
                message=f"Version 1.0: {_size(version)}",
                data={"version": version.number},
                url=reverse("package-detail", args=[project.slug, name]),
            )
    except IntegrityError:
        raise ValidationError(
            {"name": name_taken(f"A package named '{name}' already exists in this project.")}
        ) from None
    return package


def package_version_upload(*, package, user, file, build_ahead: bool = False) -> PackageVersion:
    """A new zip for an existing package becomes its next major version, N.0 (never the
    number of a deleted one). `build_ahead`: as for package_create."""
    require(user=user, project=package.project, need=RUN)
    data_disk_refuse_when_low(field="file")
    try:
        archive = read_package_zip(file, training_enabled=package.training_enabled)
    except ValidationError as error:
        url = reverse("package-detail", args=[package.project.slug, package.name])
        _record_refused(project=package.project, user=user, name=package.name, error=error, url=url)
        raise
    version = _version_numbered(package=package, archive=archive, user=user)
    if build_ahead:
        _build_ahead(version)
    return version


def _version_numbered(*, package, archive, user) -> PackageVersion:
    """The archive stored as the package's next major version, recorded in ML Logs."""
    for _attempt in range(UPLOAD_NUMBER_ATTEMPTS):
        try:
            with transaction.atomic():
                version = _version_from_archive(
                    package=package,
                    major=version_next_major(package=package),
                    archive=archive,
                    user=user,
                )
                _record(
                    package.project,
                    "validated",
                    actor=user,
                    package_name=package.name,
                    version=version.number,
                    message=f"New major version: {_size(version)}",
                    data={"version": version.number},
                    url=_version_url(version),
                )
                return version
        except IntegrityError:
            continue  # another upload took that number a moment ago: take the next one
    raise ValidationError({"file": "Too many uploads at once for this package; try again."})


def _refuse_served(what: str, skills):
    if names := sorted(set(skills.values_list("name", flat=True))):
        raise conflict(
            f"{what} can't be deleted: ML Skill(s) {', '.join(names)} serve it. "
            "Delete those skills, or update them to another version, first."
        )


def _version_tombstone(version) -> None:
    """Its files go, its row stays (`deleted_at`): the number is never given again, and runs
    that used or made it still name it ("1.1 (deleted)"). Inside the caller's transaction."""
    # the unique constraint also sees tombstones: nobody can take this number meanwhile
    PackageVersion.with_deleted.filter(pk=version.pk).update(
        deleted_at=timezone.now(), manifest=None
    )
    version.environment_builds.clear()
    if version.manifest is not None:
        manifest_delete(version.manifest)


def package_version_delete(*, user, version) -> None:
    """Delete a version's files and keep its row as a tombstone. Refused while skills serve it
    or unfinished runs use it."""
    require(user=user, project=version.package.project, need=RUN)
    _refuse_served(
        f"Version {version.number}",
        # the skills app's relations to a version (skills stand above packages: no import)
        version.skills.all() | version.served_by.all(),
    )
    refuse_live_runs(f"Version {version.number}", version.pipeline_runs.all())
    if aliases := sorted(version.aliases.values_list("name", flat=True)):
        # an alias must always name a version one can run or deploy
        raise conflict(
            f"Version {version.number} can't be deleted: alias(es) {', '.join(aliases)} "
            "point at it. Move or remove them first."
        )
    with transaction.atomic():
        _version_tombstone(version)
        _record(
            version.package.project,
            "version_deleted",
            actor=user,
            package_name=version.package.name,
            version=version.number,
            message=f"Version {version.number} deleted",
            data={"version": version.number},
        )


def package_delete(*, user, package) -> None:
    """Delete the package, all its versions and their files. Refused while skills serve it or
    unfinished runs use it; if finished runs used it, its rows stay as tombstones that those
    runs still name, and its name is free again."""
    require(user=user, project=package.project, need=RUN)
    _refuse_served(f"Package {package.name}", package.skills.all())
    versions = list(package.versions.select_related("manifest"))  # live ones
    message = f"Deleted with its versions ({len(versions)})"
    try:
        with transaction.atomic():
            _record(
                package.project, "deleted", actor=user, package_name=package.name, message=message
            )
            package.delete()
            for version in versions:
                manifest_delete(version.manifest)
        return
    except ProtectedError as error:  # runs use it: the only PROTECTs left once skills are out
        refuse_live_runs(f"Package {package.name}", error.protected_objects)
    with transaction.atomic():
        _record(
            package.project,
            "deleted",
            actor=user,
            package_name=package.name,
            message=f"{message}; the runs that used it keep its name",
        )
        for version in versions:
            _version_tombstone(version)
        Package.with_deleted.filter(pk=package.pk).update(deleted_at=timezone.now())


def package_version_create_trained(*, run, manifest) -> PackageVersion:
    """The files of a successful run (`manifest`) become version N.k of the run's package, k one
    more than the highest minor of major N ever given (deleted versions included).

    The unique constraint on (package, major, minor) decides between runs finishing at once:
    the loser takes the next number."""
    parent = run.version
    file_count, size = manifest_totals(manifest)
    folder = f"/{run.dataset_folder}" if run.dataset_folder else ""
    trained_on = f"{run.dataset.name}{folder}" if run.dataset else ""
    siblings = PackageVersion.with_deleted.filter(package_id=parent.package_id, major=parent.major)
    for _attempt in range(TRAINED_NUMBER_ATTEMPTS):
        minor = (siblings.aggregate(top=Max("minor"))["top"] or 0) + 1
        try:
            with transaction.atomic():
                version = PackageVersion.objects.create(
                    package_id=parent.package_id,
                    major=parent.major,
                    minor=minor,
                    manifest=manifest,
                    source=PackageVersion.TRAINED,
                    created_by_id=run.created_by_id,
                    parent=parent,
                    pipeline_run=run,
                    trained_on=trained_on,
                    file_count=file_count,
                    size=size,
                )
                # by the system: the run made it, whoever started the run
                version.package = package = run.package
                _record(
                    run.project,
                    "trained",
                    package_name=package.name,
                    version=version.number,
                    actor=None,
                    message=f"Trained by pipeline {run.pk} from {parent.number}"
                    + (f" on {trained_on}" if trained_on else ""),
                    data={"version": version.number, "pipeline": run.pk},
                    url=reverse(
                        "version-detail", args=[run.project.slug, package.name, version.number]
                    ),
                )
                return version
        except IntegrityError:
            continue  # another run took N.k a moment ago
    raise RuntimeError("could not allocate a version number after 50 tries")

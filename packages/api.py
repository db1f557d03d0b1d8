from datetime import datetime

from ninja import File, Form, Router, Schema, Status
from ninja.files import UploadedFile
from pydantic import ConfigDict

from core.downloads import zip_response
from core.errors import ErrorOut
from core.services import project_get_for_user
from packages.aliases import alias_list, alias_remove, alias_set
from packages.selectors import package_get, package_list, version_get, version_list
from packages.services import (
    package_create,
    package_delete,
    package_version_delete,
    package_version_upload,
)

router = Router(tags=["packages"])


class EnvironmentStatus(Schema):
    status: str  # pending | building | ready | failed
    detail: str  # the installer's reason when it failed


class VersionOut(Schema):
    version: str
    source: str
    pipeline: int | None = None
    parent: str | None = None
    created_at: datetime
    environment: EnvironmentStatus


class AliasOut(Schema):
    alias: str
    version: str
    updated_by: str | None
    updated_at: datetime


class AliasIn(Schema):
    model_config = ConfigDict(strict=True, extra="forbid")

    version: str


class PackageOut(Schema):
    name: str
    description: str
    input_type: str
    input_description: str
    output_description: str
    language: str
    gpu_required: bool
    training_enabled: bool
    created_at: datetime
    versions: list[VersionOut]
    aliases: list[AliasOut]


class PackageSummary(Schema):
    name: str
    description: str
    latest_version: str | None
    version_count: int
    training_enabled: bool
    gpu_required: bool
    created_at: datetime


def version_out(version) -> dict:
    return {
        "version": version.number,
        "source": version.source,
        "pipeline": getattr(version, "pipeline_run_id", None),
        "parent": version.parent.number if version.parent else None,
        "created_at": version.created_at,
        "environment": _environment(version),
    }


def _environment(version) -> dict:
    """Its Python environment as the workers last built it (prefetched by version_list)."""
    build = next(iter(version.environment_builds.all()), None)
    if build is None:
        return {"status": "pending", "detail": ""}
    return {"status": build.status, "detail": build.detail}


def alias_out(alias) -> dict:
    return {
        "alias": alias.name,
        "version": alias.version.number,
        "updated_by": alias.updated_by.get_username() if alias.updated_by else None,
        "updated_at": alias.updated_at,
    }


def package_out(package) -> dict:
    fields = {
        name: getattr(package, name)
        for name in PackageOut.model_fields
        if name not in ("versions", "aliases")
    }
    return {
        **fields,
        "versions": [version_out(v) for v in version_list(package=package)],
        "aliases": [alias_out(a) for a in alias_list(package=package)],
    }


@router.get("/{project}/packages", response=list[PackageSummary])
def list_packages(request, project: str):
    project = project_get_for_user(user=request.user, slug=project)
    return [
        {
            **{name: getattr(p, name) for name in PackageSummary.model_fields if hasattr(p, name)},
            "latest_version": f"{p.latest_major}.{p.latest_minor}" if p.latest_major else None,
        }
        for p in package_list(project=project)
    ]


@router.post("/{project}/packages", response={201: PackageOut, 409: ErrorOut})
def create_package(
    request,
    project: str,
    file: UploadedFile = File(None),
    name: str = Form(""),
    description: str = Form(""),
    input_type: str = Form("json"),
    input_description: str = Form(""),
    output_description: str = Form(""),
    language: str = Form(""),
    training_enabled: bool = Form(True),
    gpu_required: bool = Form(False),
):
    project = project_get_for_user(user=request.user, slug=project)
    package = package_create(
        project=project,
        user=request.user,
        name=name,
        file=file,
        description=description,
        input_type=input_type,
        input_description=input_description,
        output_description=output_description,
        language=language,
        training_enabled=training_enabled,
        gpu_required=gpu_required,
        build_ahead=True,
    )
    return Status(201, package_out(package))


@router.get("/{project}/packages/{package}", response=PackageOut)
def get_package(request, project: str, package: str):
    project = project_get_for_user(user=request.user, slug=project)
    return package_out(package_get(project=project, name=package))


@router.delete("/{project}/packages/{package}", response={204: None, 409: ErrorOut})
def delete_package(request, project: str, package: str):
    project = project_get_for_user(user=request.user, slug=project)
    package_delete(user=request.user, package=package_get(project=project, name=package))
    return Status(204, None)


@router.post("/{project}/packages/{package}/versions", response={201: VersionOut})
def upload_version(request, project: str, package: str, file: UploadedFile = File(None)):
    project = project_get_for_user(user=request.user, slug=project)
    package = package_get(project=project, name=package)
    version = package_version_upload(
        package=package, user=request.user, file=file, build_ahead=True
    )
    return Status(201, version_out(version))


@router.get("/{project}/packages/{package}/versions/{version}", response=VersionOut)
def get_version(request, project: str, package: str, version: str):
    """One version, with the same fields as in the package's `versions`."""
    project = project_get_for_user(user=request.user, slug=project)
    package = package_get(project=project, name=package)
    return version_out(version_get(package=package, number=version))


@router.get("/{project}/packages/{package}/versions/{version}/download", response={200: None})
def download_version(request, project: str, package: str, version: str):
    project = project_get_for_user(user=request.user, slug=project)
    package = package_get(project=project, name=package)
    version = version_get(package=package, number=version)
    return zip_response(
        version.manifest,
        filename=f"{package.name}-{version.number}.zip",
        root=f"{package.name}",
    )


@router.delete(
    "/{project}/packages/{package}/versions/{version}", response={204: None, 409: ErrorOut}
)
def delete_version(request, project: str, package: str, version: str):
    """Delete a version's files. Its number is never given again, and runs that made it still
    name it; refused (409) while skills serve it or unfinished pipeline runs use it."""
    project = project_get_for_user(user=request.user, slug=project)
    package = package_get(project=project, name=package)
    package_version_delete(user=request.user, version=version_get(package=package, number=version))
    return Status(204, None)


@router.put(
    "/{project}/packages/{package}/aliases/{alias}", response={200: AliasOut, 409: ErrorOut}
)
def put_alias(request, project: str, package: str, alias: str, payload: AliasIn):
    """Point the alias (champion, staging…) at a version, creating or moving it. Runs and
    skills may name the alias where they name a version; skills that follow it update."""
    project = project_get_for_user(user=request.user, slug=project)
    package = package_get(project=project, name=package)
    return alias_out(alias_set(user=request.user, package=package, name=alias, **payload.dict()))


@router.delete("/{project}/packages/{package}/aliases/{alias}", response={204: None})
def delete_alias(request, project: str, package: str, alias: str):
    """Remove the alias; skills that followed it keep the version they have."""
    project = project_get_for_user(user=request.user, slug=project)
    package = package_get(project=project, name=package)
    alias_remove(user=request.user, package=package, name=alias)
    return Status(204, None)

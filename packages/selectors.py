"""Reads for ML packages."""

from django.db.models import Count, Exists, Max, OuterRef, Q, Subquery
from django.http import Http404

from packages.models import Package, PackageVersion


def package_list(*, project):
    latest = PackageVersion.objects.filter(package=OuterRef("pk")).order_by("-major", "-minor")
    return (
        Package.objects.filter(project=project)
        .annotate(
            version_count=Count("versions", filter=Q(versions__deleted_at=None)),
            latest_major=Subquery(latest.values("major")[:1]),
            latest_minor=Subquery(latest.values("minor")[:1]),
            # a version whose environment failed to build (environments' EnvironmentBuild)
            environment_failed=Exists(
                PackageVersion.objects.filter(
                    package=OuterRef("pk"), environment_builds__status="failed"
                )
            ),
        )
        .order_by("name")
    )


def with_latest_number(packages):
    """Evaluate a package_list() page, adding `latest_number` ('1.2') to each package."""
    packages = list(packages)
    for package in packages:
        has = package.latest_major is not None
        package.latest_number = f"{package.latest_major}.{package.latest_minor}" if has else None
    return packages


def package_get(*, project, name: str) -> Package:
    # through the project, so package.project is this very object (with the role
    # project_get_for_user found, which the services' permission check reuses)
    package = project.packages.filter(name=name).first()
    if package is None:
        raise Http404(f"No package '{name}' in this project.")
    return package


def package_pipeline_runs(*, package, unfinished: bool = False):
    """The runs of the package (`unfinished`: those that keep it from being deleted), newest
    first, with what a table of runs shows (partials/runs_table.html)."""
    runs = package.project.pipeline_runs
    if unfinished:
        runs = runs.filter(status__in=runs.model.UNFINISHED)
    return (
        runs.filter(package=package)
        .select_related("package", "version", "dataset", "evaluation_dataset", "created_by")
        .order_by("-created_at", "-id")
    )


def version_next_major(*, package) -> int:
    """The major of the package's next upload: one more than any ever given, deleted ones
    included (their numbers are not given again)."""
    top = PackageVersion.with_deleted.filter(package=package).aggregate(top=Max("major"))["top"]
    return (top or 0) + 1


def version_list(*, package):
    return (
        package.versions.select_related("created_by", "parent", "pipeline_run")
        .prefetch_related("environment_builds")
        .order_by("-major", "-minor")
    )


def version_get(*, package, number: str) -> PackageVersion:
    try:
        major, minor = (int(part) for part in number.split("."))
    except ValueError:
        raise Http404(f"'{number}' is not a version number like 1.0.") from None
    version = (
        package.versions.select_related("manifest", "created_by", "parent", "pipeline_run")
        .filter(major=major, minor=minor)
        .first()
    )
    if version is None:
        raise Http404(f"Package {package.name} has no version {number}.")
    return version

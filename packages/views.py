from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_POST

from core.downloads import file_response, zip_response
from core.pages import delete_confirmation, done, folder_context, form_errors, page_of
from core.services import RUN, can, project_get_for_user
from packages.aliases import alias_list, alias_remove, alias_set
from packages.forms import PackageForm
from packages.models import PackageVersion
from packages.selectors import (
    package_get,
    package_list,
    package_pipeline_runs,
    version_get,
    version_list,
    version_next_major,
    with_latest_number,
)
from packages.services import (
    package_create,
    package_delete,
    package_version_delete,
    package_version_upload,
)


@login_required
def package_list_page(request, project):
    project = project_get_for_user(user=request.user, slug=project)
    page = page_of(request, package_list(project=project))
    page.object_list = with_latest_number(page.object_list)
    return render(
        request,
        "packages/list.html",
        {
            "project": project,
            "page": page,
            "can_edit": can(project, RUN),
        },
    )


@login_required
def package_new(request, project):
    project = project_get_for_user(user=request.user, slug=project, need=RUN)
    form = PackageForm(request.POST, request.FILES) if request.method == "POST" else PackageForm()
    if form.is_bound and form.is_valid():
        try:
            package = package_create(
                project=project, user=request.user, build_ahead=True, **form.cleaned_data
            )
        except ValidationError as error:  # the name or the zip: shown at their fields
            form.add_error(None, error)
        else:
            return done(request, reverse("package-detail", args=[project.slug, package.name]))
    failed = bool(form.errors)
    template = "packages/new.html#package-form" if request.htmx and failed else "packages/new.html"
    context = {"project": project, "form": form}
    return render(request, template, context, status=400 if failed else 200)


def _score_chart(versions) -> tuple[dict | None, str]:
    """The chart of the scores of the trained versions, oldest first (their runs come with
    them: no query), or, below two, why there is none when the package has trained ones."""
    trained = [v for v in reversed(versions) if v.source == PackageVersion.TRAINED]
    scored = [v for v in trained if v.pipeline_run and v.pipeline_run.score is not None]
    if len(scored) >= 2:
        points = [[order, v.pipeline_run.score] for order, v in enumerate(scored)]
        numbers = [v.number for v in scored]
        chart = {"series": [{"label": "Score", "points": points}], "xLabel": "Version"}
        return {**chart, "yLabel": "Score", "xNames": numbers, "height": 200}, ""
    if scored:
        first = scored[0]
        note = f"Version {first.number} has a score ({first.pipeline_run.score:.4g}): "
        return None, note + "the scores are charted here once two versions have one."
    if trained:
        return None, (
            "No trained version has a score yet: full pipeline runs score the version they "
            "train (evaluate()), and the scores are charted here."
        )
    return None, ""


def _package_page(request, project, package, *, errors=None, status=200, partial=""):
    versions = list(version_list(package=package))
    aliases = alias_list(package=package)
    for version in versions:  # each version's aliases, beside its number
        version.alias_names = [a.name for a in aliases if a.version_id == version.pk]
    score_chart, score_note = _score_chart(versions)
    context = {
        "project": project,
        "package": package,
        "versions": versions,
        "aliases": aliases,
        "alias_values": (request.POST if errors and "alias" in request.POST else {}),
        "score_chart": score_chart,
        "score_note": score_note,
        "next_major": version_next_major(package=package),
        "errors": errors or {},
        "can_edit": can(project, RUN),
    }
    return render(request, "packages/detail.html" + partial, context, status=status)


@login_required
def package_detail(request, project, package):
    project = project_get_for_user(user=request.user, slug=project)
    return _package_page(request, project, package_get(project=project, name=package))


@login_required
@require_POST
def package_upload(request, project, package):
    project = project_get_for_user(user=request.user, slug=project)
    package = package_get(project=project, name=package)
    try:
        package_version_upload(
            package=package, user=request.user, file=request.FILES.get("file"), build_ahead=True
        )
    except ValidationError as error:
        partial = "#upload-form" if request.htmx else ""
        return _package_page(
            request, project, package, errors=form_errors(error), status=400, partial=partial
        )
    return done(request, reverse("package-detail", args=[project.slug, package.name]))


@login_required
def package_delete_page(request, project, package):
    """GET: which unfinished runs use the package (it can't go while they run), or the button
    that deletes it. POST: delete it, or, when such runs use it, that same list."""
    project = project_get_for_user(user=request.user, slug=project, need=RUN)
    package = package_get(project=project, name=package)
    runs = package_pipeline_runs(package=package, unfinished=True)
    errors = None
    if request.method == "POST" and not runs.exists():
        try:
            package_delete(user=request.user, package=package)
            return done(request, reverse("package-list", args=[project.slug]))
        except ValidationError as error:  # a run started on it meanwhile
            errors = form_errors(error)
    detail = reverse("package-detail", args=[project.slug, package.name])
    runs_url = reverse("pipeline-list", args=[project.slug])
    return delete_confirmation(
        request,
        project,
        thing="package",
        name=package.name,
        runs=runs,
        errors=errors,
        what="the package and all its versions",
        kept=package_pipeline_runs(package=package).count(),
        back_url=detail,
        action_url=reverse("package-delete", args=[project.slug, package.name]),
        runs_url=f"{runs_url}?{urlencode({'package': package.name})}",
    )


@login_required
def version_detail(request, project, package, version):
    project = project_get_for_user(user=request.user, slug=project)
    package = package_get(project=project, name=package)
    version = version_get(package=package, number=version)
    return render(
        request,
        "packages/version.html",
        {
            "project": project,
            "package": package,
            "version": version,
            "skills": _skills_of_version(version),
            "errors": {},
            "can_edit": can(project, RUN),
            **folder_context(request, version.manifest),
        },
    )


@login_required
def version_download(request, project, package, version):
    project = project_get_for_user(user=request.user, slug=project)
    package = package_get(project=project, name=package)
    version = version_get(package=package, number=version)
    return zip_response(
        version.manifest, filename=f"{package.name}-{version.number}.zip", root=package.name
    )


@login_required
def version_file_download(request, project, package, version, path):
    project = project_get_for_user(user=request.user, slug=project)
    package = package_get(project=project, name=package)
    version = version_get(package=package, number=version)
    return file_response(version.manifest, path, as_attachment=not request.GET.get("inline"))


@login_required
@require_POST
def version_delete_page(request, project, package, version):
    project = project_get_for_user(user=request.user, slug=project)
    package = package_get(project=project, name=package)
    version = version_get(package=package, number=version)
    try:
        package_version_delete(user=request.user, version=version)
    except ValidationError as error:
        return _package_page(request, project, package, errors=form_errors(error), status=400)
    return done(request, reverse("package-detail", args=[project.slug, package.name]))


def _skills_of_version(version):
    """The skills that serve `version` or are moving to it, through the relations the skills
    app declares (skills stand above packages: packages imports none of theirs)."""
    skills = version.skills.all() | version.served_by.all()
    related = ("project", "package", "version", "serving", "created_by")
    return skills.select_related(*related).order_by("name")


@login_required
@require_POST
def package_alias_set(request, project, package):
    """Set or move an alias (the form on the package page)."""
    project = project_get_for_user(user=request.user, slug=project)
    package = package_get(project=project, name=package)
    try:
        alias_set(
            user=request.user,
            package=package,
            name=request.POST.get("alias", ""),
            version=request.POST.get("version", ""),
        )
    except ValidationError as error:
        return _package_page(request, project, package, errors=form_errors(error), status=400)
    return done(request, reverse("package-detail", args=[project.slug, package.name]) + "#aliases")


@login_required
@require_POST
def package_alias_remove(request, project, package, alias):
    project = project_get_for_user(user=request.user, slug=project)
    package = package_get(project=project, name=package)
    alias_remove(user=request.user, package=package, name=alias)
    return done(request, reverse("package-detail", args=[project.slug, package.name]) + "#aliases")

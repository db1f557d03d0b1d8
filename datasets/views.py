from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import render
from django.template.defaultfilters import pluralize
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_POST

from core.downloads import file_response
from core.manifests import clean_folder, clean_path
from core.pages import delete_confirmation, done, folder_context, form_errors, page_of
from core.services import RUN, can, project_get_for_user
from datasets.forms import DatasetForm
from datasets.selectors import dataset_get, dataset_list, dataset_pipeline_runs
from datasets.services import (
    dataset_create,
    dataset_delete,
    dataset_files_upload,
    dataset_folder_create,
    dataset_path_delete,
    dataset_zip_upload,
)


def _browse_url(project, dataset, folder=""):
    url = reverse("dataset-browse", args=[project.slug, dataset.name])
    return f"{url}?{urlencode({'path': folder})}" if folder else url


@login_required
def dataset_list_page(request, project):
    project = project_get_for_user(user=request.user, slug=project)
    form = DatasetForm(request.POST if request.method == "POST" else None)
    if form.is_bound and form.is_valid():
        try:
            dataset = dataset_create(project=project, user=request.user, **form.cleaned_data)
            return done(request, _browse_url(project, dataset))
        except ValidationError as error:
            form.add_error(None, error)
    failed = bool(form.errors)
    context = {
        "project": project,
        "page": page_of(request, dataset_list(project=project)),
        "form": form,
        "can_edit": can(project, RUN),
    }
    template = "datasets/list.html#create-form" if request.htmx and failed else "datasets/list.html"
    return render(request, template, context, status=400 if failed else 200)


def _browse(request, project, dataset, *, errors=None, status=200, template_suffix=""):
    try:  # after a failed upload, the folder the form posted to
        folder = clean_folder(request.GET.get("path") or request.POST.get("folder", ""))
    except ValidationError:
        folder = ""
    context = {
        "project": project,
        "dataset": dataset,
        "errors": errors or {},
        "can_edit": can(project, RUN),
        **folder_context(request, dataset.manifest, folder=folder),
    }
    return render(request, "datasets/browse.html" + template_suffix, context, status=status)


@login_required
def dataset_browse(request, project, dataset):
    project = project_get_for_user(user=request.user, slug=project)
    return _browse(request, project, dataset_get(project=project, name=dataset))


def _edit(request, project, dataset, action, partial):
    """Run a write on the dataset; on success back to the folder, else the form with errors."""
    project = project_get_for_user(user=request.user, slug=project)
    dataset = dataset_get(project=project, name=dataset)
    try:
        folder = action(dataset)
        return done(request, _browse_url(project, dataset, folder))
    except ValidationError as error:
        errors, status = form_errors(error), 400
    except Http404 as error:  # the file went (another tab deleted it): said on the form
        errors, status = {"path": [str(error)]}, 404
    suffix = f"#{partial}" if request.htmx else ""
    return _browse(request, project, dataset, errors=errors, status=status, template_suffix=suffix)


@login_required
@require_POST
def dataset_upload(request, project, dataset):
    def action(dataset):
        folder = request.POST.get("folder", "")
        uploads = request.FILES.getlist("files")
        paths = request.POST.getlist("paths")
        if len(paths) != len(uploads):  # no JavaScript: the browser sends names only
            paths = [upload.name for upload in uploads]
        count = dataset_files_upload(
            user=request.user,
            dataset=dataset,
            folder=folder,
            files=list(zip(paths, uploads, strict=True)),
        )
        messages.success(request, f"Uploaded {count} file{pluralize(count)}.")
        return folder

    return _edit(request, project, dataset, action, "upload-form")


@login_required
@require_POST
def dataset_upload_zip(request, project, dataset):
    def action(dataset):
        folder = request.POST.get("folder", "")
        count = dataset_zip_upload(
            user=request.user, dataset=dataset, folder=folder, file=request.FILES.get("zip")
        )
        messages.success(request, f"Unpacked {count} file{pluralize(count)} from the zip.")
        return folder

    return _edit(request, project, dataset, action, "zip-form")


@login_required
@require_POST
def dataset_new_folder(request, project, dataset):
    def action(dataset):
        return dataset_folder_create(
            user=request.user,
            dataset=dataset,
            folder=request.POST.get("folder", ""),
            name=request.POST.get("name"),
        )

    return _edit(request, project, dataset, action, "folder-form")


@login_required
@require_POST
def dataset_delete_path(request, project, dataset):
    def action(dataset):
        path = request.POST.get("path", "")
        dataset_path_delete(user=request.user, dataset=dataset, path=path)
        path = clean_path(path)  # as the service read it
        return path.rsplit("/", 1)[0] if "/" in path else ""

    return _edit(request, project, dataset, action, "browser")


@login_required
def dataset_delete_page(request, project, dataset):
    """GET: which unfinished runs use the dataset (it can't go while they run), or the button
    that deletes it. POST: delete it, or, when such runs use it, that same list."""
    project = project_get_for_user(user=request.user, slug=project, need=RUN)
    dataset = dataset_get(project=project, name=dataset)
    runs = dataset_pipeline_runs(dataset=dataset, unfinished=True)
    errors = None
    if request.method == "POST" and not runs.exists():
        try:
            dataset_delete(user=request.user, dataset=dataset)
            return done(request, reverse("dataset-list", args=[project.slug]))
        except ValidationError as error:  # a run started on it meanwhile
            errors = form_errors(error)
    url = reverse("dataset-delete", args=[project.slug, dataset.name])
    return delete_confirmation(
        request,
        project,
        thing="dataset",
        name=dataset.name,
        runs=runs,
        errors=errors,
        what="the dataset and all its files",
        kept=dataset_pipeline_runs(dataset=dataset).count(),
        back_url=_browse_url(project, dataset),
        action_url=url,
    )


@login_required
def dataset_download(request, project, dataset, path):
    project = project_get_for_user(user=request.user, slug=project)
    dataset = dataset_get(project=project, name=dataset)
    return file_response(dataset.manifest, path, as_attachment=not request.GET.get("inline"))

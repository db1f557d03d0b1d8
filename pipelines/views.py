from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_POST

from aicenter.downloads import file_response, zip_response
from aicenter.forms import done, form_errors, page_of
from aicenter.manifests import clean_folder, manifest_listing
from aicenter.previews import file_preview
from aicenter.services import RUN, can, project_get_for_user
from datasets.selectors import dataset_list
from packages.selectors import package_list
from pipelines.forms import form_values, parameters_from, values_from_run
from pipelines.logs import run_log_text
from pipelines.models import PipelineRun
from pipelines.selectors import dataset_folders, pipeline_run_get, pipeline_run_list
from pipelines.services import pipeline_run_create, pipeline_run_delete


@login_required
def pipeline_list(request, project):
    project = project_get_for_user(user=request.user, slug=project)
    filters = {key: request.GET.get(key, "") for key in ("status", "type", "package")}
    page = page_of(request, pipeline_run_list(project=project, **filters), per_page=50)
    context = {
        "project": project,
        "page": page,
        "filters": filters,
        "query": urlencode({k: v for k, v in filters.items() if v}),
        "polling": any(not run.is_finished for run in page),
        "statuses": PipelineRun.STATUSES,
        "types": PipelineRun.TYPES,
        "packages": package_list(project=project).values_list("name", flat=True),
        "can_edit": can(project, RUN),
    }
    template = "pipelines/list.html#runs" if request.htmx else "pipelines/list.html"
    return render(request, template, context)


def _form_context(project, values, errors=None):
    packages = list(package_list(project=project).filter(training_enabled=True))
    package = next((p for p in packages if p.name == values["package"]), None)
    versions = list(package.versions.order_by("major", "minor")) if package else []
    majors = sorted({v.major for v in versions})
    if package and values["major"] not in [str(m) for m in majors]:
        values["major"] = str(majors[-1]) if majors else ""
    minors = [v.minor for v in versions if str(v.major) == values["major"]]
    if package and values["minor"] not in [str(m) for m in minors]:
        values["minor"] = str(minors[-1]) if minors else ""
    datasets = list(dataset_list(project=project))
    by_name = {d.name: d for d in datasets}
    return {
        "project": project,
        "values": values,
        "errors": errors or {},
        "types": PipelineRun.TYPES,
        "packages": packages,
        "majors": majors,
        "minors": minors,
        "datasets": datasets,
        "folders": dataset_folders(by_name[values["dataset"]])
        if values["dataset"] in by_name
        else [],
        "evaluation_folders": dataset_folders(by_name[values["evaluation_dataset"]])
        if values["evaluation_dataset"] in by_name
        else [],
    }


@login_required
def pipeline_new(request, project):
    """Create pipeline. GET with the form's values re-renders it in place (dependent selects,
    parameter rows); POST creates the run."""
    project = project_get_for_user(user=request.user, slug=project, need=RUN)
    errors = {}
    if request.method == "POST":
        values = form_values(request.POST)
        parameters, problems = parameters_from(values)
        try:
            if problems:
                raise ValidationError({"parameters": problems})
            run = pipeline_run_create(
                project=project,
                user=request.user,
                type=values["type"],
                name=values["name"],
                package=values["package"],
                version=f"{values['major']}.{values['minor']}",
                dataset=values["dataset"] if values["type"] != PipelineRun.EVALUATE else "",
                dataset_folder=values["dataset_folder"],
                evaluation_dataset=values["evaluation_dataset"]
                if values["type"] != PipelineRun.TRAIN
                else "",
                evaluation_folder=values["evaluation_folder"],
                parameters=parameters,
                gpu=values["gpu"],
            )
            return done(request, reverse("pipeline-detail", args=[project.slug, run.pk]))
        except ValidationError as error:
            errors = form_errors(error)
    elif request.GET.get("from_run"):
        values = values_from_run(pipeline_run_get(project=project, run_id=request.GET["from_run"]))
    else:
        values = form_values(request.GET)
    context = _form_context(project, values, errors)
    partial = request.htmx and (request.method == "POST" or "type" in request.GET)
    template = "pipelines/new.html#pipeline-form" if partial else "pipelines/new.html"
    return render(request, template, context, status=400 if errors else 200)


@login_required
def pipeline_detail(request, project, run_id):
    project = project_get_for_user(user=request.user, slug=project)
    run = pipeline_run_get(project=project, run_id=run_id)
    log, log_seq = run_log_text(run)
    context = {
        "project": project,
        "run": run,
        "log": log,
        "log_seq": log_seq,
        "can_edit": can(project, RUN),
    }
    if request.htmx and request.GET.get("part") == "status":
        return render(request, "pipelines/detail.html#run-status", context)
    return render(request, "pipelines/detail.html", context)


@login_required
def pipeline_log_tail(request, project, run_id):
    """New log text after chunk `after`, appended in place by htmx while the run runs."""
    project = project_get_for_user(user=request.user, slug=project)
    run = pipeline_run_get(project=project, run_id=run_id)
    after = int(request.GET.get("after", 0) or 0)
    text, seq = run_log_text(run, after=after)
    return render(
        request,
        "pipelines/detail.html#log-tail",
        {"project": project, "run": run, "new_text": text, "log_seq": seq},
    )


@login_required
def pipeline_results(request, project, run_id):
    project = project_get_for_user(user=request.user, slug=project)
    run = pipeline_run_get(project=project, run_id=run_id)
    response = HttpResponse(run.results_text or "{}", content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="_results_{run.pk}.json"'
    return response


@login_required
def pipeline_log_download(request, project, run_id):
    project = project_get_for_user(user=request.user, slug=project)
    run = pipeline_run_get(project=project, run_id=run_id)
    response = HttpResponse(run_log_text(run)[0], content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="pipeline-{run.pk}.log"'
    return response


OUTPUT_FOLDERS = {
    "artifacts": ("artifacts", "Artifacts"),
    "snapshot": ("snapshot", "Dataset snapshot"),
    "evaluation-snapshot": ("evaluation_snapshot", "Evaluation data snapshot"),
}


def _output(request, project, run_id, which):
    project = project_get_for_user(user=request.user, slug=project)
    run = pipeline_run_get(project=project, run_id=run_id)
    if which not in OUTPUT_FOLDERS:
        raise Http404(f"A pipeline run has no '{which}'.")
    field, title = OUTPUT_FOLDERS[which]
    manifest = getattr(run, field)
    if manifest is None:
        raise Http404(f"Pipeline run {run.pk} has no {title.lower()}.")
    return project, run, manifest, title


@login_required
def pipeline_output_browse(request, project, run_id, which):
    project, run, manifest, title = _output(request, project, run_id, which)
    try:
        folder = clean_folder(request.GET.get("path", ""))
    except ValidationError:
        folder = ""
    listing = manifest_listing(manifest, folder)
    rows = [("folder", f) for f in listing.folders] + [("file", f) for f in listing.files]
    preview = file_preview(manifest, request.GET["file"]) if request.GET.get("file") else None
    return render(
        request,
        "pipelines/output.html",
        {
            "project": project,
            "run": run,
            "which": which,
            "title": title,
            "folder": folder,
            "listing": listing,
            "page": page_of(request, rows, per_page=200),
            "preview": preview,
            "breadcrumbs": [
                {"name": part, "path": "/".join(folder.split("/")[: i + 1])}
                for i, part in enumerate(folder.split("/") if folder else [])
            ],
        },
    )


@login_required
def pipeline_output_file(request, project, run_id, which, path):
    project, run, manifest, title = _output(request, project, run_id, which)
    return file_response(manifest, path, as_attachment=not request.GET.get("inline"))


@login_required
def pipeline_output_zip(request, project, run_id, which):
    project, run, manifest, title = _output(request, project, run_id, which)
    return zip_response(manifest, filename=f"pipeline-{run.pk}-{which}.zip")


@login_required
@require_POST
def pipeline_delete_page(request, project, run_id):
    project = project_get_for_user(user=request.user, slug=project, need=RUN)
    run = pipeline_run_get(project=project, run_id=run_id)
    try:
        pipeline_run_delete(run=run)
    except ValidationError as error:
        log, log_seq = run_log_text(run)
        return render(
            request,
            "pipelines/detail.html",
            {
                "project": project,
                "run": run,
                "log": log,
                "log_seq": log_seq,
                "errors": form_errors(error),
                "can_edit": True,
            },
            status=400,
        )
    return done(request, reverse("pipeline-list", args=[project.slug]))

from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db.models import Count
from django.http import Http404, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.views.decorators.http import require_POST

from core.downloads import file_response, zip_response
from core.pages import bad_request, done, folder_context, form_errors
from core.services import RUN, can, project_get_for_user
from datasets.selectors import dataset_list
from environments.records import environment_rebuild
from packages.selectors import package_get, package_list, version_get
from pipelines.forms import (
    PipelineForm,
    form_values,
    log_after,
    values_from_run,
    values_from_schedule,
)
from pipelines.inputs import clean_run_inputs, deleted_inputs
from pipelines.logs import log_html, run_log_html, run_log_tail, run_log_text
from pipelines.metrics_pages import metrics_context
from pipelines.models import PipelineRun, Schedule
from pipelines.schedules import (
    schedule_delete,
    schedule_pause,
    schedule_resume,
    schedule_update,
)
from pipelines.selectors import (
    MOST_COMPARED_RUNS,
    PAGE_OF_RUNS,
    dataset_folders,
    environment_built_elsewhere,
    metric_names,
    pipeline_run_get,
    pipeline_run_page,
    pipeline_run_results,
    run_output,
    run_timeline,
    schedule_get,
    schedule_list,
    waiting_for,
)
from pipelines.services import pipeline_run_delete, pipeline_run_kill, pipeline_run_retry
from pipelines.start import pipeline_start
from pipelines.tracebacks import failure_traceback
from pipelines.when import TIMEZONES


def _page_offset(raw, per_page) -> int:
    """?page=N (old links, bookmarks) as an offset; anything but a page number is page 1."""
    number = int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 9 else 1
    return (max(number, 1) - 1) * per_page


@login_required
def pipeline_list(request, project):
    project = project_get_for_user(user=request.user, slug=project)
    keys = ("status", "type", "package", "schedule", "metric", "sort")
    filters = {key: request.GET.get(key, "") for key in keys}
    cursor = request.GET.get("cursor", "")
    offset = 0 if cursor else _page_offset(request.GET.get("page", ""), PAGE_OF_RUNS)
    try:
        page = pipeline_run_page(project=project, **filters, cursor=cursor, offset=offset)
        if not page.runs and (cursor or offset):
            # past the end (a page number too high, or runs deleted since): the last page
            page = pipeline_run_page(project=project, **filters, last=True)
    except ValidationError as error:
        return bad_request(
            request, error, project=project, back=request.path, back_label="All runs"
        )
    counts = {}  # each queue's live workers, counted once for the page
    for run in page:
        run.waiting_for = waiting_for(run, counts)
    query = {k: v for k, v in filters.items() if v}
    here = {"cursor": cursor} if cursor else {"page": request.GET["page"]} if offset else {}
    context = {
        "project": project,
        "page": page,
        "filters": filters,
        "query": urlencode(query),
        "here": urlencode({**query, **here}),  # this very page, for the htmx poll
        "unsorted": urlencode({k: v for k, v in query.items() if k != "sort"}),
        "metric_names": [] if request.htmx else metric_names(project=project),
        "polling": any(not run.is_settled for run in page),
        "statuses": PipelineRun.STATUSES,
        "types": PipelineRun.TYPES,
        "packages": package_list(project=project).values_list("name", flat=True),
        "can_edit": can(project, RUN),
        "most_compared": MOST_COMPARED_RUNS,
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


def _submit(values, *, project, user, schedule=None):
    """Create (or, for `schedule`, update) from the form; every problem at once, field by
    field: the form's own, and the services'."""
    form = PipelineForm(values)
    errors = {} if form.is_valid() else {f: list(m) for f, m in form.errors.items()}
    inputs = form.inputs()
    try:
        if errors:  # still check the inputs, so the user sees all problems together
            clean_run_inputs(project=project, **inputs)
            raise ValidationError(errors)
        when, name = form.cleaned_data["schedule"], form.cleaned_data["name"]
        if schedule is not None:
            return schedule_update(
                schedule=schedule, user=user, when=when, name=name, inputs=inputs
            )
        return pipeline_start(project=project, user=user, when=when, name=name, **inputs)
    except ValidationError as error:
        merged = {field: list(messages) for field, messages in error.message_dict.items()}
        for field, messages in errors.items():
            merged[field] = [*merged.get(field, []), *messages]
        raise ValidationError({f: list(dict.fromkeys(m)) for f, m in merged.items()}) from None


def _render_form(request, project, values, errors, schedule=None):
    context = {
        **_form_context(project, values, errors),
        "schedule": schedule,
        "timezones": TIMEZONES,
    }
    partial = request.htmx and (request.method == "POST" or "type" in request.GET)
    template = "pipelines/new.html#pipeline-form" if partial else "pipelines/new.html"
    return render(request, template, context, status=400 if errors else 200)


@login_required
def pipeline_new(request, project):
    """Create pipeline. GET with the form's values re-renders it in place (dependent selects,
    parameter rows, when to run); POST creates the run or the recurring pipeline."""
    project = project_get_for_user(user=request.user, slug=project, need=RUN)
    errors = {}
    if request.method == "POST":
        values = form_values(request.POST)
        try:
            started = _submit(values, project=project, user=request.user)
            if isinstance(started, Schedule):
                return done(request, reverse("schedule-list", args=[project.slug]))
            return done(request, reverse("pipeline-detail", args=[project.slug, started.pk]))
        except ValidationError as error:
            errors = form_errors(error)
    elif request.GET.get("from_run"):
        values = values_from_run(pipeline_run_get(project=project, run_id=request.GET["from_run"]))
    else:
        values = form_values(request.GET)
    return _render_form(request, project, values, errors)


@login_required
def schedule_edit(request, project, schedule_id):
    project = project_get_for_user(user=request.user, slug=project, need=RUN)
    schedule = schedule_get(project=project, schedule_id=schedule_id)
    errors = {}
    if request.method == "POST":
        values = form_values(request.POST)
        try:
            _submit(values, project=project, user=request.user, schedule=schedule)
            return done(request, reverse("schedule-list", args=[project.slug]))
        except ValidationError as error:
            errors = form_errors(error)
    elif "type" in request.GET:
        values = form_values(request.GET)
    else:
        values = values_from_schedule(schedule)
    return _render_form(request, project, values, errors, schedule=schedule)


@login_required
def schedule_list_page(request, project):
    project = project_get_for_user(user=request.user, slug=project)
    schedules = list(schedule_list(project=project).annotate(run_count=Count("runs")))
    return render(
        request,
        "pipelines/schedules.html",
        {
            "project": project,
            "schedules": schedules,
            "can_edit": can(project, RUN),
        },
    )


@login_required
@require_POST
def schedule_action(request, project, schedule_id, action):
    project = project_get_for_user(user=request.user, slug=project)
    schedule = schedule_get(project=project, schedule_id=schedule_id)
    actions = {"pause": schedule_pause, "resume": schedule_resume, "delete": schedule_delete}
    if action not in actions:
        raise Http404(f"A recurring pipeline can't be '{action}'.")
    actions[action](schedule=schedule, user=request.user)
    return done(request, reverse("schedule-list", args=[project.slug]))


def _run_action(request, project, run_id, action, then):
    """A button on a run: `action(run)` through its service; on success go to `then(project,
    run, result)`, else back to the run's page saying why."""
    project = project_get_for_user(user=request.user, slug=project)
    run = pipeline_run_get(project=project, run_id=run_id)
    try:
        result = action(run)
    except ValidationError as error:
        return _detail(request, project, run, errors=form_errors(error), status=400)
    return done(request, then(project, run, result))


@login_required
@require_POST
def pipeline_kill_page(request, project, run_id):
    def back(project, run, _):
        url = request.POST.get("next", "")  # the list, when killed from there
        if url_has_allowed_host_and_scheme(url, allowed_hosts={request.get_host()}):
            return url
        return reverse("pipeline-detail", args=[project.slug, run.pk])

    return _run_action(
        request, project, run_id, lambda run: pipeline_run_kill(run=run, user=request.user), back
    )


@login_required
@require_POST
def pipeline_retry_page(request, project, run_id):
    return _run_action(
        request,
        project,
        run_id,
        lambda run: pipeline_run_retry(run=run, user=request.user),
        lambda project, run, new: reverse("pipeline-detail", args=[project.slug, new.pk]),
    )


def _status_context(project, run, *, log=None, errors=None):
    """What the run-status partial shows: the run row, and only what its status calls for
    (the log for a failed run's traceback, the workers for a queued one, the build for a
    packaging one), so the 1 s poll reads no log and lists no workers while a run runs."""
    failed = run.status == PipelineRun.FAILED
    if failed and log is None:
        log = run_log_tail(run)[0]
    return {
        "project": project,
        "run": run,
        "traceback": failure_traceback(log, run_id=run.pk) if failed else "",
        "timeline": run_timeline(run),
        "can_edit": can(project, RUN),
        "errors": errors or {},
        "waiting_for": waiting_for(run),
        "build": environment_built_elsewhere(run),
        "gone": deleted_inputs(run),  # no Retry: its inputs can't be read again
    }


def _detail(request, project, run, *, errors=None, status=200):
    if request.htmx and request.GET.get("part") == "status":
        return render(request, "pipelines/detail.html#run-status", _status_context(project, run))
    log, log_seq, log_cut = run_log_tail(run)
    context = {
        **_status_context(project, run, log=log, errors=errors),
        **metrics_context(project, run),
        "log": log_html(log, starts_line=not log_cut),
        "log_cut": log_cut,
        "log_seq": log_seq,
    }
    return render(request, "pipelines/detail.html", context, status=status)


@login_required
def pipeline_detail(request, project, run_id):
    project = project_get_for_user(user=request.user, slug=project)
    return _detail(request, project, pipeline_run_get(project=project, run_id=run_id))


@login_required
def pipeline_log_tail(request, project, run_id):
    """New log text after chunk `after`, appended in place by htmx while the run runs."""
    project = project_get_for_user(user=request.user, slug=project)
    run = pipeline_run_get(project=project, run_id=run_id)
    try:
        after = log_after(request.GET)
    except ValidationError as error:
        return HttpResponseBadRequest(
            " ".join(error.messages), content_type="text/plain; charset=utf-8"
        )
    text, seq = run_log_html(run, after=after)
    return render(
        request,
        "pipelines/detail.html#log-tail",
        {"project": project, "run": run, "new_text": text, "log_seq": seq},
    )


@login_required
def pipeline_results(request, project, run_id):
    project = project_get_for_user(user=request.user, slug=project)
    run = pipeline_run_get(project=project, run_id=run_id)
    response = HttpResponse(pipeline_run_results(run), content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="_results_{run.pk}.json"'
    return response


@login_required
def pipeline_log_download(request, project, run_id):
    project = project_get_for_user(user=request.user, slug=project)
    run = pipeline_run_get(project=project, run_id=run_id)
    response = HttpResponse(run_log_text(run)[0], content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="pipeline-{run.pk}.log"'
    return response


def _output(request, project, run_id, which):
    project = project_get_for_user(user=request.user, slug=project)
    run = pipeline_run_get(project=project, run_id=run_id, outputs_only=True)
    manifest, title = run_output(run, which)
    return project, run, manifest, title


@login_required
def pipeline_output_browse(request, project, run_id, which):
    project, run, manifest, title = _output(request, project, run_id, which)
    return render(
        request,
        "pipelines/output.html",
        {
            "project": project,
            "run": run,
            "which": which,
            "title": title,
            **folder_context(request, manifest),
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
    return _run_action(
        request,
        project,
        run_id,
        lambda run: pipeline_run_delete(run=run, user=request.user),
        lambda project, run, _: reverse("pipeline-list", args=[project.slug]),
    )


@require_POST
@login_required
def environment_rebuild_page(request, project, package, version):
    """Rebuild on a version whose environment failed: forget the failure, build it again."""
    project = project_get_for_user(user=request.user, slug=project)
    version = version_get(package=package_get(project=project, name=package), number=version)
    environment_rebuild(version=version, user=request.user)
    return redirect("version-detail", project=project.slug, package=package, version=version.number)

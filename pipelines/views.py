from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db.models import Count
from django.http import Http404, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from core.downloads import file_response, zip_response
from core.host_paths import package_relative
from core.pages import done, folder_context, form_errors
from core.services import RUN, can, project_get_for_user
from datasets.selectors import dataset_list
from environments.records import environment_rebuild
from packages.aliases import alias_list
from packages.selectors import package_get, package_list, version_get
from pipelines.forms import (
    PipelineForm,
    form_values,
    log_after,
    values_from_run,
    values_from_schedule,
)
from pipelines.inputs import clean_run_inputs, deleted_inputs
from pipelines.logs import has_output, log_html, run_log_html, run_log_tail, run_log_text
from pipelines.metrics_pages import metrics_context
from pipelines.models import PipelineRun, Schedule
from pipelines.queue_places import queue_place, waiting_for
from pipelines.schedules import (
    schedule_delete,
    schedule_pause,
    schedule_resume,
    schedule_update,
)
from pipelines.selectors import (
    dataset_folders,
    environment_built_elsewhere,
    pipeline_run_get,
    pipeline_run_results,
    run_output,
    schedule_get,
    schedule_list,
)
from pipelines.services import pipeline_run_delete, pipeline_run_kill, pipeline_run_retry
from pipelines.start import pipeline_start
from pipelines.timeline import run_timeline
from pipelines.tracebacks import failure_traceback, run_workspace
from pipelines.tracking import pipeline_run_update
from pipelines.tracking_pages import notes_context, posted_edit, tags_from_rows
from pipelines.when import TIMEZONES


def _form_context(project, values, errors=None):
    packages = list(package_list(project=project).filter(training_enabled=True))
    package = next((p for p in packages if p.name == values["package"]), None)
    versions = list(package.versions.order_by("major", "minor")) if package else []
    aliases = (
        [a for a in alias_list(package=package) if not a.version.deleted_at] if package else []
    )
    chosen = next((a for a in aliases if a.name == values["alias"]), None)
    if chosen:  # the numbers show the version the alias points at now
        values["major"], values["minor"] = str(chosen.version.major), str(chosen.version.minor)
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
        "aliases": aliases,
        "alias_chosen": chosen,
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
        "log_has_output": failed and has_output(log),
        "failure_reason": package_relative(run.failure_reason, workspace=run_workspace(run.pk)),
        "timeline": run_timeline(run),
        "can_edit": can(project, RUN),
        "errors": errors or {},
        "waiting_for": waiting_for(run),
        "queue_place": queue_place(run),
        "build": environment_built_elsewhere(run),
        "gone": deleted_inputs(run),  # no Retry: its inputs can't be read again
    }


def _detail(request, project, run, *, errors=None, status=200, edit=None):
    if request.htmx and request.GET.get("part") == "status":
        return render(request, "pipelines/detail.html#run-status", _status_context(project, run))
    log, log_seq, log_cut = run_log_tail(run)
    edit = edit or {}
    context = {
        **_status_context(project, run, log=log, errors=None if edit else errors),
        **notes_context(run, values=edit.get("values"), errors=edit.get("errors")),
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
@require_POST
def pipeline_edit_page(request, project, run_id):
    """The run page's form: its name, notes and tags."""
    project = project_get_for_user(user=request.user, slug=project)
    run = pipeline_run_get(project=project, run_id=run_id)
    values = posted_edit(request.POST)
    try:
        tags = tags_from_rows(values["tags"])
        pipeline_run_update(
            run=run,
            user=request.user,
            name=values["name"],
            description=values["description"],
            tags=tags,
        )
    except ValidationError as error:
        run.refresh_from_db()
        edit = {"values": values, "errors": error.message_dict}
        return _detail(request, project, run, status=400, edit=edit)
    return done(request, reverse("pipeline-detail", args=[project.slug, run.pk]))


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

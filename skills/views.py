"""The ML Skills pages: the list, the create form, a skill's page (status, endpoint, Try it,
version and replicas, recent calls) and its delete confirmation. Every change goes through
skills.services, as the API's do, which check the user's role."""

import json
import time
from http import HTTPStatus

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_POST

from core.pages import done
from core.services import RUN, can, project_get_for_user
from packages.aliases import alias_list
from packages.selectors import package_list, version_list
from skills.forms import FOLLOW, SkillChangeForm, SkillForm
from skills.inputs import read_input
from skills.models import Skill
from skills.selectors import (
    predict_path,
    recent_calls,
    skill_get,
    skill_hosts_up,
    skill_list,
    skill_out_rows,
    skill_page_url,
)
from skills.services import (
    skill_create,
    skill_delete,
    skill_deploy,
    skill_predict,
    skill_rotate_key,
    skill_undeploy,
    skill_update,
)

MOVING = (Skill.DEPLOYING, Skill.UPDATING)  # the pages poll a skill's status while it is so
EXAMPLE_INPUT = '{"input": "hello"}'  # the curl line's body until Try it has been used


def _show_key_once(request, skill) -> None:
    """After create or rotate-key: the page the browser goes to next shows the new key, once
    (the session holds it until then; the database keeps only its hash)."""
    request.session[f"skill-key:{skill.pk}"] = skill.api_key


def _key_to_show(request, skill) -> str | None:
    return request.session.pop(f"skill-key:{skill.pk}", None)


def _skill(project, name):
    skill = skill_get(project=project, name=name)
    skill.project = project  # with the user's role: the services' check reuses it
    return skill


@login_required
def skill_list_page(request, project):
    project = project_get_for_user(user=request.user, slug=project)
    rows = skill_out_rows(skill_list(project=project), request)
    context = {
        "project": project,
        "rows": rows,
        "can_edit": can(project, RUN),
        "polling": any(row["status"] in MOVING for row in rows),
    }
    template = "skills/list.html#skills" if request.htmx else "skills/list.html"
    return render(request, template, context)


def _create_form(request, packages):
    """Bound to a POST; on a GET unbound, with the values of the link or, when htmx reloads it
    after a package was chosen, of the form so far (and that package's newest version)."""
    values = request.POST if request.method == "POST" else request.GET
    chosen = values.get("package") or (packages[0].name if packages else "")
    package = next((p for p in packages if p.name == chosen), None)
    versions = list(version_list(package=package)) if package else []
    aliases = alias_list(package=package) if package else []
    if request.method == "POST":
        return SkillForm(request.POST, packages=packages, versions=versions, aliases=aliases)
    initial = {**request.GET.dict(), "package": chosen}
    numbers = [v.number for v in versions] + [FOLLOW + a.name for a in aliases]
    switched = request.GET.get("versions_of", chosen) != chosen  # the version was another's
    if switched or initial.get("version") not in numbers:
        initial["version"] = numbers[0] if numbers else ""
    return SkillForm(initial=initial, packages=packages, versions=versions, aliases=aliases)


@login_required
def skill_new(request, project):
    """Create: deploy a package version as a skill. A GET with ?package= re-renders the form in
    place (htmx, when the package changes: its versions)."""
    project = project_get_for_user(user=request.user, slug=project, need=RUN)
    packages = list(package_list(project=project))
    form = _create_form(request, packages)
    if form.is_bound and form.is_valid():
        try:
            skill = skill_create(user=request.user, project=project, **form.cleaned_data)
        except ValidationError as error:  # the name taken, say: shown at its field
            form.add_error(None, error)
        else:
            _show_key_once(request, skill)
            return done(request, skill_page_url(skill))
    failed = bool(form.errors)
    template = "skills/new.html#skill-form" if request.htmx else "skills/new.html"
    context = {"project": project, "form": form, "packages": packages}
    return render(request, template, context, status=400 if failed else 200)


def _status_context(request, project, skill):
    """What the status part shows (and the 2 s poll renders while the skill moves)."""
    (row,) = skill_out_rows([skill], request)
    moving = skill.status in MOVING
    return {
        "project": project,
        "skill": skill,
        "row": row,
        "polling": moving,
        "hosts_up": skill_hosts_up(gpu=skill.gpu) if moving else None,
        "can_edit": can(project, RUN),
    }


def _curl(skill, url, tried=None, key=None):
    """The curl line of the skill page: the body is what Try it last sent, or an example; the
    key the one just made, or $SKILL_KEY (the key itself is shown once)."""
    kind = skill.package.input_type
    if kind == "file":
        data = '-H "Content-Type: application/octet-stream" --data-binary @input.bin'
    elif kind == "files":
        data = "-F file=@first.bin -F file=@second.bin"
    else:
        text = EXAMPLE_INPUT if tried is None else tried
        quoted = "'" + text.replace("'", "'\"'\"'") + "'"
        data = f'-H "Content-Type: application/json" -d {quoted}'
    return f'curl -X POST {url} -H "X-API-Key: {key or "$SKILL_KEY"}" {data}'


def _detail(request, project, skill, *, change_form=None, tried=None, status=200):
    context = _status_context(request, project, skill)
    if request.htmx and request.GET.get("part") == "status":
        return render(request, "skills/detail.html#skill-status", context)
    versions = list(version_list(package=skill.package))
    if change_form is None:
        initial = {
            "version": FOLLOW + skill.alias if skill.alias else skill.version.number,
            "replicas": skill.replicas,
            "auto_update": skill.auto_update,
        }
        aliases = alias_list(package=skill.package)
        change_form = SkillChangeForm(initial=initial, versions=versions, aliases=aliases)
    new_key = _key_to_show(request, skill) if context["can_edit"] else None
    context |= {
        "change_form": change_form,
        "calls": recent_calls(skill),
        "curl": _curl(skill, context["row"]["url"], (tried or {}).get("input"), new_key),
        "tried": tried,
        "new_key": new_key,
    }
    response = render(request, "skills/detail.html", context, status=status)
    if new_key:
        response["Cache-Control"] = "no-store"  # never kept by the browser or a proxy
    return response


@login_required
def skill_detail(request, project, name):
    project = project_get_for_user(user=request.user, slug=project)
    return _detail(request, project, _skill(project, name))


def _try_input(request, skill) -> tuple[bytes, str | None]:
    """The call's input as the API would take it: the text (input type json), the file's bytes
    (file), the files as the API's read_input packs them (files); and the text, to show."""
    kind = skill.package.input_type
    if kind == "json":
        text = request.POST.get("input", "")
        return text.encode(), text
    if kind == "files":
        return read_input(request, skill), None
    chosen = request.FILES.get("file")
    return (chosen.read() if chosen else b""), None


def _shown(status, header, answer) -> str:
    if status != 200:
        return header.get("detail", "")
    if header.get("type") == "json":
        try:
            return json.dumps(json.loads(answer), indent=2, ensure_ascii=False)
        except ValueError:
            pass
    try:  # text, or bytes that are text
        return answer.decode("utf-8")
    except UnicodeDecodeError:
        return f"{len(answer):,} bytes of binary output"


ANSWER_KINDS = {"text": "a str", "json": "JSON", "bytes": "bytes"}


def _try(request, skill) -> dict:
    """One call with the Try it box's input: its status, output and time (of skill_predict)."""
    most = settings.SKILL_MOST_INPUT_BYTES
    if int(request.META.get("CONTENT_LENGTH") or 0) > most:
        output = f"The input is larger than {most // 2**20} MB."
        return {"status": 413, "phrase": "Content Too Large", "output": output, "ms": 0.0}
    body, text = _try_input(request, skill)
    began = time.perf_counter()
    status, header, answer = skill_predict(skill=skill, body=body)
    return {
        "ms": (time.perf_counter() - began) * 1000,
        "status": status,
        "phrase": HTTPStatus(status).phrase,
        "output": _shown(status, header, answer),
        "kind": ANSWER_KINDS.get(header.get("type")) if status == 200 else None,
        "input": text,
    }


@login_required
@require_POST
def skill_try(request, project, name):
    """Try it: one call through skill_predict, as the API makes it (viewers may call too); the
    output, the status and the time, swapped into the page (and the curl line, with this input)."""
    project = project_get_for_user(user=request.user, slug=project)
    skill = _skill(project, name)
    tried = _try(request, skill)
    if not request.htmx:
        return _detail(request, project, skill, tried=tried)
    url = request.build_absolute_uri(predict_path(skill))
    curl = _curl(skill, url, tried.get("input"))
    context = {"project": project, "skill": skill, "tried": tried, "curl": curl}
    return render(request, "skills/try_result.html", context)


@login_required
@require_POST
def skill_change(request, project, name):
    """Update or roll back, scale, auto-update: one form, one skill_update."""
    project = project_get_for_user(user=request.user, slug=project)
    skill = _skill(project, name)
    form = SkillChangeForm(
        request.POST,
        versions=list(version_list(package=skill.package)),
        aliases=alias_list(package=skill.package),
    )
    if form.is_valid():
        try:
            skill_update(user=request.user, skill=skill, **form.cleaned_data)
        except ValidationError as error:
            form.add_error(None, error)
        else:
            return done(request, skill_page_url(skill))
    return _detail(request, project, skill, change_form=form, status=400)


ACTIONS = {"deploy": skill_deploy, "undeploy": skill_undeploy, "rotate-key": skill_rotate_key}


@login_required
@require_POST
def skill_action(request, project, name, action):
    project = project_get_for_user(user=request.user, slug=project)
    if action not in ACTIONS:
        raise Http404(f"A skill can't be '{action}'.")
    skill = ACTIONS[action](user=request.user, skill=_skill(project, name))
    if skill.api_key:  # rotated
        _show_key_once(request, skill)
    return done(request, skill_page_url(skill))


@login_required
def skill_delete_page(request, project, name):
    """GET: what deleting means, and the button; POST: delete it."""
    project = project_get_for_user(user=request.user, slug=project, need=RUN)
    skill = _skill(project, name)
    if request.method == "POST":
        skill_delete(user=request.user, skill=skill)
        return done(request, reverse("skill-list", args=[project.slug]))
    return render(request, "skills/delete.html", {"project": project, "skill": skill})

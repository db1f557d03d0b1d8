"""ML Skills in the JSON API: deploy, change, undeploy, rotate the key, delete; and predict,
for project members (bearer token or session) and for robots and apps (the skill's key in
X-API-Key)."""

from datetime import datetime

from django.http import Http404, HttpResponse, JsonResponse
from ninja import Field, Router, Schema, Status
from ninja.errors import AuthenticationError
from ninja.security import APIKeyHeader
from pydantic import ConfigDict

from core.auth import BearerToken, browser_session
from core.errors import ErrorOut
from core.services import project_get_for_user
from packages.aliases import ALIAS_PATTERN
from skills.inputs import read_input
from skills.selectors import skill_for_call, skill_get, skill_list, skill_out_rows
from skills.services import (
    NAME_PATTERN,
    skill_create,
    skill_delete,
    skill_deploy,
    skill_predict,
    skill_rotate_key,
    skill_undeploy,
    skill_update,
)

router = Router(tags=["skills"])


class SkillKey(APIKeyHeader):
    """The skill's own key, for robots and apps: it opens predict on that skill only."""

    param_name = "X-API-Key"

    def authenticate(self, request, key):
        if not key:  # a member's call: the next authentication
            return None
        path = request.resolver_match.kwargs
        skill = skill_for_call(project=path.get("project", ""), name=path.get("name", ""))
        if skill and skill.opens_with(key):
            request.skill = skill
            return skill
        # the same words whether the skill exists or not: a key guesser learns nothing
        raise AuthenticationError(
            401,
            f"This X-API-Key does not open skill '{path.get('name', '')}': copy the skill's "
            "current key (rotating it stops the old one).",
        )


# A version's number or an alias's name
REFERENCE_PATTERN = r"^(\d{1,9}\.\d{1,9}|[A-Za-z][A-Za-z0-9_-]{0,39})$"


class SkillIn(Schema):
    model_config = ConfigDict(strict=True, extra="forbid")

    name: str = Field(
        json_schema_extra={"maxLength": 100, "pattern": NAME_PATTERN},
        description="Letters, digits, '-' and '_', starting with a letter or digit: part of "
        "the skill's URL.",
    )
    package: str
    version: str | None = Field(
        None,
        json_schema_extra={"pattern": REFERENCE_PATTERN},
        description="A number (1.2), or an alias's name (champion) for the version it points "
        "at now. Leave it out when following an alias.",
    )
    replicas: int = 1
    auto_update: bool = False
    alias: str = Field(
        "",
        json_schema_extra={"pattern": f"^$|{ALIAS_PATTERN}"},
        description="The package's alias to follow: the skill serves its version, and updates "
        "when it moves. Not with auto_update.",
    )
    gpu: bool = False


class SkillChange(Schema):
    model_config = ConfigDict(strict=True, extra="forbid")

    version: str | None = Field(None, json_schema_extra={"pattern": REFERENCE_PATTERN})
    replicas: int | None = None
    auto_update: bool | None = None
    alias: str | None = Field(
        None,
        json_schema_extra={"pattern": f"^$|{ALIAS_PATTERN}"},
        description='The alias to follow, or "" to follow none. A version given without '
        "it stops the following.",
    )


class LastHour(Schema):
    calls: int
    errors: int
    p50_ms: float | None


class SkillOut(Schema):
    name: str
    package: str
    version: str
    serving_version: str | None
    status: str
    reason: str
    replicas: int
    replicas_up: int
    auto_update: bool
    alias: str | None = Field(description="The package's alias it follows, if any.")
    gpu: bool
    api_key: str | None = Field(
        None, description="The key itself: only in the answers of create and rotate-key."
    )
    api_key_prefix: str = Field(description="The key's first characters, to tell it apart.")
    url: str
    created_by: str | None
    created_at: datetime
    last_hour: LastHour


def _project(request, project):
    return project_get_for_user(user=request.user, slug=project)


@router.get("/{project}/skills", response=list[SkillOut])
def list_skills(request, project: str):
    return skill_out_rows(skill_list(project=_project(request, project)), request)


@router.post("/{project}/skills", response={201: SkillOut, 409: ErrorOut})
def create_skill(request, project: str, payload: SkillIn):
    """Deploy a package version as an ML Skill: skill hosts start its replicas (status
    deploying, then available). Its API key is in this answer only: copy it now."""
    skill = skill_create(user=request.user, project=_project(request, project), **payload.dict())
    return Status(201, skill_out_rows([skill], request)[0])


@router.get("/{project}/skills/{name}", response=SkillOut)
def get_skill(request, project: str, name: str):
    return skill_out_rows([skill_get(project=_project(request, project), name=name)], request)[0]


@router.patch("/{project}/skills/{name}", response=SkillOut)
def change_skill(request, project: str, name: str, payload: SkillChange):
    """Update or roll back (`version`), scale (`replicas`), `auto_update`. A new version loads
    beside the serving one, which answers until the new one is ready: no failed call."""
    skill = skill_get(project=_project(request, project), name=name)
    skill = skill_update(user=request.user, skill=skill, **payload.dict())
    return skill_out_rows([skill], request)[0]


@router.delete("/{project}/skills/{name}", response={204: None})
def delete_skill(request, project: str, name: str):
    skill_delete(user=request.user, skill=skill_get(project=_project(request, project), name=name))
    return Status(204, None)


def _lifecycle(action, summary):
    def operation(request, project: str, name: str):
        skill = skill_get(project=_project(request, project), name=name)
        return skill_out_rows([action(user=request.user, skill=skill)], request)[0]

    operation.__doc__ = summary
    return operation


for _path, _action, _summary in (
    ("deploy", skill_deploy, "Deploy an undeployed or failed skill again."),
    ("undeploy", skill_undeploy, "Stop its replicas: calls answer 503 until it is deployed."),
    (
        "rotate-key",
        skill_rotate_key,
        "A new API key, in this answer only; the old one stops working at once.",
    ),
):
    router.post(
        f"/{{project}}/skills/{{name}}/{_path}",
        response=SkillOut,
        operation_id=f"skill_{_path.replace('-', '_')}",
    )(_lifecycle(_action, _summary))


@router.post(
    "/{project}/skills/{name}/predict",
    auth=[SkillKey(), BearerToken(), browser_session],
    response={200: None, 413: ErrorOut, 422: ErrorOut, 502: ErrorOut, 503: ErrorOut, 504: ErrorOut},
    openapi_extra={
        "requestBody": {
            "content": {"application/json": {}, "application/octet-stream": {}},
            "description": "The input: JSON text for input type json, the file's bytes for file "
            "(several files as multipart/form-data for files).",
        }
    },
)
def predict(request, project: str, name: str):
    """Call the skill: the body is predict()'s input; the answer is what predict returned (a
    str as text, a dict or list as JSON). 422 when predict raised, 503 when no replica is up,
    504 past the call time limit."""
    skill = getattr(request, "skill", None)
    if skill is None:  # a member, by token or session: viewers may call
        skill = skill_for_call(project=project, name=name, user=request.user)
        if skill is None:  # outsiders can't even learn that the project exists
            raise Http404(f"No skill '{name}' in project '{project}' that you can see.")
    body = read_input(request, skill)
    if isinstance(body, HttpResponse):
        return body
    status, header, answer = skill_predict(skill=skill, body=body)
    if status != 200:
        return JsonResponse(
            {"detail": header.get("detail", "")},
            status=status,
            headers=({"Retry-After": "5"} if status == 503 else None),
        )
    kind = header.get("type")
    content_type = {
        "text": "text/plain; charset=utf-8",
        "json": "application/json",
    }.get(kind, "application/octet-stream")
    return HttpResponse(answer, content_type=content_type)

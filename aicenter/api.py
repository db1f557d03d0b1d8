"""The JSON API, v1 (docs/api.md). Every endpoint calls the same services as the pages."""

from datetime import datetime
from typing import Literal

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import DataError, OperationalError
from django.http import Http404
from ninja import Field, NinjaAPI, Router, Schema, Status
from ninja.errors import AuthenticationError
from ninja.errors import ValidationError as SchemaError
from pydantic import ConfigDict

from accounts.api import router as accounts_router
from core.auth import NO_CREDENTIALS, BearerToken, browser_session
from core.database import is_locked
from core.disk_space import DiskFull
from core.errors import PATTERN_HINTS, ErrorOut, is_conflict
from core.members import membership_remove, membership_set, user_get
from core.services import (
    PROJECT_NAME_PATTERN,
    project_create,
    project_get_for_user,
    project_list_for_user,
    project_settings_update,
)
from datasets.api import router as datasets_router
from governance.api import router as logs_router
from packages.api import router as packages_router
from pipelines import tracking_api  # noqa: F401  (adds PATCH to the pipelines router)
from pipelines.api import router as pipelines_router
from pipelines.metrics_api import router as metrics_router
from skills.api import router as skills_router
from webhooks.api import router as webhooks_router

api = NinjaAPI(
    title="AI Center API",
    version="1",
    urls_namespace="api",
    auth=[BearerToken(), browser_session],
    docs_url="/docs",
    openapi_url="/openapi.json",
)


def _messages(error: ValidationError):
    if hasattr(error, "error_dict"):
        return {field: list(messages) for field, messages in error.message_dict.items()}
    return {}


@api.exception_handler(ValidationError)
def invalid_input(request, error):
    """400, or 409 when the only problems are names that already exist or a state that
    refuses the change."""
    errors = _messages(error)
    if errors:
        detail = " ".join(f"{field}: {' '.join(msgs)}" for field, msgs in errors.items())
    else:
        detail = " ".join(error.messages)
    status = 409 if is_conflict(error) else 400
    return api.create_response(request, {"detail": detail, "errors": errors}, status=status)


@api.exception_handler(DiskFull)
def disk_full(request, error):
    """507 Insufficient Storage: the data disk is below its reserve; nothing was stored."""
    errors = _messages(error)
    detail = " ".join(message for messages in errors.values() for message in messages)
    return api.create_response(request, {"detail": detail, "errors": errors}, status=507)


@api.exception_handler(SchemaError)
def invalid_schema(request, error):
    errors = {}
    for item in error.errors:
        loc = [
            str(part)
            for part in item.get("loc", [])
            if part not in ("body", "payload", "form", "query", "path", "file")
        ]
        message = item.get("msg", "invalid")
        if item.get("type") == "string_pattern_mismatch":
            message = PATTERN_HINTS.get(item["ctx"]["pattern"], message)
        elif item.get("type") == "extra_forbidden":  # a mistyped name must not pass unseen
            message = "Unknown field: this request takes no such field (see /api/v1/docs)."
        errors.setdefault(".".join(loc) or "body", []).append(message)
    detail = " ".join(f"{field}: {' '.join(msgs)}" for field, msgs in errors.items())
    return api.create_response(request, {"detail": detail, "errors": errors}, status=422)


@api.exception_handler(PermissionDenied)
def forbidden(request, error):
    return api.create_response(
        request, {"detail": str(error) or "You may not do this."}, status=403
    )


@api.exception_handler(Http404)
def not_found(request, error):
    return api.create_response(request, {"detail": str(error) or "Not found."}, status=404)


@api.exception_handler(DataError)
def unstorable_text(request, error):
    """PostgreSQL refuses text with a NUL character even in a lookup: the input was invalid."""
    if "NUL" not in str(error):
        raise error
    return api.create_response(
        request, {"detail": "Text in this request contains a NUL character."}, status=400
    )


@api.exception_handler(OperationalError)
def database_busy(request, error):
    """SQLite's one write lock held past the busy timeout: try again, nothing was stored."""
    if not is_locked(error):
        raise error
    response = api.create_response(
        request, {"detail": "The database is busy; try again in a few seconds."}, status=503
    )
    response["Retry-After"] = "5"
    return response


@api.exception_handler(AuthenticationError)
def unauthenticated(request, error):
    """401: no credentials at all (ninja's bare AuthenticationError), or ones that were sent
    and say in their message what is wrong with them."""
    detail = error.message if error.message != "Unauthorized" else NO_CREDENTIALS
    return api.create_response(request, {"detail": detail}, status=401)


class ProjectIn(Schema):
    model_config = ConfigDict(strict=True, extra="forbid")

    name: str = Field(
        json_schema_extra={"maxLength": 100, "pattern": PROJECT_NAME_PATTERN},
        description="At least one letter (A-Z) or digit; the project's address is made of them.",
    )
    description: str = ""


class ProjectOut(Schema):
    slug: str
    name: str
    description: str
    allow_network: bool
    keep_skill_inputs: bool
    created_at: datetime


class ProjectSettingsIn(Schema):
    model_config = ConfigDict(strict=True, extra="forbid")

    allow_network: bool
    keep_skill_inputs: bool | None = Field(
        None, description="Keep the inputs of ML Skill calls among their recent calls."
    )


projects = Router(tags=["projects"])


@projects.get("", response=list[ProjectOut])
def list_projects(request):
    return list(project_list_for_user(request.user))


@projects.post("", response={201: ProjectOut, 409: ErrorOut})
def create_project(request, payload: ProjectIn):
    project = project_create(user=request.user, name=payload.name, description=payload.description)
    return Status(201, project)


@projects.get("/{project}", response=ProjectOut)
def get_project(request, project: str):
    return project_get_for_user(user=request.user, slug=project)


@projects.patch("/{project}", response=ProjectOut)
def update_project(request, project: str, payload: ProjectSettingsIn):
    """Project admins: `allow_network` lets the project's runs open outbound connections;
    `keep_skill_inputs` keeps the inputs of its ML Skills' calls among their recent calls."""
    project = project_get_for_user(user=request.user, slug=project)
    return project_settings_update(
        user=request.user,
        project=project,
        allow_network=payload.allow_network,
        keep_skill_inputs=payload.keep_skill_inputs,
    )


class MemberOut(Schema):
    username: str
    role: Literal["admin", "data_scientist", "viewer"]


class MemberIn(Schema):
    model_config = ConfigDict(strict=True, extra="forbid")

    role: Literal["admin", "data_scientist", "viewer"]


def member_out(membership) -> dict:
    return {"username": membership.user.username, "role": membership.role}


@projects.get("/{project}/members", response=list[MemberOut], tags=["members"])
def list_members(request, project: str):
    project = project_get_for_user(user=request.user, slug=project)
    memberships = project.memberships.select_related("user").order_by("user__username")
    return [member_out(m) for m in memberships]


@projects.put(
    "/{project}/members/{username}", response={200: MemberOut, 409: ErrorOut}, tags=["members"]
)
def set_member(request, project: str, username: str, payload: MemberIn):
    """Project admins: add a user to the project with a role, or change their role."""
    project = project_get_for_user(user=request.user, slug=project)
    member = user_get(username=username)
    return member_out(
        membership_set(
            user=request.user, project=project, username=member.username, role=payload.role
        )
    )


@projects.delete(
    "/{project}/members/{username}", response={204: None, 409: ErrorOut}, tags=["members"]
)
def remove_member(request, project: str, username: str):
    """Project admins: take a user out of the project (nothing happens if they are not in it)."""
    project = project_get_for_user(user=request.user, slug=project)
    membership_remove(user=request.user, project=project, username=username)
    return Status(204, None)


def _checks_its_input(operation) -> bool:
    """Anything besides plain text in the path is checked against the schema (422)."""
    for model in operation.models:
        if model.__ninja_param_source__ != "path":
            return True
        if any(field.annotation is not str for field in model.model_fields.values()):
            return True
    return False


def document_errors(router: Router) -> None:
    """Add to each operation of `router` the error statuses it can answer, with ErrorOut:
    401 (no valid token) always; 404 under a project (no project, or not yours, or no such
    thing in it); 422 when its input is checked against the schema; for writes 400 (invalid
    input, with each field's messages), 403 (your role doesn't allow it) and 503 (the
    database is busy). 409 (a name that already exists, or a state that refuses the change)
    and a 400 that a read can answer are declared by the operations themselves."""
    for path, path_view in router.path_operations.items():
        for operation in path_view.operations:
            statuses = {401}
            if "{project}" in path:
                statuses.add(404)
            if _checks_its_input(operation):
                statuses.add(422)
            if set(operation.methods) - {"GET"}:
                statuses |= {400, 403, 503}
            for status in sorted(statuses):
                if status not in operation.response_models:
                    operation.response_models[status] = operation._create_response_model(ErrorOut)


# metrics first: /pipelines/compare before /pipelines/{run_id}
routers = (
    projects,
    datasets_router,
    packages_router,
    metrics_router,
    pipelines_router,
    skills_router,
    logs_router,
    webhooks_router,
)
for router in routers:
    document_errors(router)
    api.add_router("/projects", router)
document_errors(accounts_router)
api.add_router("/", accounts_router)  # /tokens, /users: not under a project

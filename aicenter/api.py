"""The JSON API, v1 (SPEC's table). Every endpoint calls the same services as the pages."""

from datetime import datetime

from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from ninja import NinjaAPI, Router, Schema, Status
from ninja.errors import AuthenticationError
from ninja.errors import ValidationError as SchemaError
from ninja.security import HttpBearer, django_auth

from aicenter.services import (
    ADMIN,
    api_token_user,
    project_create,
    project_get_for_user,
    project_list_for_user,
    project_settings_update,
)


class BearerToken(HttpBearer):
    def authenticate(self, request, token):
        user = api_token_user(token)
        if user is not None:
            request.user = user
        return user


api = NinjaAPI(
    title="AI Center API",
    version="1",
    urls_namespace="api",
    auth=[BearerToken(), django_auth],
    docs_url="/docs",
    openapi_url="/openapi.json",
)


def _messages(error: ValidationError):
    if hasattr(error, "error_dict"):
        return {field: list(messages) for field, messages in error.message_dict.items()}
    return {}


@api.exception_handler(ValidationError)
def invalid_input(request, error):
    errors = _messages(error)
    if errors:
        detail = " ".join(f"{field}: {' '.join(msgs)}" for field, msgs in errors.items())
    else:
        detail = " ".join(error.messages)
    return api.create_response(request, {"detail": detail, "errors": errors}, status=400)


@api.exception_handler(SchemaError)
def invalid_schema(request, error):
    errors = {}
    for item in error.errors:
        loc = [
            str(part)
            for part in item.get("loc", [])
            if part not in ("body", "payload", "form", "query", "path", "file")
        ]
        errors.setdefault(".".join(loc) or "body", []).append(item.get("msg", "invalid"))
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


@api.exception_handler(AuthenticationError)
def unauthenticated(request, error):
    return api.create_response(
        request,
        {
            "detail": "Authentication required: send 'Authorization: Bearer <token>' "
            "(make one with manage.py create_api_token USERNAME)."
        },
        status=401,
    )


class ProjectIn(Schema):
    name: str
    description: str = ""


class ProjectOut(Schema):
    slug: str
    name: str
    description: str
    allow_network: bool
    created_at: datetime


class ProjectSettingsIn(Schema):
    allow_network: bool


projects = Router(tags=["projects"])


@projects.get("", response=list[ProjectOut])
def list_projects(request):
    return list(project_list_for_user(request.user))


@projects.post("", response={201: ProjectOut})
def create_project(request, payload: ProjectIn):
    project = project_create(user=request.user, name=payload.name, description=payload.description)
    return Status(201, project)


@projects.get("/{project}", response=ProjectOut)
def get_project(request, project: str):
    return project_get_for_user(user=request.user, slug=project)


@projects.patch("/{project}", response=ProjectOut)
def update_project(request, project: str, payload: ProjectSettingsIn):
    """Project admins: `allow_network` lets the project's runs open outbound connections."""
    project = project_get_for_user(user=request.user, slug=project, need=ADMIN)
    return project_settings_update(project=project, allow_network=payload.allow_network)


def _register_routers():
    from datasets.api import router as datasets
    from packages.api import router as packages
    from pipelines.api import router as pipelines

    api.add_router("/projects", projects)
    api.add_router("/projects", datasets)
    api.add_router("/projects", packages)
    api.add_router("/projects", pipelines)


_register_routers()

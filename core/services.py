"""Projects and roles: who may see and do what in a project."""

import re

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import OuterRef, Subquery
from django.http import Http404
from django.utils.text import slugify

from core.errors import name_taken
from core.models import Membership, Project

VIEW, RUN, ADMIN = "view", "run", "admin"
PROJECT_NAME_PATTERN = r"[A-Za-z0-9]"  # its slug, the project's address, is made of these
_RANK = {Membership.VIEWER: 0, Membership.DATA_SCIENTIST: 1, Membership.ADMIN: 2}
_NEEDED = {VIEW: 0, RUN: 1, ADMIN: 2}
_NEED_TEXT = {
    RUN: "the Data scientist or Project admin role",
    ADMIN: "the Project admin role",
}


def project_role(*, user, project) -> str | None:
    if user.is_superuser:
        return Membership.ADMIN
    membership = Membership.objects.filter(user=user, project=project).first()
    return membership.role if membership else None


def project_list_for_user(user):
    projects = Project.objects.all()
    if not user.is_superuser:
        projects = projects.filter(memberships__user=user)
    return projects.order_by("name")


def project_get_for_user(*, user, slug: str, need: str = VIEW) -> Project:
    """The project, if the user belongs to it with at least the role the action needs.

    Outsiders get a 404, so they can't even learn that the project exists."""
    projects = Project.objects.filter(slug=slug)
    if not user.is_superuser:  # the role with the project, in the same query
        member = Membership.objects.filter(project=OuterRef("pk"), user=user.pk)
        projects = projects.annotate(member_role=Subquery(member.values("role")[:1]))
    project = projects.first()
    role = project and (Membership.ADMIN if user.is_superuser else project.member_role)
    if role is None:
        raise Http404(f"No project '{slug}'.")
    project.role, project.role_user_id = role, user.pk
    project.role_label = dict(Membership.ROLES)[role]
    require(user=user, project=project, need=need)
    return project


def require(*, user, project, need: str) -> None:
    """Raise PermissionDenied unless `user` has at least the role `need` in `project`. Every
    service that changes a project's contents calls this itself, so pages and API can't forget.
    Reuses the role project_get_for_user found for the same user (no second query)."""
    if getattr(project, "role_user_id", None) == user.pk:
        role = project.role
    else:
        role = project_role(user=user, project=project)
    if role is None:
        raise PermissionDenied(f"You are not a member of project '{project.name}'.")
    if _RANK[role] < _NEEDED[need]:
        raise PermissionDenied(
            f"You need {_NEED_TEXT[need]} in project '{project.name}' to do this; "
            f"you are a {dict(Membership.ROLES)[role]}. Ask one of its Project admins to "
            "change your role."
        )


def can(project, need: str) -> bool:
    """For templates and views that already hold a project from project_get_for_user."""
    return _RANK[project.role] >= _NEEDED[need]


def can_create_projects(user) -> bool:
    return user.is_staff or settings.PROJECT_CREATORS == "everyone"


def project_create(*, user, name: str, description: str = "") -> Project:
    """A new project, its creator its Project admin. Only staff create projects unless
    AICENTER_PROJECT_CREATORS=everyone."""
    if not can_create_projects(user):
        raise PermissionDenied(
            "Only staff users create projects here: ask an administrator, or a Project admin "
            "to add you to their project."
        )
    name = name or ""
    if len(name) > 100:
        raise ValidationError({"name": "The name is too long: 100 characters at most."})
    name = name.strip()
    if not name:
        raise ValidationError({"name": "A name is required."})
    slug = slugify(name)
    if not slug or not re.search(PROJECT_NAME_PATTERN, name):
        raise ValidationError({"name": "The name needs at least one letter (A-Z) or digit."})
    if Project.objects.filter(slug=slug).exists():
        raise ValidationError({"name": name_taken(f"A project named '{slug}' already exists.")})
    try:
        with transaction.atomic():
            project = Project.objects.create(slug=slug, name=name, description=description)
            Membership.objects.create(project=project, user=user, role=Membership.ADMIN)
    except IntegrityError:  # created by someone else a moment ago
        raise ValidationError(
            {"name": name_taken(f"A project named '{slug}' already exists.")}
        ) from None
    return project


def project_settings_update(
    *, user, project, allow_network: bool | None = None, keep_skill_inputs: bool | None = None
) -> Project:
    """Change a project's settings; `user` must be its Project admin. A setting left None
    stays as it is.
    `allow_network`: its runs may open outbound connections (they have none by default).
    `keep_skill_inputs`: its ML Skills' recent calls keep their inputs (not by default)."""
    require(user=user, project=project, need=ADMIN)
    changes = {"allow_network": allow_network, "keep_skill_inputs": keep_skill_inputs}
    changes = {name: value for name, value in changes.items() if value is not None}
    for name, value in changes.items():
        if not isinstance(value, bool):
            raise ValidationError({name: f"{name} must be true or false."})
    for name, value in changes.items():
        setattr(project, name, value)
    if changes:
        project.save(update_fields=list(changes))
    return project

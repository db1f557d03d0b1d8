"""Projects, memberships and API tokens: who may see and do what."""

import hashlib
import re
import secrets
from datetime import UTC, date, datetime, time, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import OuterRef, Subquery
from django.http import Http404
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.text import slugify

from core.events import record
from core.models import ApiToken, Membership, Project

VIEW, RUN, ADMIN = "view", "run", "admin"
DUPLICATE, CONFLICT = "duplicate", "conflict"
PROJECT_NAME_PATTERN = r"[A-Za-z0-9]"  # its slug, the project's address, is made of these
_RANK = {Membership.VIEWER: 0, Membership.DATA_SCIENTIST: 1, Membership.ADMIN: 2}
_NEEDED = {VIEW: 0, RUN: 1, ADMIN: 2}
_NEED_TEXT = {
    RUN: "the Data scientist or Project admin role",
    ADMIN: "the Project admin role",
}


def name_taken(message: str) -> ValidationError:
    """The error for a name that already exists: a form error on the pages, 409 in the API
    (which tells it from other invalid input by its code)."""
    return ValidationError(message, code=DUPLICATE)


def conflict(message: str) -> ValidationError:
    """The error for a change the thing's present state refuses (runs use it, it is still
    running, it has already finished): said like any error on the pages, 409 in the API, as
    the request itself was valid."""
    return ValidationError(message, code=CONFLICT)


def is_conflict(error: ValidationError) -> bool:
    """Every problem in `error` is a name that already exists or a state that refuses it."""
    if hasattr(error, "error_dict"):
        problems = [e for errors in error.error_dict.values() for e in errors]
    else:
        problems = error.error_list
    return bool(problems) and all(e.code in (DUPLICATE, CONFLICT) for e in problems)


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


def user_get(*, username: str):
    """An active or inactive user by username, for the members API's path."""
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise Http404(f"There is no user '{username}'.")
    return user


def _member_event(*, project, actor, action: str, username: str, role: str, message: str, **data):
    record(
        project=project,
        category="member",
        action=action,
        actor=actor,
        object_type="member",
        object_key=username,
        object_name=username,
        url=reverse("project-members", args=[project.slug]),
        message=message,
        data={"username": username, "role": role, **data},
    )


def _keep_an_admin(*, project, member, new_role: str | None) -> None:
    """Refuse to leave a project without a Project admin: nobody could then manage its members
    (superusers aside). Called inside the change's transaction with the admins' rows locked,
    so two admins demoting each other at once can't both succeed."""
    admins = list(
        Membership.objects.select_for_update()
        .filter(project=project, role=Membership.ADMIN)
        .values_list("user_id", flat=True)
    )
    if admins == [member.pk] and new_role != Membership.ADMIN:
        doing = "removed" if new_role is None else "made a " + dict(Membership.ROLES)[new_role]
        raise ValidationError(
            {
                "username": conflict(
                    f"{member.username} is the only Project admin of '{project.name}' "
                    f"and can't be {doing}: make someone else Project admin first."
                )
            }
        )


def membership_set(*, user, project, username: str, role: str) -> Membership:
    """Add the user `username` to the project or change their role; `user`, who does it, must
    be its Project admin. The project always keeps at least one Project admin. Recorded in
    ML Logs (member added / role_changed) with `user` as the actor."""
    require(user=user, project=project, need=ADMIN)
    if role not in _RANK:
        raise ValidationError({"role": f"'{role}' is not a role."})
    member = get_user_model().objects.filter(username=username).first() if username else None
    if member is None:
        message = f"There is no user '{username}'." if username else "A username is required."
        raise ValidationError({"username": message})
    label = dict(Membership.ROLES)[role]
    with transaction.atomic():
        membership = Membership.objects.select_for_update().filter(project=project, user=member)
        membership = membership.first()
        if membership is None:
            membership = Membership.objects.create(project=project, user=member, role=role)
            _member_event(
                project=project,
                actor=user,
                action="added",
                username=member.username,
                role=role,
                message=f"{member.username} added as {label}",
            )
        elif membership.role != role:
            _keep_an_admin(project=project, member=member, new_role=role)
            previous, membership.role = membership.role, role
            membership.save(update_fields=["role"])
            _member_event(
                project=project,
                actor=user,
                action="role_changed",
                username=member.username,
                role=role,
                message=f"{member.username} is now {label} "
                f"(was {dict(Membership.ROLES)[previous]})",
                **{"from": previous},
            )
    return membership


def membership_remove(*, user, project, username: str) -> None:
    """Take the user `username` out of the project (nothing happens if they are not in it);
    `user`, who does it, must be its Project admin, and the last Project admin stays.
    Recorded in ML Logs (member removed) with `user` as the actor."""
    require(user=user, project=project, need=ADMIN)
    with transaction.atomic():
        membership = (
            Membership.objects.select_for_update()
            .select_related("user")
            .filter(project=project, user__username=username)
            .first()
        )
        if membership is None:
            return
        if membership.role == Membership.ADMIN:
            _keep_an_admin(project=project, member=membership.user, new_role=None)
        membership.delete()
        _member_event(
            project=project,
            actor=user,
            action="removed",
            username=username,
            role=membership.role,
            message=f"{username} removed from the project",
        )


# API tokens. The token is "aic_" and 43 random characters; only its SHA-256 is stored, and
# its first 8 characters (the prefix) to tell tokens apart in lists.

TOKEN_NAME_MAX = 100
# last_used_at is written at most this often per token: not a database write per API call.
TOKEN_LAST_USED_EVERY = timedelta(minutes=1)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def api_token_expiry(value) -> datetime | None:
    """The moment a token expires, from what a person or a client gave: None or "never"
    (never), a number of days from now, a date (the token works through that day, UTC) or a
    date and time (ISO 8601; without a zone, UTC). It must be in the future."""
    if value is None or value == "" or value == "never":
        return None
    now = timezone.now()
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise ValidationError({"expires_at": "The number of days must be at least 1."})
        return now + timedelta(days=value)
    if isinstance(value, str):
        text = value.strip()
        try:
            parsed = parse_date(text) or parse_datetime(text)  # a date: through that day
        except ValueError:  # well formed but impossible, e.g. 2027-02-30
            parsed = None
        if parsed is None:
            raise ValidationError(
                {"expires_at": f"'{text[:40]}' is not a date: give one like 2027-01-31."}
            )
        value = parsed
    if isinstance(value, datetime):
        moment = value if timezone.is_aware(value) else value.replace(tzinfo=UTC)
    elif isinstance(value, date):
        moment = datetime.combine(value + timedelta(days=1), time.min, tzinfo=UTC)
    else:
        raise ValidationError({"expires_at": "Give a date like 2027-01-31, or never."})
    if moment <= now:
        raise ValidationError({"expires_at": "The expiry date must be in the future."})
    return moment


def _token_event(*, token, actor, action: str, message: str) -> None:
    record(
        project=None,
        category="token",
        action=action,
        actor=actor,
        object_type="token",
        object_key=token.pk,
        object_name=f"{token.name} ({token.prefix}…)",
        url="",  # the tokens page is each user's own: no link that works for everyone
        message=message,
        data={"name": token.name, "prefix": token.prefix, "user": token.user.get_username()},
    )


def api_token_create(
    *, user, name: str, expires_at=None, from_command_line: bool = False, made_with=None
) -> ApiToken:
    """Make a new API token for `user`, named `name` (unique among their tokens not revoked),
    expiring at `expires_at` (see api_token_expiry; None: never). The returned row carries the
    token itself in `.token`, to show once: it is never stored, only its SHA-256.
    ML Logs name the user as its maker, or the system for manage.py create_api_token
    (`from_command_line`: whoever ran it had the server's keys, not the user's login).
    `made_with`: the API token the request came with, if any; a token that expires can't make
    one that outlives it, so a leaked short-lived token can't make itself a permanent one."""
    actor = None if from_command_line else user
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": "A name is required, e.g. 'CI robot'."})
    if len(name) > TOKEN_NAME_MAX:
        raise ValidationError(
            {"name": f"The name is too long: {TOKEN_NAME_MAX} characters at most."}
        )
    expires_at = api_token_expiry(expires_at)
    if made_with is not None and made_with.expires_at is not None:
        if expires_at is None or expires_at > made_with.expires_at:
            raise ValidationError(
                {
                    "expires_at": "The token this request came with expires "
                    f"{made_with.expires_at:%Y-%m-%d %H:%M} UTC; a token it makes must expire "
                    "by then. Make longer-lived tokens on the Tokens page."
                }
            )
    taken = name_taken(f"You already have a token named '{name}'; revoke it or pick another name.")
    if ApiToken.objects.filter(user=user, name=name, revoked_at__isnull=True).exists():
        raise ValidationError({"name": taken})
    secret = "aic_" + secrets.token_urlsafe(32)
    try:
        with transaction.atomic():
            token = ApiToken.objects.create(
                user=user,
                name=name,
                digest=_digest(secret),
                prefix=secret[:8],
                expires_at=expires_at,
            )
            expiry = f"expires {expires_at:%Y-%m-%d %H:%M} UTC" if expires_at else "no expiry"
            _token_event(
                token=token,
                actor=actor,
                action="created",
                message=f"API token '{name}' of {user.get_username()} created ({expiry})",
            )
    except IntegrityError:  # the same name made a moment ago by another request
        raise ValidationError({"name": taken}) from None
    token.token = secret
    return token


def api_token_list(*, user):
    """`user`'s tokens, newest first, revoked ones too (the list says so)."""
    return ApiToken.objects.filter(user=user).select_related("user")


def api_token_revoke(*, user, token_id: int, why: str = "") -> ApiToken:
    """Revoke the token `token_id`: it stops working at once. Users revoke their own tokens;
    superusers anyone's (a leaked token is stopped without waiting for its owner). Revoking a
    revoked token changes nothing. Recorded in ML Logs with `user` as the actor (and `why`)."""
    token = ApiToken.objects.select_related("user").filter(pk=token_id).first()
    if token is None or (token.user_id != user.pk and not user.is_superuser):
        raise Http404(f"You have no API token {token_id}.")  # others' tokens stay unseen
    with transaction.atomic():
        if ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        ):
            token.refresh_from_db()
            _token_event(
                token=token,
                actor=user,
                action="revoked",
                message=f"API token '{token.name}' of {token.user.get_username()} revoked"
                + (f": {why}" if why else ""),
            )
    return token


def api_token_find(token: str) -> ApiToken | None:
    """The token's row, with its user, whatever its status."""
    return ApiToken.objects.select_related("user").filter(digest=_digest(token)).first()


def api_token_in_use(token: str) -> ApiToken | None:
    """The token's row, with its user, if it is neither revoked nor expired and its user is
    active; else None. Notes when it was last used."""
    found = api_token_find(token)
    if found is None or found.status != "active" or not found.user.is_active:
        return None
    now = timezone.now()
    if found.last_used_at is None or found.last_used_at < now - TOKEN_LAST_USED_EVERY:
        ApiToken.objects.filter(pk=found.pk).update(last_used_at=now)
    return found

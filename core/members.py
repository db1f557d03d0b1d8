"""Members of a project: adding them, changing their role, taking them out; a project always
keeps a Project admin."""

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import Http404
from django.urls import reverse

from core.errors import conflict
from core.events import record
from core.models import Membership
from core.services import ADMIN, require


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
    if role not in dict(Membership.ROLES):
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

"""People: superusers create users, deactivate and reactivate them, and reset passwords, on
the Users page and through the API (/users). API tokens and project members are in
the core (core/tokens.py, core/members.py), beside the roles they rely on."""

import secrets

from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import Prefetch
from django.http import Http404

from core.errors import name_taken
from core.models import Membership
from core.tokens import api_token_list, api_token_revoke

USERNAME_MAX = 150  # Django's User.username


def _require_superuser(user) -> None:
    if not user.is_superuser:
        raise PermissionDenied(
            "Only superusers manage users: ask one to add someone, reset a password or "
            "deactivate an account."
        )


def generated_password() -> str:
    """16 random characters (96 bits): shown once, for the person to log in and change."""
    return secrets.token_urlsafe(12)


def api_tokens_end(*, person, actor, why: str) -> None:
    """Revoke every token of `person` still in force, `actor` (a superuser) and `why` in ML
    Logs. For someone deactivated: their tokens end for good, so reactivating them (or giving
    them a new password) brings none back."""
    with transaction.atomic():
        for token in api_token_list(user=person).filter(revoked_at__isnull=True):
            api_token_revoke(user=actor, token_id=token.pk, why=why)


def user_list(*, user):
    """Every user, with the projects they belong to (`project_memberships`), for superusers."""
    _require_superuser(user)
    memberships = Membership.objects.select_related("project").order_by("project__name")
    return (
        get_user_model()
        .objects.order_by("username")
        .prefetch_related(Prefetch("memberships", memberships, to_attr="project_memberships"))
    )


def user_get_for_superuser(*, user, username: str):
    _require_superuser(user)
    found = get_user_model().objects.filter(username=username).first()
    if found is None:
        raise Http404(f"There is no user '{username}'.")
    return found


def _check_password(password: str, person) -> None:
    try:
        password_validation.validate_password(password, person)
    except ValidationError as error:
        raise ValidationError({"password": error.messages}) from None


def user_create(
    *,
    user,
    username: str,
    email: str = "",
    first_name: str = "",
    last_name: str = "",
    password: str | None = None,
) -> tuple:
    """A new active user; `user` must be a superuser. With no password, one is generated.
    Returns (the user, the generated password or None): the password is shown once."""
    _require_superuser(user)
    username, email = (username or "").strip(), (email or "").strip()
    errors = {}
    if not username:
        errors["username"] = ["A username is required."]
    elif len(username) > USERNAME_MAX:
        errors["username"] = [f"The username is too long: {USERNAME_MAX} characters at most."]
    else:
        try:
            UnicodeUsernameValidator()(username)
        except ValidationError:
            errors["username"] = ["Use letters, digits and @ . + - _ only, with no spaces."]
    if email:
        try:
            validate_email(email)
        except ValidationError:
            errors["email"] = [f"'{email[:60]}' is not an e-mail address."]
    for field, value in (("first_name", first_name), ("last_name", last_name)):
        if len(value or "") > 150:
            errors[field] = ["Too long: 150 characters at most."]
    User = get_user_model()
    person = User(
        username=username, email=email, first_name=first_name or "", last_name=last_name or ""
    )
    generated = None if password else generated_password()
    if password:
        try:
            _check_password(password, person)
        except ValidationError as error:
            errors.update(error.message_dict)
    if errors:
        raise ValidationError(errors)
    taken = name_taken(f"A user named '{username}' already exists.")
    if User.objects.filter(username__iexact=username).exists():
        raise ValidationError({"username": taken})
    person.set_password(password or generated)
    try:
        with transaction.atomic():
            person.save()
    except IntegrityError:  # made by someone else a moment ago
        raise ValidationError({"username": taken}) from None
    return person, generated


def user_update(
    *,
    user,
    username: str,
    is_active: bool | None = None,
    password: str | None = None,
    reset_password: bool = False,
) -> tuple:
    """Deactivate or reactivate `username`, or give them a new password (`password`, or a
    generated one with `reset_password`); `user` must be a superuser. A deactivated user can't
    log in and their sessions stop working at once (is_active is checked on every request);
    their API tokens are revoked, for good: reactivating them brings none back. Returns (the
    user, the generated password or None)."""
    person = user_get_for_superuser(user=user, username=username)
    if is_active is not None and not isinstance(is_active, bool):
        raise ValidationError({"is_active": "is_active must be true or false."})
    if is_active is False and person.pk == user.pk:
        raise ValidationError(
            {"is_active": "You can't deactivate yourself: another superuser can."}
        )
    if password is not None and reset_password:
        raise ValidationError({"password": "Give a password or ask for a generated one, not both."})
    if password is not None:
        _check_password(password, person)
    generated = generated_password() if reset_password else None
    fields = []
    if is_active is not None and is_active != person.is_active:
        person.is_active = is_active
        fields.append("is_active")
    if password is not None or generated:
        person.set_password(password if password is not None else generated)
        fields.append("password")
    if fields:
        with transaction.atomic():
            person.save(update_fields=fields)
            if "is_active" in fields and not person.is_active:
                api_tokens_end(person=person, actor=user, why=f"{username} deactivated")
    return person, generated

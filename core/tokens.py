"""API tokens: made, listed, revoked, and checked on every API call. A token is "aic_" and 43
random characters; only its SHA-256 is stored, and its first 8 characters (the prefix) to tell
tokens apart in lists."""

import hashlib
import secrets
from datetime import UTC, date, datetime, time, timedelta

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.http import Http404
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from core.errors import name_taken
from core.events import record
from core.models import ApiToken

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

"""/tokens (each user's own API tokens) and /users (superusers), beside /projects in the API."""

from datetime import datetime
from typing import Literal

from ninja import Field, Router, Schema, Status
from pydantic import ConfigDict

from accounts.services import user_create, user_list, user_update
from core.errors import ErrorOut
from core.tokens import api_token_create, api_token_list, api_token_revoke

router = Router(tags=["accounts"])


class TokenIn(Schema):
    # extra="forbid": there is no field naming another user; a token is always the caller's
    model_config = ConfigDict(strict=True, extra="forbid")

    name: str = Field(
        description="What the token is for; unique among your tokens not revoked.",
        json_schema_extra={"minLength": 1, "maxLength": 100, "pattern": r"\S"},
    )
    expires_at: str | None = Field(
        None,
        description="The last day it works (2027-01-31, UTC) or a moment (ISO 8601); "
        "null: never. In the future.",
    )


class TokenOut(Schema):
    id: int
    name: str
    prefix: str = Field(description="The token's first characters, to tell tokens apart.")
    created_at: datetime
    last_used_at: datetime | None = Field(description="Updated at most once a minute.")
    expires_at: datetime | None
    revoked_at: datetime | None
    status: Literal["active", "expired", "revoked"]


class NewTokenOut(TokenOut):
    token: str = Field(description="The token itself: shown this once, never again.")


@router.get("/tokens", response=list[TokenOut])
def list_tokens(request):
    """Your API tokens, newest first, revoked and expired ones too. Never the tokens
    themselves: they are shown once, when made."""
    return list(api_token_list(user=request.user))


@router.post("/tokens", response={201: NewTokenOut, 409: ErrorOut})
def create_token(request, payload: TokenIn):
    """A new API token for you. The answer holds the token once (`token`); only its SHA-256
    is stored."""
    token = api_token_create(
        user=request.user,
        name=payload.name,
        expires_at=payload.expires_at,
        made_with=getattr(request, "api_token", None),  # None: the browser session
    )
    return Status(201, token)


@router.delete("/tokens/{token_id}", response={204: None, 404: ErrorOut})
def revoke_token(request, token_id: int):
    """Revoke one of your tokens (superusers: anyone's); it stops working at once."""
    api_token_revoke(user=request.user, token_id=token_id)
    return Status(204, None)


class UserOut(Schema):
    username: str
    email: str
    first_name: str
    last_name: str
    is_active: bool
    is_staff: bool
    is_superuser: bool
    last_login: datetime | None
    date_joined: datetime
    projects: list[str] = Field(description="Slugs of the projects the user is a member of.")

    @staticmethod
    def resolve_projects(person):
        memberships = getattr(person, "project_memberships", None)
        if memberships is None:
            memberships = person.memberships.select_related("project")
        return [m.project.slug for m in memberships]


class NewPasswordOut(UserOut):
    password: str | None = Field(
        None, description="The generated password, shown this once; null if none was made."
    )

    @staticmethod
    def resolve_password(person):
        # never the model's own `password` (its hash): only what was just generated
        return getattr(person, "generated_password", None)


class UserIn(Schema):
    model_config = ConfigDict(strict=True, extra="forbid")

    username: str
    email: str = ""
    first_name: str = ""
    last_name: str = ""
    password: str | None = Field(
        None, description="Checked by the password rules; null: one is generated and returned."
    )


class UserChangeIn(Schema):
    model_config = ConfigDict(strict=True, extra="forbid")

    is_active: bool | None = Field(
        None, description="false: can't log in; their sessions and API tokens stop at once."
    )
    password: str | None = Field(None, description="A new password (checked by the rules).")
    reset_password: bool = Field(
        False, description="true: a new password is generated and returned once."
    )


def _with_password(person, generated: str | None):
    person.generated_password = generated
    return person


@router.get("/users", response=list[UserOut])
def list_users(request):
    """Superusers: every user, with their projects."""
    return list(user_list(user=request.user))


@router.post("/users", response={201: NewPasswordOut, 409: ErrorOut})
def create_user(request, payload: UserIn):
    """Superusers: a new user. Without a password one is generated and returned once."""
    person, generated = user_create(user=request.user, **payload.dict())
    return Status(201, _with_password(person, generated))


@router.patch("/users/{username}", response={200: NewPasswordOut, 404: ErrorOut})
def update_user(request, username: str, payload: UserChangeIn):
    """Superusers: deactivate or reactivate a user, or set or reset their password."""
    person, generated = user_update(user=request.user, username=username, **payload.dict())
    return _with_password(person, generated)

"""The API tokens page (every user's own) and the Users page (superusers)."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.services import user_create, user_list, user_update
from core.pages import form_errors
from core.tokens import api_token_create, api_token_list, api_token_revoke

EXPIRY_CHOICES = [
    ("never", "Never"),
    ("7", "In 7 days"),
    ("30", "In 30 days"),
    ("90", "In 90 days"),
    ("date", "On a date…"),
]


def _expiry(post):
    """The tokens form's expiry choice as api_token_create takes it."""
    choice = post.get("expiry", "never")
    if choice in ("7", "30", "90"):
        return int(choice)
    if choice == "date":
        if not post.get("expires_on"):
            raise ValidationError({"expires_at": "Pick the last day the token works."})
        return post["expires_on"]
    if choice != "never":
        raise ValidationError({"expires_at": "Pick when the token expires."})
    return None


def _shown_once(response):
    """A page showing a token or password: never kept by the browser or a proxy."""
    response["Cache-Control"] = "no-store"
    return response


@login_required
def tokens(request):
    new_token, errors, values = None, {}, {}
    if request.method == "POST":
        values = request.POST
        try:
            new_token = api_token_create(
                user=request.user,
                name=request.POST.get("name", ""),
                expires_at=_expiry(request.POST),
            )
            values = {}
        except ValidationError as error:
            errors = form_errors(error)
    context = {
        "tokens": api_token_list(user=request.user),
        "new_token": new_token,
        "errors": errors,
        "values": values,
        "expiry_choices": EXPIRY_CHOICES,
    }
    status = 400 if errors else 201 if new_token else 200
    return _shown_once(render(request, "accounts/tokens.html", context, status=status))


@login_required
@require_POST
def token_revoke(request, token_id):
    token = api_token_revoke(user=request.user, token_id=token_id)
    messages.success(request, f"Token “{token.name}” revoked: it no longer works.")
    return redirect("account-tokens")


def _users_page(request, *, errors=None, values=None, shown=None, status=200):
    context = {
        "users": user_list(user=request.user),
        "errors": errors or {},
        "values": values or {},
        "shown": shown,  # {"username", "password", "created": bool}: the password, once
    }
    return _shown_once(render(request, "accounts/users.html", context, status=status))


@login_required
def users(request):
    if request.method != "POST":
        return _users_page(request)
    fields = ("username", "email", "first_name", "last_name", "password")
    values = {field: request.POST.get(field, "") for field in fields}
    try:
        person, generated = user_create(user=request.user, **values)
    except ValidationError as error:
        values.pop("password")  # never sent back into the page
        return _users_page(request, errors=form_errors(error), values=values, status=400)
    if generated is None:
        messages.success(request, f"User {person.username} created with the password you gave.")
        return redirect("account-users")
    shown = {"username": person.username, "password": generated, "created": True}
    return _users_page(request, shown=shown, status=201)


@login_required
@require_POST
def user_change(request, username):
    """The Users page's row buttons: deactivate, reactivate, reset password."""
    action = request.POST.get("action")
    changes = {"deactivate": {"is_active": False}, "reactivate": {"is_active": True}}
    changes["reset"] = {"reset_password": True}
    if action not in changes:
        return _users_page(request, errors={"general": ["Unknown action."]}, status=400)
    try:
        person, generated = user_update(user=request.user, username=username, **changes[action])
    except ValidationError as error:
        return _users_page(request, errors={"general": error.messages}, status=400)
    if generated:
        return _users_page(request, shown={"username": person.username, "password": generated})
    state = "reactivated" if person.is_active else "deactivated: their API tokens are revoked"
    messages.success(request, f"{person.username} {state}.")
    return redirect("account-users")

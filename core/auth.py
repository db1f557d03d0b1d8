"""How the JSON API knows who calls: a bearer token, or the browser session.

Credentials that were sent and don't open the API answer 401 saying what is wrong with them,
whatever the method: a bad token must not fall through to the session's CSRF check (a 403
about CSRF tells a script nothing). CSRF is checked for a logged-in browser session only.
"""

from ninja.errors import AuthenticationError
from ninja.security import HttpBearer, SessionAuth

from core.tokens import api_token_find, api_token_in_use

NO_CREDENTIALS = (
    "Authentication required: send 'Authorization: Bearer <token>' "
    "(make one on your account's API tokens page, or with manage.py create_api_token USERNAME)."
)
MAKE_ONE = "make a new one on your account's API tokens page."


def token_refusal(token: str) -> str:
    """Why `token` opens nothing, in a sentence for whoever sent it."""
    found = api_token_find(token)
    if found is None:
        return (
            "Unknown API token: check that it was copied whole (it is shown once, when it "
            f"is made), or {MAKE_ONE}"
        )
    if found.status == "revoked":
        return f"API token '{found.prefix}…' was revoked on {found.revoked_at:%Y-%m-%d}: {MAKE_ONE}"
    if found.status == "expired":
        return f"API token '{found.prefix}…' expired on {found.expires_at:%Y-%m-%d}: {MAKE_ONE}"
    return (
        f"API token '{found.prefix}…' belongs to user '{found.user.get_username()}', who is "
        "deactivated."
    )


class BearerToken(HttpBearer):
    def __call__(self, request):
        value = request.headers.get(self.header)
        if not value:
            return None  # maybe a browser session: the next authentication
        scheme, _, token = value.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthenticationError(401, "The Authorization header must read 'Bearer <token>'.")
        return self.authenticate(request, token.strip())

    def authenticate(self, request, token):
        found = api_token_in_use(token)
        if found is None:
            raise AuthenticationError(401, token_refusal(token))
        request.user, request.api_token = found.user, found
        return found.user


class BrowserSession(SessionAuth):
    """A logged-in browser, whose writes carry the CSRF token. A request without a session
    is not asked for one: it answers 401 as any call without credentials."""

    def __call__(self, request):
        if not request.user.is_authenticated:
            return None
        return super().__call__(request)


browser_session = BrowserSession()

"""How the JSON API knows who calls: a bearer token (or the browser session, django_auth)."""

from ninja.security import HttpBearer

from core.tokens import api_token_in_use


class BearerToken(HttpBearer):
    def authenticate(self, request, token):
        found = api_token_in_use(token)
        if found is None:
            return None
        request.user, request.api_token = found.user, found
        return found.user

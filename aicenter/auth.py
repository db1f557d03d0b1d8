"""How the JSON API knows who calls: a bearer token (or the browser session, django_auth)."""

from ninja.security import HttpBearer

from aicenter.services import api_token_user


class BearerToken(HttpBearer):
    def authenticate(self, request, token):
        user = api_token_user(token)
        if user is not None:
            request.user = user
        return user

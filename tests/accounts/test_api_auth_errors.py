"""Calls with credentials that open nothing answer 401 saying what is wrong, whatever the
method; CSRF is asked of a logged-in browser only."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from core.models import ApiToken
from core.tokens import api_token_create, api_token_revoke

# every method, each on an operation that exists (the 401 comes before the project is looked up)
CALLS = [
    ("get", "/api/v1/projects", None),
    ("post", "/api/v1/projects", {"name": "Beta"}),
    ("patch", "/api/v1/projects/alpha", {"allow_network": True}),
    ("put", "/api/v1/projects/alpha/members/bob", {"role": "viewer"}),
    ("delete", "/api/v1/projects/alpha/members/bob", None),
]


def _call(client, method, path, body, **headers):
    if body is None:
        return getattr(client, method)(path, headers=headers)
    return getattr(client, method)(path, body, content_type="application/json", headers=headers)


def _as_a_script(token=None, scheme="Bearer"):
    # enforce_csrf_checks: as a real client, which the test client otherwise isn't
    client = Client(enforce_csrf_checks=True)
    return client, ({"Authorization": f"{scheme} {token}"} if token else {})


@pytest.fixture
def tokens(alice, django_user_model):
    revoked = api_token_create(user=alice, name="revoked")
    api_token_revoke(user=alice, token_id=revoked.pk)
    expired = api_token_create(user=alice, name="expired")
    ApiToken.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(days=2))
    dave = django_user_model.objects.create_user(username="dave", password="pw-dave")
    deactivated = api_token_create(user=dave, name="left")
    dave.is_active = False
    dave.save()
    return {
        "none": (None, "Authentication required: send 'Authorization: Bearer <token>'"),
        "mistyped": ("not-a-token-at-all", "Unknown API token: check that it was copied whole"),
        "revoked": (revoked.token, f"API token '{revoked.prefix}…' was revoked on "),
        "expired": (expired.token, f"API token '{expired.prefix}…' expired on "),
        "deactivated": (deactivated.token, "belongs to user 'dave', who is deactivated"),
    }


@pytest.mark.parametrize("method,path,body", CALLS, ids=[c[0] for c in CALLS])
@pytest.mark.parametrize("case", ["none", "mistyped", "revoked", "expired", "deactivated"])
def test_it_answers_401_saying_what_is_wrong(tokens, case, method, path, body):
    token, words = tokens[case]
    client, headers = _as_a_script(token)
    response = _call(client, method, path, body, **headers)
    assert response.status_code == 401, response.content
    assert response["Content-Type"].startswith("application/json")
    assert words in response.json()["detail"]
    assert "CSRF" not in response.json()["detail"]
    assert ApiToken.objects.filter(last_used_at__isnull=False).count() == 0


def test_it_says_how_the_header_must_read(alice):
    made = api_token_create(user=alice, name="ci")
    for value in (f"Token {made.token}", "Bearer ", "Bearer"):
        response = Client(enforce_csrf_checks=True).post(
            "/api/v1/projects", {"name": "x"}, "application/json", headers={"Authorization": value}
        )
        assert response.status_code == 401
        assert response.json()["detail"] == ("The Authorization header must read 'Bearer <token>'.")


def test_a_bad_token_is_401_even_beside_a_browser_session(alice, client):
    client.force_login(alice)
    response = client.delete(
        "/api/v1/projects/alpha/members/alice", headers={"Authorization": "Bearer wrong"}
    )
    assert response.status_code == 401
    assert "Unknown API token" in response.json()["detail"]


def test_a_browser_session_still_needs_its_csrf_token(alice):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(alice)
    assert browser.get("/api/v1/projects").status_code == 200
    change = {"allow_network": True}
    refused = browser.patch("/api/v1/projects/alpha", change, "application/json")
    assert refused.status_code == 403
    assert "CSRF" in refused.json()["detail"]
    browser.get("/")  # the pages set the CSRF cookie, whose value htmx sends back
    token = browser.cookies["csrftoken"].value
    changed = browser.patch(
        "/api/v1/projects/alpha", change, "application/json", headers={"X-CSRFToken": token}
    )
    assert changed.status_code == 200, changed.content


def test_a_good_token_needs_no_csrf_token(alice):
    made = api_token_create(user=alice, name="ci")
    client, headers = _as_a_script(made.token)
    response = _call(client, "patch", "/api/v1/projects/alpha", {"allow_network": True}, **headers)
    assert response.status_code == 200, response.content

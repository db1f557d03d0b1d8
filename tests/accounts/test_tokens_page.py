"""The API tokens page, /account/tokens/: every user's own tokens."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from core.models import ApiToken, Event
from core.tokens import api_token_create


def bearer(token: str) -> Client:
    return Client(headers={"Authorization": f"Bearer {token}"})


def test_it_shows_a_new_token_once(pages_as, alice):
    page = pages_as(alice)
    response = page.post("/account/tokens/", {"name": "CI robot", "expiry": "30"})
    assert response.status_code == 201
    token = response.context["new_token"].token
    html = response.content.decode()
    assert token in html and "you won't see it again" in html
    assert response["Cache-Control"] == "no-store"
    row = ApiToken.objects.get(name="CI robot")
    assert timedelta(days=29, hours=23) < row.expires_at - timezone.now() <= timedelta(days=30)
    assert bearer(token).get("/api/v1/projects").status_code == 200

    again = page.get("/account/tokens/").content.decode()
    assert "CI robot" in again and row.prefix in again
    assert token not in again


def test_it_lists_name_prefix_dates_and_status(pages_as, alice):
    api_token_create(user=alice, name="laptop")
    expired = api_token_create(user=alice, name="old one", expires_at=1)
    ApiToken.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(days=1))
    revoked = api_token_create(user=alice, name="gone")
    revoked.revoked_at = timezone.now()
    revoked.save()
    html = pages_as(alice).get("/account/tokens/").content.decode()
    for text in ("laptop", "old one", "gone", "Active", "Expired", "Revoked", "Never"):
        assert text in html
    assert html.count(">Revoke</button>") == 2  # not for the revoked one


def test_it_expires_on_a_date(pages_as, alice):
    day = (timezone.now() + timedelta(days=10)).date()
    response = pages_as(alice).post(
        "/account/tokens/", {"name": "dated", "expiry": "date", "expires_on": day.isoformat()}
    )
    assert response.status_code == 201
    assert ApiToken.objects.get(name="dated").expires_at.date() == day + timedelta(days=1)


def test_it_revokes_a_token(pages_as, alice):
    made = api_token_create(user=alice, name="laptop")
    page = pages_as(alice)
    response = page.post(f"/account/tokens/{made.pk}/revoke/", follow=True)
    assert "Token “laptop” revoked" in response.content.decode()
    assert bearer(made.token).get("/api/v1/projects").status_code == 401
    event = Event.objects.get(category="token", action="revoked")
    assert (event.actor, event.project, event.data["name"]) == (alice, None, "laptop")


def test_someone_elses_token_cant_be_revoked_from_the_page(pages_as, alice, charlie):
    made = api_token_create(user=alice, name="laptop")
    assert pages_as(charlie).post(f"/account/tokens/{made.pk}/revoke/").status_code == 404
    assert ApiToken.objects.get(pk=made.pk).revoked_at is None
    assert "laptop" not in pages_as(charlie).get("/account/tokens/").content.decode()


@pytest.mark.parametrize(
    "form, message",
    [
        ({"name": "", "expiry": "never"}, "A name is required"),
        ({"name": "x" * 101, "expiry": "never"}, "too long"),
        ({"name": "dup", "expiry": "never"}, "You already have a token named"),
        ({"name": "a", "expiry": "date", "expires_on": ""}, "Pick the last day"),
        ({"name": "a", "expiry": "date", "expires_on": "2001-01-01"}, "must be in the future"),
        ({"name": "a", "expiry": "date", "expires_on": "31/01/2027"}, "is not a date"),
        ({"name": "a", "expiry": "forever"}, "Pick when the token expires"),
    ],
)
def test_bad_input_is_refused_with_a_message(pages_as, alice, form, message):
    api_token_create(user=alice, name="dup")
    response = pages_as(alice).post("/account/tokens/", form)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert ApiToken.objects.count() == 1
    assert response.context["new_token"] is None


def test_the_page_needs_a_login(client, db):
    assert client.get("/account/tokens/").status_code == 302
    assert client.post("/account/tokens/", {"name": "x"}).status_code == 302
    assert not ApiToken.objects.exists()


def test_the_top_bar_links_to_tokens_and_users_for_superusers(pages_as, alice, client):
    html = pages_as(alice).get("/").content.decode()
    assert 'href="/account/tokens/"' in html and 'href="/account/users/"' not in html
    alice.is_superuser = True
    alice.save()
    assert 'href="/account/users/"' in client.get("/").content.decode()

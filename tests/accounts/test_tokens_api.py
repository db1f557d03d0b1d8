"""API tokens through the JSON API (/api/v1/tokens), and what a token lets in."""

import hashlib
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from core.models import ApiToken, Event
from core.tokens import api_token_create


def bearer(token: str) -> Client:
    return Client(headers={"Authorization": f"Bearer {token}"})


def test_it_creates_a_token_that_works_and_is_shown_once(api_as, alice):
    client = api_as(alice)
    response = client.post_json("/api/v1/tokens", {"name": "CI robot", "expires_at": None})
    assert response.status_code == 201
    made = response.json()
    assert made["name"] == "CI robot" and made["status"] == "active"
    assert made["expires_at"] is None and made["token"].startswith(made["prefix"])
    assert bearer(made["token"]).get("/api/v1/projects").status_code == 200

    listed = client.get("/api/v1/tokens").json()
    assert [t["name"] for t in listed if t["id"] == made["id"]] == ["CI robot"]
    assert made["token"] not in client.get("/api/v1/tokens").content.decode()
    assert all("token" not in t for t in listed)


def test_it_stores_only_the_tokens_sha256(api_as, alice):
    token = api_as(alice).post_json("/api/v1/tokens", {"name": "ci"}).json()["token"]
    row = ApiToken.objects.get(name="ci")
    assert row.digest == hashlib.sha256(token.encode()).hexdigest()
    # nowhere in the database: every text column of every token row
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM aicenter_apitoken")
        assert not any(token in str(value) for row in cursor.fetchall() for value in row)
    assert token not in str(Event.objects.filter(category="token").values())


def test_it_expires_a_token_on_the_day_given(api_as, alice):
    tomorrow = (timezone.now() + timedelta(days=1)).date()
    made = api_as(alice).post_json(
        "/api/v1/tokens", {"name": "short", "expires_at": tomorrow.isoformat()}
    )
    assert made.status_code == 201
    expires_at = ApiToken.objects.get(name="short").expires_at
    assert expires_at.date() == tomorrow + timedelta(days=1)  # works through that whole day
    assert (expires_at.hour, expires_at.minute) == (0, 0)


def test_an_expired_token_gets_401_and_says_so_in_the_list(api_as, alice):
    made = api_token_create(user=alice, name="old", expires_at=1)
    assert bearer(made.token).get("/api/v1/projects").status_code == 200
    ApiToken.objects.filter(pk=made.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = bearer(made.token).get("/api/v1/projects")
    assert response.status_code == 401
    listed = {t["name"]: t["status"] for t in api_as(alice).get("/api/v1/tokens").json()}
    assert listed["old"] == "expired"


def test_a_revoked_token_gets_401_at_once(api_as, alice):
    made = api_token_create(user=alice, name="laptop")
    client = api_as(alice)
    assert client.delete(f"/api/v1/tokens/{made.pk}").status_code == 204
    assert bearer(made.token).get("/api/v1/projects").status_code == 401
    listed = {t["name"]: t for t in client.get("/api/v1/tokens").json()}
    assert listed["laptop"]["status"] == "revoked" and listed["laptop"]["revoked_at"]
    # revoking again changes nothing and records nothing more
    assert client.delete(f"/api/v1/tokens/{made.pk}").status_code == 204
    assert Event.objects.filter(category="token", action="revoked").count() == 1


def test_a_token_can_revoke_itself(alice):
    made = api_token_create(user=alice, name="leaked")
    assert bearer(made.token).delete(f"/api/v1/tokens/{made.pk}").status_code == 204
    assert bearer(made.token).get("/api/v1/tokens").status_code == 401


def test_a_revoked_name_can_be_used_again(api_as, alice):
    client = api_as(alice)
    first = client.post_json("/api/v1/tokens", {"name": "ci"}).json()
    client.delete(f"/api/v1/tokens/{first['id']}")
    assert client.post_json("/api/v1/tokens", {"name": "ci"}).status_code == 201


def test_a_deactivated_users_token_gets_401(alice):
    made = api_token_create(user=alice, name="ci")
    alice.is_active = False
    alice.save()
    assert bearer(made.token).get("/api/v1/projects").status_code == 401


def test_last_used_is_written_at_most_once_a_minute(alice):
    made = api_token_create(user=alice, name="ci")
    client = bearer(made.token)
    client.get("/api/v1/tokens")
    first = ApiToken.objects.get(pk=made.pk).last_used_at
    assert first is not None
    client.get("/api/v1/tokens")
    assert ApiToken.objects.get(pk=made.pk).last_used_at == first  # no write per request
    ApiToken.objects.filter(pk=made.pk).update(last_used_at=first - timedelta(minutes=2))
    client.get("/api/v1/tokens")
    assert ApiToken.objects.get(pk=made.pk).last_used_at > first - timedelta(minutes=2)


@pytest.mark.parametrize(
    "payload, status, field, message",
    [
        ({"name": ""}, 400, "name", "A name is required"),
        ({"name": "   "}, 400, "name", "A name is required"),
        ({"name": "x" * 101}, 400, "name", "too long: 100 characters at most"),
        ({"name": "dup"}, 409, "name", "You already have a token named 'dup'"),
        ({"name": "a", "expires_at": "2001-01-01"}, 400, "expires_at", "must be in the future"),
        ({"name": "a", "expires_at": "tomorrow"}, 400, "expires_at", "is not a date"),
        ({"name": "a", "expires_at": "2027-02-30"}, 400, "expires_at", "is not a date"),
        ({"name": "a", "expires_at": 7}, 422, "expires_at", "string"),
        ({"name": 5}, 422, "name", "string"),
        ({}, 422, "name", "required"),
    ],
)
def test_a_bad_token_request_is_refused(api_as, alice, payload, status, field, message):
    api_token_create(user=alice, name="dup")
    client = api_as(alice)
    tokens, events = ApiToken.objects.count(), Event.objects.count()
    response = client.post_json("/api/v1/tokens", payload)
    assert response.status_code == status, response.content
    assert message in " ".join(response.json()["errors"][field])
    assert (ApiToken.objects.count(), Event.objects.count()) == (tokens, events)


def test_a_token_cant_make_tokens_for_someone_else(api_as, alice, bob):
    response = api_as(alice).post_json("/api/v1/tokens", {"name": "for bob", "user": "bob"})
    assert response.status_code == 422
    assert not ApiToken.objects.filter(name="for bob").exists()
    made = api_as(alice).post_json("/api/v1/tokens", {"name": "mine"}).json()
    assert ApiToken.objects.get(pk=made["id"]).user == alice


def test_others_tokens_are_neither_listed_nor_revocable(api_as, alice, bob, charlie):
    bobs = api_token_create(user=bob, name="bob's")
    client = api_as(charlie)
    assert "bob's" not in client.get("/api/v1/tokens").content.decode()
    response = client.delete(f"/api/v1/tokens/{bobs.pk}")
    assert response.status_code == 404
    assert bearer(bobs.token).get("/api/v1/projects").status_code == 200


def test_a_superuser_may_revoke_anyones_token(api_as, bob, django_user_model):
    root = django_user_model.objects.create_superuser("root", password="pw-root-long")
    bobs = api_token_create(user=bob, name="leaked")
    assert api_as(root).delete(f"/api/v1/tokens/{bobs.pk}").status_code == 204
    assert bearer(bobs.token).get("/api/v1/projects").status_code == 401
    event = Event.objects.get(category="token", action="revoked")
    assert event.actor == root and event.data["user"] == "bob"


def test_token_events_name_who_did_it(api_as, alice):
    client = api_as(alice)
    made = client.post_json("/api/v1/tokens", {"name": "ci"}).json()
    client.delete(f"/api/v1/tokens/{made['id']}")
    events = Event.objects.filter(category="token", data__name="ci").order_by("id")
    assert [(e.action, e.actor, e.actor_name, e.project) for e in events] == [
        ("created", alice, "alice", None),
        ("revoked", alice, "alice", None),
    ]
    assert events[0].object_type == "token" and events[0].object_key == str(made["id"])
    assert events[0].data["prefix"] == made["prefix"]


def test_the_token_api_needs_a_login(client, db):
    assert client.get("/api/v1/tokens").status_code == 401
    assert client.post("/api/v1/tokens", {"name": "x"}, "application/json").status_code == 401


def test_a_leaked_expiring_token_cant_make_itself_a_longer_lived_one(alice):
    """The attack: someone holding a token that expires tomorrow makes one that never does."""
    leaked = bearer(api_token_create(user=alice, name="leaked", expires_at=1).token)
    for expires_at in (None, "never", "2099-01-01"):
        response = leaked.post(
            "/api/v1/tokens", {"name": "forever", "expires_at": expires_at}, "application/json"
        )
        assert response.status_code == 400, expires_at
        assert "a token it makes must expire by then" in response.json()["errors"]["expires_at"][0]
    assert not ApiToken.objects.filter(name="forever").exists()
    # one that goes no later than itself is fine
    sooner = (timezone.now() + timedelta(hours=12)).isoformat()
    response = leaked.post(
        "/api/v1/tokens", {"name": "sooner", "expires_at": sooner}, "application/json"
    )
    assert response.status_code == 201
    # signed in on the Tokens page, any expiry
    assert api_token_create(user=alice, name="forever").expires_at is None

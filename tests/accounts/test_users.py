"""Users, managed by superusers on /account/users/ and through /api/v1/users."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from core.models import ApiToken, Event
from core.tokens import api_token_create, api_token_revoke

User = get_user_model()


@pytest.fixture
def root(django_user_model, db):
    return django_user_model.objects.create_superuser("root", password="pw-root-long")


def bearer(token: str) -> Client:
    return Client(headers={"Authorization": f"Bearer {token}"})


def can_log_in(username, password) -> bool:
    client = Client()
    client.post("/login/", {"username": username, "password": password})
    return client.get("/").status_code == 200


# The page


def test_it_lists_users_with_their_projects(pages_as, root, alice, bob, project):
    html = pages_as(root).get("/account/users/").content.decode()
    for text in ("alice", "bob", "root", "Alpha", "Superuser", "Never"):
        assert text in html


def test_it_creates_a_user_with_a_generated_password_shown_once(pages_as, root):
    page = pages_as(root)
    form = {"username": "dana", "email": "dana@example.com", "first_name": "Dana"}
    response = page.post("/account/users/", form)
    assert response.status_code == 201
    password = response.context["shown"]["password"]
    assert password in response.content.decode() and response["Cache-Control"] == "no-store"
    assert can_log_in("dana", password)
    assert password not in page.get("/account/users/").content.decode()
    dana = User.objects.get(username="dana")
    assert dana.email == "dana@example.com" and not dana.is_staff


def test_it_creates_a_user_with_the_password_given(pages_as, root):
    form = {"username": "erin", "password": "a-good-long-passphrase"}
    response = pages_as(root).post("/account/users/", form, follow=True)
    assert "User erin created" in response.content.decode()
    assert can_log_in("erin", "a-good-long-passphrase")


@pytest.mark.parametrize(
    "form, field, message",
    [
        ({"username": ""}, "username", "A username is required"),
        ({"username": "has space"}, "username", "letters, digits and @ . + - _ only"),
        ({"username": "u" * 151}, "username", "too long"),
        ({"username": "ALICE"}, "username", "already exists"),
        ({"username": "fred", "email": "not-mail"}, "email", "is not an e-mail address"),
        ({"username": "fred", "password": "abc"}, "password", "too short"),
    ],
)
def test_a_bad_user_is_refused_on_the_page(pages_as, root, alice, form, field, message):
    before = User.objects.count()
    response = pages_as(root).post("/account/users/", form)
    assert response.status_code == 400
    assert message in " ".join(response.context["errors"][field])
    assert User.objects.count() == before
    assert "abc" not in response.content.decode().split('id="create-user"')[1]


def test_deactivating_stops_their_login_session_and_tokens_at_once(pages_as, root, alice, client):
    token = api_token_create(user=alice, name="ci").token
    alices = Client()
    alices.force_login(alice)
    response = pages_as(root).post("/account/users/alice/", {"action": "deactivate"}, follow=True)
    assert "alice deactivated" in response.content.decode()
    assert bearer(token).get("/api/v1/projects").status_code == 401
    assert alices.get("/").status_code == 302  # back to the login page
    assert not can_log_in("alice", "pw-alice")

    pages_as(root).post("/account/users/alice/", {"action": "reactivate"})
    assert can_log_in("alice", "pw-alice")
    assert bearer(token).get("/api/v1/projects").status_code == 401  # ended, not suspended


def test_a_token_stays_dead_after_deactivate_reset_and_reactivate(pages_as, root, alice):
    """The attack: a leaked token of someone let go, who is later taken back. Deactivating
    revoked it; neither a new password nor reactivation brings it back."""
    kept = api_token_create(user=alice, name="ci").token
    gone = api_token_create(user=alice, name="laptop")
    gone = api_token_revoke(user=alice, token_id=gone.pk)  # revoked before: stays as it was
    page = pages_as(root)
    for action in ("deactivate", "reset", "reactivate"):
        assert page.post("/account/users/alice/", {"action": action}).status_code in (200, 302)
    assert User.objects.get(username="alice").is_active
    assert bearer(kept).get("/api/v1/projects").status_code == 401

    rows = {t.name: t for t in ApiToken.objects.filter(user=alice)}
    assert rows["ci"].status == "revoked" and rows["laptop"].revoked_at == gone.revoked_at
    events = Event.objects.filter(category="token", action="revoked").order_by("id")
    assert [(e.actor_id, e.data["name"]) for e in events] == [(alice.pk, "laptop"), (root.pk, "ci")]
    assert "deactivated" in events.get(data__name="ci").message

    alice.refresh_from_db()  # with the new password: the session's hash is made of it
    alices = Client()
    alices.force_login(alice)
    html = alices.get("/account/tokens/").content.decode()
    assert html.count("badge neutral") == 2 and ">Revoke</button>" not in html  # both Revoked
    fresh = api_token_create(user=alice, name="ci").token  # a new one works again
    assert bearer(fresh).get("/api/v1/projects").status_code == 200


def test_deactivating_in_the_admin_console_revokes_too(pages_as, root, alice):
    token = api_token_create(user=alice, name="ci").token
    page = pages_as(root)
    form = page.get(f"/admin/auth/user/{alice.pk}/change/").context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None and k != "password"}
    data |= {"is_active": "", "last_login_0": "", "last_login_1": ""}
    data |= {"date_joined_0": "2026-01-01", "date_joined_1": "00:00:00"}
    data["groups"], data["user_permissions"] = [], []
    response = page.post(f"/admin/auth/user/{alice.pk}/change/", data)
    assert response.status_code == 302, response.content.decode()[:3000]
    assert not User.objects.get(username="alice").is_active
    User.objects.filter(username="alice").update(is_active=True)
    assert bearer(token).get("/api/v1/projects").status_code == 401
    assert ApiToken.objects.get(user=alice).status == "revoked"


def test_it_resets_a_password_shown_once(pages_as, root, alice):
    response = pages_as(root).post("/account/users/alice/", {"action": "reset"})
    assert response.status_code == 200
    password = response.context["shown"]["password"]
    assert "New password for alice" in response.content.decode()
    assert can_log_in("alice", password) and not can_log_in("alice", "pw-alice")


def test_a_superuser_cant_deactivate_themself(pages_as, root):
    response = pages_as(root).post("/account/users/root/", {"action": "deactivate"})
    assert response.status_code == 400
    assert "You can't deactivate yourself" in response.content.decode().replace("&#x27;", "'")
    assert User.objects.get(username="root").is_active


def test_only_superusers_reach_the_users_page(pages_as, alice, bob, client):
    alice.is_staff = True  # staff, even Project admin: still not a superuser
    alice.save()
    page = pages_as(alice)
    assert page.get("/account/users/").status_code == 403
    assert page.post("/account/users/", {"username": "mallory"}).status_code == 403
    assert page.post("/account/users/bob/", {"action": "reset"}).status_code == 403
    assert page.post("/account/users/bob/", {"action": "deactivate"}).status_code == 403
    assert not User.objects.filter(username="mallory").exists()
    assert User.objects.get(username="bob").is_active
    assert Client().get("/account/users/").status_code == 302


# The API


def test_the_api_lists_and_creates_users(api_as, root, alice, project):
    client = api_as(root)
    listed = {u["username"]: u for u in client.get("/api/v1/users").json()}
    assert listed["alice"]["projects"] == ["alpha"] and listed["root"]["is_superuser"]
    assert "password" not in listed["alice"]

    made = client.post_json("/api/v1/users", {"username": "dana", "email": "d@example.com"})
    assert made.status_code == 201
    assert can_log_in("dana", made.json()["password"])
    given = client.post_json("/api/v1/users", {"username": "erin", "password": "long-enough-pw"})
    assert given.status_code == 201 and given.json()["password"] is None


def test_the_api_deactivates_and_resets(api_as, root, alice):
    token = api_token_create(user=alice, name="ci").token
    client = api_as(root)
    response = client.patch_json("/api/v1/users/alice", {"is_active": False})
    assert response.status_code == 200 and response.json()["is_active"] is False
    assert response.json()["password"] is None  # never the stored hash
    assert bearer(token).get("/api/v1/projects").status_code == 401

    reset = client.patch_json("/api/v1/users/alice", {"is_active": True, "reset_password": True})
    assert can_log_in("alice", reset.json()["password"])
    assert bearer(token).get("/api/v1/projects").status_code == 401  # revoked for good
    client.patch_json("/api/v1/users/alice", {"password": "chosen-by-root"})
    assert can_log_in("alice", "chosen-by-root")


@pytest.mark.parametrize(
    "method, path, payload, status, field, message",
    [
        ("post", "/api/v1/users", {"username": "alice"}, 409, "username", "already exists"),
        ("post", "/api/v1/users", {"username": "x", "password": "123"}, 400, "password", "short"),
        ("post", "/api/v1/users", {"username": "x", "email": "@"}, 400, "email", "e-mail"),
        ("post", "/api/v1/users", {"username": "x", "is_superuser": True}, 422, "is_superuser", ""),
        ("patch", "/api/v1/users/alice", {"password": "short"}, 400, "password", "too short"),
        ("patch", "/api/v1/users/alice", {"is_active": "no"}, 422, "is_active", "bool"),
        ("patch", "/api/v1/users/root", {"is_active": False}, 400, "is_active", "yourself"),
        (
            "patch",
            "/api/v1/users/alice",
            {"password": "long-enough-pw", "reset_password": True},
            400,
            "password",
            "not both",
        ),
    ],
)
def test_the_api_refuses_bad_input(
    api_as, root, alice, method, path, payload, status, field, message
):
    client = api_as(root)
    before = list(User.objects.order_by("pk").values_list("username", "password", "is_active"))
    response = getattr(client, f"{method}_json")(path, payload)
    assert response.status_code == status, response.content
    assert message in " ".join(response.json()["errors"][field])
    after = list(User.objects.order_by("pk").values_list("username", "password", "is_active"))
    assert after == before


def test_the_api_says_404_for_an_unknown_user(api_as, root):
    response = api_as(root).patch_json("/api/v1/users/nobody", {"is_active": False})
    assert response.status_code == 404 and "nobody" in response.json()["detail"]


def test_only_superusers_use_the_users_api(api_as, alice, bob):
    alice.is_staff = True
    alice.save()
    client = api_as(alice)
    assert client.get("/api/v1/users").status_code == 403
    assert client.post_json("/api/v1/users", {"username": "mallory"}).status_code == 403
    response = client.patch_json("/api/v1/users/bob", {"reset_password": True})
    assert response.status_code == 403 and "Only superusers" in response.json()["detail"]
    assert not User.objects.filter(username="mallory").exists()
    assert Client().get("/api/v1/users").status_code == 401

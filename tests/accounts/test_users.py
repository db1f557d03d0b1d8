"""Users, managed by superusers on /account/users/ and through /api/v1/users."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from aicenter.services import api_token_create

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
    assert bearer(token).get("/api/v1/projects").status_code == 200
    assert can_log_in("alice", "pw-alice")


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

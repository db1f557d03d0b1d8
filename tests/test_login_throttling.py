"""Login throttling (django-axes): 5 failed logins for a username from an address lock that
pair out for the cool-off, with a message on the login page."""

import time
from datetime import timedelta

import pytest

LOCKED = "Too many failed logins; try again in 15 minutes."


@pytest.fixture(autouse=True)
def _default_throttling(settings):
    assert settings.AXES_FAILURE_LIMIT == 5
    assert settings.AXES_COOLOFF_TIME == timedelta(minutes=15)


def log_in(client, username, password, ip="10.0.0.1"):
    return client.post(
        "/login/", {"username": username, "password": password}, REMOTE_ADDR=ip, follow=False
    )


def fail(client, username, times, ip="10.0.0.1"):
    """`times` wrong passwords: the form again, "didn't match", until the 5th locks out."""
    for attempt in range(1, times + 1):
        response = log_in(client, username, "wrong", ip)
        assert response.status_code == (429 if attempt >= 5 else 200)


def test_it_locks_out_after_5_failures_even_with_the_right_password(client, alice):
    fail(client, "alice", 4)
    assert log_in(client, "alice", "pw-alice").status_code == 302  # 4 are allowed
    client.logout()
    fail(client, "alice", 5)

    response = log_in(client, "alice", "pw-alice")

    assert response.status_code == 429
    page = response.content.decode()
    assert LOCKED in page
    assert "didn't match" not in page
    assert 'value="alice"' in page  # the login form is still there, with the username
    assert "_auth_user_id" not in client.session
    assert client.get("/").status_code == 302  # still not logged in


def test_another_user_or_address_is_not_affected(client, alice, bob):
    fail(client, "alice", 5)
    assert log_in(client, "alice", "pw-alice").status_code == 429

    assert log_in(client, "bob", "pw-bob").status_code == 302
    client.logout()
    assert log_in(client, "alice", "pw-alice", ip="10.0.0.2").status_code == 302


def test_it_lets_the_user_in_again_after_the_cool_off(client, alice, settings):
    settings.AXES_COOLOFF_TIME = timedelta(seconds=1)
    fail(client, "alice", 5)
    response = log_in(client, "alice", "pw-alice")
    assert response.status_code == 429
    assert "try again in 1 minute." in response.content.decode()

    time.sleep(1.2)

    assert log_in(client, "alice", "pw-alice").status_code == 302
    assert client.get("/").status_code == 200


def test_the_admin_login_is_throttled_too(client, alice):
    for _ in range(5):
        client.post("/admin/login/", {"username": "alice", "password": "wrong"})

    response = client.post("/admin/login/", {"username": "alice", "password": "pw-alice"})

    assert response.status_code == 429
    assert LOCKED in response.content.decode()


def test_api_tokens_and_sessions_keep_working_for_a_locked_out_user(
    client, alice, api_as, pages_as
):
    fail(client, "alice", 5, ip="127.0.0.1")
    assert log_in(client, "alice", "pw-alice", ip="127.0.0.1").status_code == 429

    assert api_as(alice).get("/api/v1/projects").status_code == 200
    assert pages_as(alice).get("/").status_code == 200


def test_behind_the_tls_proxy_the_client_is_the_address_the_proxy_added(client, alice, settings):
    settings.BEHIND_TLS_PROXY = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    proxy = {"REMOTE_ADDR": "10.9.9.9", "HTTP_X_FORWARDED_PROTO": "https"}
    for _ in range(5):
        # a client can put anything first in X-Forwarded-For; the proxy adds the real address
        forged = f"192.0.2.{_}, 203.0.113.7"
        client.post(
            "/login/",
            {"username": "alice", "password": "wrong"},
            HTTP_X_FORWARDED_FOR=forged,
            **proxy,
        )

    from_there = client.post(
        "/login/",
        {"username": "alice", "password": "pw-alice"},
        HTTP_X_FORWARDED_FOR="203.0.113.7",
        **proxy,
    )
    elsewhere = client.post(
        "/login/",
        {"username": "alice", "password": "pw-alice"},
        HTTP_X_FORWARDED_FOR="198.51.100.1",
        **proxy,
    )

    assert from_there.status_code == 429
    assert elsewhere.status_code == 302

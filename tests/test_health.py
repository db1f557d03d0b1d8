"""GET /healthz, for load balancers: the database, Redis and the storage, each checked for
real; any host name, no login, no https redirect."""

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def test_healthy_answers_200_with_each_part(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert (body["database"], body["redis"], body["storage"]) == ("ok", "ok", "ok")
    assert response["Cache-Control"] == "no-store"
    assert client.head("/healthz/").status_code == 200


def test_a_load_balancer_probing_by_address_over_http_gets_an_answer(settings):
    settings.ALLOWED_HOSTS = ["aicenter.example.com"]
    settings.SECURE_SSL_REDIRECT = True
    probe = Client(HTTP_HOST="10.0.3.7:8000")  # an address, not an allowed host; no https
    assert probe.get("/healthz").status_code == 200
    assert probe.get("/login/").status_code == 400  # the rest of the site still checks hosts


def test_redis_away_is_503_naming_it_and_nothing_secret(client, settings):
    queues = {name: {**config} for name, config in settings.RQ_QUEUES.items()}
    queues["default"]["URL"] = "redis://:hunter2@127.0.0.1:1/0"  # nothing listens there
    settings.RQ_QUEUES = queues
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unhealthy" and body["database"] == "ok"
    assert body["redis"] == "unreachable (ConnectionError)"
    assert (
        "hunter2" not in response.content.decode() and "127.0.0.1" not in response.content.decode()
    )


def test_storage_away_is_503(client, settings):
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": "nothing",
                "endpoint_url": "http://127.0.0.1:1",
                "access_key": "x",
                "secret_key": "y",
            },
        },
    }
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["storage"].startswith("unreachable (")


def test_a_post_is_not_the_health_check(client):
    response = client.post("/healthz")
    assert response.status_code == 404 and b'"status"' not in response.content

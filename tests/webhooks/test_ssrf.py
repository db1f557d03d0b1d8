"""SSRF: a webhook URL must resolve to public addresses only, when it is created and again at
each delivery, and the delivery connects to the address that was checked. Local addresses are
allowed only with AICENTER_WEBHOOKS_ALLOW_LOCAL=true (on in the other tests, off here)."""

import ipaddress

import pytest

from core.events import record
from tests.webhooks.conftest import SECRET, make_webhook, resolving_to
from webhooks.models import Delivery, Webhook
from webhooks.outbound import is_public

API = "/api/v1/projects/alpha/webhooks"


@pytest.fixture
def no_local(settings):
    settings.WEBHOOKS_ALLOW_LOCAL = False


def _create(api, url):
    return api.post_json(API, {"url": url, "events": ["pipeline.finished"], "secret": SECRET})


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://127.1.2.3:8080/hook",
        "http://localhost/",
        "http://0x7f.1/",  # 127.0.0.1 written in hex and short
        "http://2130706433/",  # 127.0.0.1 as one number
        "http://0/",  # 0.0.0.0
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",  # IPv4-mapped IPv6
        "http://[::ffff:10.0.0.1]/",
        "http://[2002:a00:1::]/",  # 6to4 around 10.0.0.1
        "http://10.1.2.3/",
        "http://172.16.0.1/",
        "http://192.168.1.1/",
        "http://169.254.169.254/latest/meta-data/",  # the cloud's metadata service
        "http://[fe80::1]/",
        "http://[fd00::1]/",
        "http://100.64.0.1/",  # carrier-grade NAT
        "http://224.0.0.1/",
        "http://240.0.0.1/",
        "https://[::]/",
    ],
)
def test_it_refuses_a_url_of_a_non_public_address_at_creation(api_as, alice, no_local, url):
    answer = _create(api_as(alice), url)
    assert answer.status_code == 400, answer.json()
    (message,) = answer.json()["errors"]["url"]
    assert "non-public address" in message
    assert "AICENTER_WEBHOOKS_ALLOW_LOCAL=true" in message
    assert not Webhook.objects.exists()


def test_it_refuses_a_host_name_that_resolves_to_a_private_address(
    api_as, alice, no_local, monkeypatch
):
    resolving_to(monkeypatch, "10.0.0.7")
    answer = _create(api_as(alice), "https://hooks.example.com/aicenter")
    assert answer.status_code == 400
    assert answer.json()["errors"]["url"] == [
        "'hooks.example.com' resolves to 10.0.0.7, a loopback, private, link-local or otherwise "
        "non-public address: webhooks only call public addresses (an administrator can allow "
        "local ones with AICENTER_WEBHOOKS_ALLOW_LOCAL=true)."
    ]


def test_it_accepts_a_host_name_of_a_public_address(api_as, alice, no_local, monkeypatch):
    resolving_to(monkeypatch, "93.184.215.14")
    assert _create(api_as(alice), "https://hooks.example.com/aicenter").status_code == 201


def test_with_the_setting_on_a_local_receiver_is_allowed(api_as, alice, settings):
    settings.WEBHOOKS_ALLOW_LOCAL = True
    assert _create(api_as(alice), "http://127.0.0.1:8000/hook").status_code == 201


def test_the_page_refuses_it_too(pages_as, alice, no_local):
    page = pages_as(alice).post(
        "/p/alpha/webhooks/new/",
        {"url": "http://[::ffff:127.0.0.1]/", "events": ["pipeline.failed"], "secret": SECRET},
    )
    assert page.status_code == 400
    assert "non-public address" in page.content.decode()
    assert not Webhook.objects.exists()


def _delivery_of_a_finished_run(project, settings, capture):
    settings.PIPELINE_QUEUE_IMMEDIATE = True
    with capture(execute=True):
        record(
            project=project,
            category="pipeline",
            action="finished",
            object_key=1,
            data={"status": "successful"},
        )
    return Delivery.objects.get()


def test_a_host_that_resolves_to_a_private_address_by_delivery_time_is_not_called(
    project, alice, receiver, no_local, monkeypatch, settings, django_capture_on_commit_callbacks
):
    """Public when the webhook was made; the DNS answer changed since (to the receiver on
    loopback, which stands for anything inside the network): the delivery is refused."""
    resolving_to(monkeypatch, "93.184.215.14", "127.0.0.1")
    make_webhook(project, alice, f"http://hooks.example.com:{receiver.port}/")
    delivery = _delivery_of_a_finished_run(project, settings, django_capture_on_commit_callbacks)
    assert receiver.requests == []
    attempt = delivery.attempt_rows.first()
    assert attempt.status_code is None
    assert "resolves to 127.0.0.1" in attempt.error and "non-public" in attempt.error


def test_the_connection_goes_to_the_address_that_was_checked(
    project, alice, receiver, no_local, monkeypatch, settings, django_capture_on_commit_callbacks
):
    """DNS rebinding: the check sees a public address, a second lookup would give loopback.
    The host is looked up once per attempt and the connection made to what was checked."""
    calls = resolving_to(monkeypatch, "93.184.215.14")
    make_webhook(project, alice, f"http://rebind.example.com:{receiver.port}/")
    calls.clear()
    resolving_to_later = resolving_to(monkeypatch, "93.184.215.14", "127.0.0.1")
    connected_to = []

    def create_connection(address, timeout=None, *args, **kwargs):
        connected_to.append(address)
        raise ConnectionRefusedError("not reachable from the tests")

    monkeypatch.setattr("webhooks.outbound.socket.create_connection", create_connection)
    delivery = _delivery_of_a_finished_run(project, settings, django_capture_on_commit_callbacks)
    # first attempt: one lookup (public), one connection, to that very address
    first, *retries = delivery.attempt_rows.order_by("id")
    assert "ConnectionRefusedError" in first.error
    assert connected_to == [("93.184.215.14", receiver.port)]
    # the retries look it up again (once each): now loopback, refused before connecting
    assert resolving_to_later == ["rebind.example.com"] * (1 + len(retries))
    assert retries and all("resolves to 127.0.0.1" in r.error for r in retries)
    assert receiver.requests == []


def test_redirects_are_not_followed(
    project, alice, receiver, settings, django_capture_on_commit_callbacks
):
    receiver.statuses = [302]
    make_webhook(project, alice, receiver.url)
    delivery = _delivery_of_a_finished_run(project, settings, django_capture_on_commit_callbacks)
    assert len(receiver.requests) == delivery.attempt_rows.count()
    assert delivery.attempt_rows.first().status_code == 302  # a failure, retried as such


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.215.14", True),
        ("2606:2800:21f:cb07:6820:80da:af6b:8b2c", True),
        ("127.0.0.1", False),
        ("::ffff:93.184.215.14", True),
        ("::ffff:192.168.0.1", False),
        ("64:ff9b::a00:1", False),  # NAT64 of 10.0.0.1
        ("2001:0:4136:e378:8000:63bf:f5ff:fffe", False),  # Teredo whose client is 10.0.0.1
        ("192.0.2.1", False),  # documentation
        ("255.255.255.255", False),
        ("ff02::1", False),
    ],
)
def test_which_addresses_are_public(address, public):
    assert is_public(ipaddress.ip_address(address)) is public

"""The Webhooks pages, as a Project admin uses them through the test client: list, create,
edit, delete, Send a test event, a webhook's deliveries; bad input shown at its field; other
roles refused; the secret never on a page after creation."""

import pytest

from tests.webhooks.conftest import SECRET, make_webhook
from webhooks.models import Delivery, Webhook

BASE = "/p/alpha/webhooks/"


def _form(**fields):
    return {
        "url": "http://127.0.0.1:9/hook",
        "events": ["pipeline.failed", "version.created"],
        "secret": SECRET,
        "active": "on",
        **fields,
    }


def test_it_creates_a_webhook_and_shows_it_without_its_secret(pages_as, alice):
    client = pages_as(alice)
    form = client.get(f"{BASE}new/").content.decode()
    assert 'name="secret"' in form and "is not shown again" in form
    answer = client.post(f"{BASE}new/", _form())
    webhook = Webhook.objects.get()
    assert answer.status_code == 302 and answer.url == f"{BASE}{webhook.pk}/"
    assert webhook.events == ["pipeline.failed", "version.created"] and webhook.active
    assert webhook.created_by == alice

    for path in (BASE, f"{BASE}{webhook.pk}/", f"{BASE}{webhook.pk}/edit/"):
        page = client.get(path)
        assert page.status_code == 200
        assert SECRET not in page.content.decode(), path
    detail = client.get(f"{BASE}{webhook.pk}/").content.decode()
    assert "•••• set" in detail and "http://127.0.0.1:9/hook" in detail
    listing = client.get(BASE).content.decode()
    assert "pipeline.failed" in listing and "None yet" in listing


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"url": "ftp://x/"}, "https:// or http://"),
        ({"events": []}, "Choose at least one event."),
        ({"events": ["pipeline.exploded"]}, "Unknown event: pipeline.exploded."),
        ({"secret": "short"}, "at least 16 characters"),
        ({"secret": ""}, "at least 16 characters"),
        ({"url": "", "events": [], "secret": ""}, "A URL is required"),
    ],
)
def test_bad_input_is_shown_at_its_field_and_nothing_is_stored(pages_as, alice, fields, words):
    answer = pages_as(alice).post(f"{BASE}new/", _form(**fields))
    assert answer.status_code == 400
    page = answer.content.decode()
    assert words in page and "The webhook was not saved" in page
    assert not Webhook.objects.exists()


def test_it_edits_a_webhook_keeping_the_secret_unless_a_new_one_is_given(pages_as, alice, project):
    webhook = make_webhook(project, alice, "http://127.0.0.1:9/old")
    client = pages_as(alice)
    answer = client.post(
        f"{BASE}{webhook.pk}/edit/", _form(url="http://127.0.0.1:9/new", secret="", active="")
    )
    assert answer.status_code == 302
    webhook.refresh_from_db()
    assert webhook.url == "http://127.0.0.1:9/new" and webhook.secret == SECRET
    assert not webhook.active
    client.post(f"{BASE}{webhook.pk}/edit/", _form(secret="a-brand-new-secret-1"))
    webhook.refresh_from_db()
    assert webhook.secret == "a-brand-new-secret-1"
    bad = client.post(f"{BASE}{webhook.pk}/edit/", _form(secret="short", events=[]))
    assert bad.status_code == 400
    webhook.refresh_from_db()
    assert webhook.secret == "a-brand-new-secret-1" and webhook.events


def test_send_a_test_event_delivers_a_ping_and_lists_it(
    pages_as, alice, project, receiver, settings, django_capture_on_commit_callbacks
):
    settings.PIPELINE_QUEUE_IMMEDIATE = True
    webhook = make_webhook(project, alice, receiver.url)
    client = pages_as(alice)
    with django_capture_on_commit_callbacks(execute=True):
        answer = client.post(f"{BASE}{webhook.pk}/test/")
    assert answer.status_code == 302
    assert receiver.json()["event"] == "ping"
    page = client.get(f"{BASE}{webhook.pk}/").content.decode()
    assert "ping" in page and "HTTP 200" in page and "Succeeded" in page
    assert "Succeeded" in client.get(BASE).content.decode()


def test_the_deliveries_are_newest_first_and_paginated(pages_as, alice, project):
    webhook = make_webhook(project, alice, "http://127.0.0.1:9/")
    Delivery.objects.bulk_create(
        Delivery(webhook=webhook, event="pipeline.finished", event_id=n) for n in range(30)
    )
    client = pages_as(alice)
    first = client.get(f"{BASE}{webhook.pk}/").content.decode()
    newest, oldest = Delivery.objects.order_by("-id")[0], Delivery.objects.order_by("id")[0]
    assert str(newest.uuid) in first and str(oldest.uuid) not in first
    assert "Page 1 of 2" in first
    second = client.get(f"{BASE}{webhook.pk}/?page=2").content.decode()
    assert str(oldest.uuid) in second


def test_it_deletes_a_webhook(pages_as, alice, project):
    webhook = make_webhook(project, alice, "http://127.0.0.1:9/")
    client = pages_as(alice)
    assert client.get(f"{BASE}{webhook.pk}/delete/").status_code == 405  # a POST only
    answer = client.post(f"{BASE}{webhook.pk}/delete/")
    assert answer.status_code == 302 and answer.url == BASE
    assert not Webhook.objects.exists()


def test_the_settings_page_links_to_webhooks_for_project_admins_only(pages_as, alice, bob):
    assert f'href="{BASE}"' in pages_as(alice).get("/p/alpha/settings/").content.decode()
    assert f'href="{BASE}"' not in pages_as(bob).get("/p/alpha/settings/").content.decode()


@pytest.mark.parametrize("who", ["bob", "vera"])
def test_other_members_are_refused_every_webhook_page(request, pages_as, alice, project, who):
    webhook = make_webhook(project, alice, "http://127.0.0.1:9/")
    client = pages_as(request.getfixturevalue(who))
    for path in ("", "new/", f"{webhook.pk}/", f"{webhook.pk}/edit/"):
        assert client.get(f"{BASE}{path}").status_code == 403, path
    for path in ("new/", f"{webhook.pk}/edit/", f"{webhook.pk}/test/", f"{webhook.pk}/delete/"):
        assert client.post(f"{BASE}{path}", _form(url="http://127.0.0.1:9/x")).status_code == 403
    webhook.refresh_from_db()
    assert webhook.url == "http://127.0.0.1:9/" and Webhook.objects.count() == 1
    assert not Delivery.objects.exists()


def test_an_outsider_gets_not_found(pages_as, alice, charlie, project):
    webhook = make_webhook(project, alice, "http://127.0.0.1:9/")
    client = pages_as(charlie)
    for path in ("", "new/", f"{webhook.pk}/", f"{webhook.pk}/edit/"):
        assert client.get(f"{BASE}{path}").status_code == 404
    assert client.post(f"{BASE}{webhook.pk}/delete/").status_code == 404
    assert Webhook.objects.exists()


def test_logged_out_visitors_are_sent_to_log_in(client, alice, project):
    webhook = make_webhook(project, alice, "http://127.0.0.1:9/")
    answer = client.get(f"{BASE}{webhook.pk}/")
    assert answer.status_code == 302 and answer.url.startswith("/login/")


def test_the_deliveries_poll_only_while_one_is_about_to_be_attempted(pages_as, alice, project):
    from datetime import timedelta

    from django.utils import timezone

    webhook = make_webhook(project, alice, "http://127.0.0.1:9/")
    delivery = Delivery.objects.create(webhook=webhook, event="ping")
    client = pages_as(alice)
    page = client.get(f"{BASE}{webhook.pk}/").content.decode()
    assert 'hx-trigger="every 2s"' in page and "Not attempted yet" in page
    part = client.get(f"{BASE}{webhook.pk}/?part=deliveries", headers={"HX-Request": "true"})
    assert part.content.decode().lstrip().startswith('<section id="deliveries"')
    assert "<html" not in part.content.decode()

    delivery.next_attempt_at = timezone.now() + timedelta(hours=2)  # a retry hours away
    delivery.save()
    assert 'hx-trigger="every 2s"' not in client.get(f"{BASE}{webhook.pk}/").content.decode()
    delivery.status = Delivery.SUCCEEDED
    delivery.next_attempt_at = None
    delivery.save()
    assert 'hx-trigger="every 2s"' not in client.get(f"{BASE}{webhook.pk}/").content.decode()


def test_an_empty_post_says_what_is_missing(pages_as, alice):
    answer = pages_as(alice).post(f"{BASE}new/", {})
    assert answer.status_code == 400
    page = answer.content.decode()
    assert "A URL is required" in page and "Choose at least one event." in page
    assert not Webhook.objects.exists()

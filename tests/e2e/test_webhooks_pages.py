"""The Webhooks pages in Chromium: a Project admin adds a webhook from Settings, sends a test
event, and sees the delivery (made by the real worker to a receiver on loopback) with its
attempt; the form's errors; the e-mail preference page. Screenshots of each page."""

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import shoot
from tests.webhooks.conftest import Receiver
from webhooks.models import Webhook

pytestmark = pytest.mark.django_db(transaction=True)


def _shot(page, name):
    shoot(page, f"webhooks-{name}")  # checks nothing overflows sideways
    page.screenshot(path=f"/tmp/webhooks-{name}.png", full_page=True)


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.server.shutdown()
    server.server.server_close()


def test_a_project_admin_adds_a_webhook_sends_a_test_event_and_sees_the_delivery(
    alice_page, receiver, worker
):
    page = alice_page
    page.goto("/p/alpha/settings/")
    page.get_by_role("link", name="Webhooks").click()
    expect(page.get_by_text("No webhook yet")).to_be_visible()
    _shot(page, "list-empty")

    page.get_by_role("link", name="Add webhook").click()
    secret = page.get_by_label("Secret").input_value()
    assert len(secret) >= 16  # a random one, filled in
    page.get_by_label("Payload URL").fill("ftp://nowhere")
    page.get_by_label("pipeline.failed").uncheck()
    page.get_by_role("button", name="Add webhook").click()
    expect(page.get_by_text("The URL must start with https:// or http://.")).to_be_visible()
    expect(page.get_by_text("Choose at least one event.")).to_be_visible()
    _shot(page, "form-errors")

    page.get_by_label("Payload URL").fill(receiver.url)
    page.get_by_label("pipeline.finished").check()
    page.get_by_label("version.created").check()
    _shot(page, "form")
    page.get_by_role("button", name="Add webhook").click()
    expect(page.get_by_text("Webhook created. Its secret is not shown again.")).to_be_visible()
    expect(page.get_by_text("•••• set")).to_be_visible()
    assert secret not in page.content()
    assert Webhook.objects.get().secret == secret

    page.get_by_role("button", name="Send a test event").click()
    expect(page.get_by_text("A test event (ping) is queued")).to_be_visible()
    # the worker delivers it meanwhile; the deliveries poll while one is about to be attempted
    row = page.locator("table.deliveries tbody tr").first
    expect(row).to_contain_text("HTTP 200", timeout=30_000)
    expect(row).to_contain_text("ping")
    expect(row).to_contain_text("Succeeded")
    expect(row).to_contain_text("HTTP 200")
    assert receiver.json()["event"] == "ping"
    _shot(page, "detail")

    page.get_by_role("link", name="Edit").click()
    expect(page.get_by_label("Secret")).to_have_value("")
    _shot(page, "edit")
    page.get_by_label("Active").uncheck()
    page.get_by_role("button", name="Save").click()
    page.get_by_role("link", name="Webhooks").first.click()
    expect(page.locator("table.webhooks")).to_contain_text("Off")
    expect(page.locator("table.webhooks")).to_contain_text("Succeeded")
    _shot(page, "list")

    page.get_by_role("link", name=re.compile("127.0.0.1")).click()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete").click()
    expect(page.get_by_text("Webhook deleted.")).to_be_visible()
    assert not Webhook.objects.exists()


def test_a_failing_receivers_attempts_are_listed(alice_page, alice, project, receiver, worker):
    from tests.conftest import free_port
    from tests.webhooks.conftest import finished_event, make_webhook

    receiver.statuses = [500]
    failing = make_webhook(project, alice, receiver.url)
    unreachable = make_webhook(project, alice, f"http://127.0.0.1:{free_port()}/gone")
    finished_event(project, run_id=7, status="failed")
    page = alice_page
    page.goto(f"/p/alpha/webhooks/{failing.pk}/")
    # retried after 1 s and 2 s, given up after 4 s (the test settings); the page polls
    expect(page.locator("table.deliveries")).to_contain_text("Failed", timeout=30_000)
    expect(page.locator("table.deliveries .attempt")).to_have_count(3)
    expect(page.locator("table.deliveries")).to_contain_text("HTTP 500")
    _shot(page, "detail-failed")
    page.goto(f"/p/alpha/webhooks/{unreachable.pk}/")
    expect(page.locator("table.deliveries")).to_contain_text("Failed", timeout=30_000)
    expect(page.locator("table.deliveries")).to_contain_text("ConnectionRefusedError")
    _shot(page, "detail-unreachable")
    page.goto("/p/alpha/webhooks/")
    _shot(page, "list-failed")


def test_a_user_chooses_when_to_be_e_mailed(alice_page, alice):
    alice.email = "alice@example.com"
    alice.save()
    page = alice_page
    page.get_by_role("link", name="alice").click()
    expect(page.get_by_role("heading", name="E-mail notifications")).to_be_visible()
    expect(page.get_by_label("Never")).to_be_checked()
    page.get_by_label("When a run of mine fails").check()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Saved.")).to_be_visible()
    expect(page.get_by_label("When a run of mine fails")).to_be_checked()
    _shot(page, "notifications")


def test_a_data_scientist_is_refused_the_webhooks_page(page, bob):
    from tests.e2e.conftest import LANDED, log_in

    log_in(page, "bob", "pw-bob")
    page.wait_for_url(LANDED)
    page.goto("/p/alpha/settings/")
    expect(page.get_by_role("link", name="Webhooks")).to_have_count(0)
    page.goto("/p/alpha/webhooks/")
    expect(page.get_by_role("heading", name="You can't do this")).to_be_visible()
    _shot(page, "refused")

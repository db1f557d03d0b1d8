"""The pages under the Content-Security-Policy, in a real browser: htmx's in-place form, the
confirmations, the admin and the API docs work, and Chromium reports no violation. And the
login page after a lock-out."""

import io

import pytest
from django.conf import settings
from playwright.sync_api import expect

from datasets.services import dataset_create, dataset_file_put
from packages.services import package_create
from tests.conftest import upload
from tests.e2e.conftest import in_place, log_in

pytestmark = [pytest.mark.browser]

SHOTS = settings.BASE_DIR / "test-artifacts" / "screenshots"


@pytest.fixture
def violations(page):
    """What Chromium says about the policy (it reports every refusal on the console)."""
    found = []
    page.on(
        "console",
        lambda message: (
            found.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    return found


@pytest.fixture
def page_errors(page):
    found = []
    page.on("pageerror", lambda error: found.append(str(error)))
    return found


def test_htmx_and_confirmations_work_under_the_policy(
    violations, page_errors, alice_page, alice, project, settings
):
    settings.PREPARE_ENVIRONMENTS = False  # no worker here to build the environment
    page = alice_page
    package_create(project=project, user=alice, name="classifier", file=upload())
    dataset = dataset_create(project=project, user=alice, name="invoices")
    dataset_file_put(user=alice, dataset=dataset, path="train/a.csv", fileobj=io.BytesIO(b"1,2\n"))
    dataset_file_put(user=alice, dataset=dataset, path="notes.txt", fileobj=io.BytesIO(b"n\n"))

    # The create form: each choice is an htmx request that re-renders the form in place.
    page.goto("/p/alpha/pipelines/new/")
    form = page.locator("#pipeline-form")
    in_place(page, lambda: form.get_by_label("Pipeline type").select_option(label="Training run"))
    in_place(page, lambda: form.locator("select[name=package]").select_option("classifier"))
    expect(form.get_by_label("Major version")).to_have_value("1")
    folder = form.locator("select[name=dataset_folder]")
    expect(folder).to_be_disabled()
    in_place(page, lambda: form.get_by_label("Input dataset").select_option("invoices"))
    expect(folder).to_be_enabled()
    expect(folder.locator("option")).to_have_text(["The whole dataset", "train/"])
    in_place(page, lambda: form.get_by_role("button", name="+ Add parameter").click())
    expect(form.locator(".param-row")).to_have_count(3)
    # htmx was told not to add its indicator styles as an inline <style>
    assert page.locator("style").count() == 0

    # <form data-confirm>: cancelled, nothing happens; accepted, the file goes.
    page.goto("/p/alpha/datasets/invoices/")
    delete = page.get_by_role("button", name="Delete notes.txt")
    page.once("dialog", lambda dialog: dialog.dismiss())
    delete.click()
    expect(delete).to_be_visible()
    page.once("dialog", lambda dialog: dialog.accept())
    delete.click()
    expect(page.get_by_role("button", name="Delete notes.txt")).to_have_count(0)
    expect(page.get_by_role("link", name="train")).to_be_visible()

    assert violations == []
    assert page_errors == []


def test_the_admin_and_the_api_docs_work_under_the_policy(violations, alice_page, alice):
    alice.is_staff = alice.is_superuser = True
    alice.save()
    page = alice_page

    page.goto("/admin/")
    expect(page.get_by_role("heading", name="Site administration")).to_be_visible()
    page.goto("/admin/auth/user/")
    page.locator("#action-toggle").check()  # the changelist's actions script runs
    expect(page.locator(".action-counter")).to_contain_text("1 of 1 selected")
    page.goto("/admin/auth/user/add/")
    expect(page.get_by_label("Username:")).to_be_visible()

    # django-rq's queue pages run inline scripts: allowed there, and only there. (Their script
    # then fails on Django 5.2's admin actions.js, "$(...).actions is not a function": django-rq's
    # own incompatibility, not the policy's.)
    page.goto("/admin/rq/queues/0/")
    expect(page.locator("#action-toggle")).to_be_attached()

    page.goto("/api/v1/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("AI Center API")
    expect(page.locator(".opblock").first).to_be_visible()  # the schema was fetched

    assert violations == []


def test_the_login_page_says_when_it_is_locked_out(violations, page, alice):
    SHOTS.mkdir(parents=True, exist_ok=True)
    for _ in range(5):
        log_in(page, "alice", "not-her-password")
        expect(page.get_by_role("alert")).to_be_visible()

    log_in(page, "alice", "pw-alice")

    expect(page.get_by_role("alert")).to_have_text(
        "Too many failed logins; try again in 15 minutes."
    )
    expect(page).to_have_url("/login/")
    expect(page.get_by_label("Username")).to_have_value("alice")
    page.screenshot(path=SHOTS / "login-locked-out.png", full_page=True)
    assert violations == []

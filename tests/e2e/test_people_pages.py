"""The people pages in Chromium: API tokens (made, copied once, revoked), Users (a superuser
creates someone who then logs in), Members (a role changed in its row)."""

import pytest
from django.test import Client
from playwright.sync_api import expect

from core.models import ApiToken, Membership
from tests.e2e.conftest import LANDED, log_in, shoot

pytestmark = [pytest.mark.browser]


def works(token: str) -> bool:
    client = Client(headers={"Authorization": f"Bearer {token}"})
    return client.get("/api/v1/projects").status_code == 200


def test_a_token_is_made_shown_once_copied_and_revoked(alice_page):
    page = alice_page
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.get_by_role("link", name="Tokens").click()
    expect(page.get_by_role("heading", name="API tokens", level=1)).to_be_visible()
    expect(page.get_by_text("No API tokens yet")).to_be_visible()
    shoot(page, "people-tokens-empty")

    page.get_by_label("Name").fill("CI robot")
    page.get_by_label("Expires").select_option(label="In 30 days")
    page.get_by_role("button", name="Create token").click()
    box = page.locator("#new-token")
    expect(box).to_contain_text("you won't see it again")
    token = page.locator("#new-token-value").inner_text().strip()
    assert token.startswith("aic_") and works(token)
    box.get_by_role("button", name="Copy").click()
    expect(box.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == token
    row = page.locator("#tokens tr[data-token='CI robot']")
    expect(row).to_contain_text("Active")
    expect(row).to_contain_text(token[:8])
    shoot(page, "people-tokens-new")
    page.screenshot(path="/tmp/people-tokens-new.png", full_page=True)

    page.goto("/account/tokens/")  # once: never again
    expect(page.locator("#new-token")).to_have_count(0)
    assert token not in page.content()

    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Revoke").click()
    expect(page.get_by_text("Token “CI robot” revoked")).to_be_visible()
    expect(row).to_contain_text("Revoked")
    expect(row.get_by_role("button", name="Revoke")).to_have_count(0)
    assert not works(token)
    shoot(page, "people-tokens-revoked")
    page.screenshot(path="/tmp/people-tokens-revoked.png", full_page=True)


def test_a_bad_token_name_is_said_beside_the_field(alice_page):
    page = alice_page
    page.goto("/account/tokens/")
    page.get_by_label("Name").fill("x" * 100)  # the field stops at 100; the service too
    page.get_by_label("Expires").select_option(label="On a date…")
    page.get_by_label("Last day it works").fill("2001-01-01")
    page.get_by_role("button", name="Create token").click()
    expect(page.locator(".field-errors")).to_contain_text("The expiry date must be in the future")
    expect(page.get_by_label("Name")).to_have_value("x" * 100)
    assert not ApiToken.objects.exists()
    page.screenshot(path="/tmp/people-tokens-error.png", full_page=True)


def test_a_superuser_creates_a_user_who_then_logs_in(page, django_user_model, project, alice):
    django_user_model.objects.create_superuser("root", password="pw-root-long")
    log_in(page, "root", "pw-root-long")
    page.get_by_role("link", name="Users").click()
    expect(page.get_by_role("heading", name="Users", level=1)).to_be_visible()
    expect(page.locator("#users tr[data-user='alice']")).to_contain_text("Alpha")

    form = page.locator("#create-user")
    form.get_by_label("Username").fill("dana")
    form.get_by_label("E-mail").fill("dana@example.com")
    form.get_by_label("First name").fill("Dana")
    form.get_by_label("Last name").fill("Scully")
    form.get_by_role("button", name="Create user").click()
    expect(page.locator("#new-password")).to_contain_text("User dana created")
    expect(page.locator("#new-password")).to_contain_text("you won't see it again")
    password = page.locator("#new-password-value").inner_text().strip()
    expect(page.locator("#users tr[data-user='dana']")).to_contain_text("Dana Scully")
    shoot(page, "people-users-created")
    page.screenshot(path="/tmp/people-users-created.png", full_page=True)

    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("#users tr[data-user='alice']").get_by_role("button", name="Deactivate").click()
    expect(page.locator("#users tr[data-user='alice']")).to_contain_text("Deactivated")
    page.screenshot(path="/tmp/people-users-deactivated.png", full_page=True)

    other = page.context.browser.new_context(base_url=page.url.split("/account")[0])
    person = other.new_page()
    log_in(person, "dana", password)
    expect(person.locator(".topbar-user")).to_have_text("dana")
    expect(person.get_by_role("link", name="Users")).to_have_count(0)
    person.goto("/account/users/")
    expect(person.get_by_role("heading", level=1)).to_have_text("You can't do this")
    expect(person.get_by_text("Only superusers manage users: ask one")).to_be_visible()
    expect(person.get_by_text("Project admin")).to_have_count(0)  # no role to ask for here
    shoot(person, "people-users-refused")
    log_in(person, "alice", "pw-alice")  # deactivated: refused
    expect(person.get_by_role("alert")).to_be_visible()
    other.close()


def test_a_project_admin_changes_a_role_in_its_row(alice_page, bob):
    page = alice_page
    page.goto("/p/alpha/members/")
    page.get_by_label("Role of bob").select_option(label="Viewer")
    page.locator("tr[data-member='bob']").get_by_role("button", name="Change").click()
    expect(page.get_by_label("Role of bob")).to_have_value("viewer")
    assert Membership.objects.get(user=bob).role == Membership.VIEWER

    page.get_by_label("Role of alice").select_option(label="Viewer")
    page.locator("tr[data-member='alice']").get_by_role("button", name="Change").click()
    expect(page.get_by_role("alert")).to_contain_text("alice is the only Project admin")
    shoot(page, "people-members-last-admin")
    page.screenshot(path="/tmp/people-members-last-admin.png", full_page=True)


@pytest.mark.parametrize("width", [1024, 390])
def test_the_people_pages_fit_the_window(page, django_user_model, alice, width):
    django_user_model.objects.create_superuser("root", password="pw-root-long")
    page.set_viewport_size({"width": width, "height": 900})
    log_in(page, "root", "pw-root-long")
    page.wait_for_url(LANDED)
    for url in ("/account/tokens/", "/account/users/", "/p/alpha/members/"):
        page.goto(url)
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{url} is {overflow}px wider than {width}px"
    page.screenshot(path=f"/tmp/people-members-{width}.png", full_page=True)

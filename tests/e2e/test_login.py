import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser]


def test_it_logs_in_through_the_form_after_a_wrong_password(page, alice):
    page.goto("/")
    expect(page).to_have_url("/login/?next=/")

    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill("not-her-password")
    page.get_by_role("button", name="Log in").click()

    expect(page.get_by_role("alert")).to_have_text(
        "Your username and password didn't match. Please try again."
    )
    expect(page.get_by_label("Username")).to_have_value("alice")

    page.get_by_label("Password").fill("pw-alice")
    page.get_by_role("button", name="Log in").click()

    # the site's address asked for the login: she lands in her project, not on the list
    expect(page).to_have_url("/p/alpha/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Alpha Project admin")
    expect(page.locator(".topbar-user")).to_have_text("alice")

"""Shared fixtures for the browser tests: one Chromium per session, a fresh context per test.

Playwright drives Debian's Chromium (never a downloaded one); without it the e2e tests are
skipped with a reason, except under CI=true, where they fail (see `requires`)."""

import re
from pathlib import Path

import pytest
from django.conf import settings
from playwright.sync_api import expect, sync_playwright

from tests.conftest import requires

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
VIEWPORT = {"width": 1366, "height": 900}


@pytest.fixture(scope="session")
def browser():
    requires(
        CHROMIUM.exists(), f"browser tests need Chromium at {CHROMIUM} (apt-get install chromium)"
    )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_server, transactional_db):
    """A blank tab on the live server, in a context of its own (no cookies shared)."""
    context = browser.new_context(
        base_url=live_server.url, viewport=VIEWPORT, accept_downloads=True
    )
    context.set_default_timeout(10_000)
    page = context.new_page()
    yield page
    context.close()


# Where a login lands a member: their project's overview (aicenter/views.py LoginView).
LANDED = re.compile(r"/p/[^/]+/$")


def log_in(page, username, password):
    """Through the real login form, as a person would."""
    page.goto("/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


@pytest.fixture
def alice_page(page, alice):
    """The project admin of Alpha, logged in through the form (password 'pw-alice')."""
    log_in(page, "alice", "pw-alice")
    page.wait_for_url("/p/alpha/")
    return page


def in_place(page, action, form="#pipeline-form"):
    """Do what makes htmx re-render the create form (`form`) in place, and wait until the new
    form is in and htmx has settled it (its selects answer a change only from then on)."""
    page.locator(form).evaluate(
        """form => {
            form.dataset.stale = '1';
            window.__settled = false;
            document.body.addEventListener('htmx:afterSettle', () => { window.__settled = true; },
                                           {once: true});
        }"""
    )
    action()
    page.wait_for_function("() => window.__settled === true")
    expect(page.locator(f"{form}:not([data-stale])")).to_be_attached()


SHOTS = settings.BASE_DIR / "test-artifacts" / "screenshots"


def shoot(page, name):
    """A full-page screenshot at 1366x900, after checking nothing overflows sideways."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_load_state("load")
    page.evaluate("document.activeElement && document.activeElement.blur()")
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"{name}: the page is {overflow}px wider than the window"
    page.screenshot(path=SHOTS / f"{name}.png", full_page=True)

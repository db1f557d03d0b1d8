"""ML Skills in Chromium, with a real skill host (`manage.py skillhost`, sandboxed replicas, the
real Redis): a package version deployed from the create form becomes Available on its page,
answers Try it, and answers the curl line the page shows, copied with its Copy button and run
by curl against the live server. Screenshots of the list, the form and the skill's page in
test-artifacts/screenshots/ (skills-*.png)."""

import json
import re
import subprocess

import pytest
from playwright.sync_api import expect

from packages.services import package_create, package_version_upload
from sandbox import sandbox
from tests.conftest import requires, stop, upload, wait_until
from tests.e2e.conftest import in_place, shoot
from tests.factories import package_zip
from tests.skills.conftest import ECHO, redis_forget_skills, start_skill_host

pytestmark = [pytest.mark.browser]


@pytest.fixture
def skill_host(transactional_db):
    """One skill host on the test database, and no skill keys of an earlier test in Redis."""
    status = sandbox.status()
    requires(status.enabled, f"no sandbox here: {status.problem}")
    redis_forget_skills()
    process = start_skill_host()
    yield process
    stop(process)


def echo_packages(project, user):
    """`echo` (1.0 and 2.0), whose predict answers its input, and `other` (1.0)."""
    main = package_zip(**{"main.py": ECHO})
    echo = package_create(project=project, user=user, name="echo", file=upload(content=main))
    package_version_upload(package=echo, user=user, file=upload(content=main))
    package_create(
        project=project,
        user=user,
        name="other",
        file=upload(content=main),
        description="A second package, to switch the form's package",
    )


def test_a_skill_deployed_from_the_pages_answers_the_curl_line_it_shows(
    alice_page, alice, project, skill_host, live_server
):
    page = alice_page
    echo_packages(project, alice)
    page.goto("/p/alpha/skills/")
    expect(page.get_by_role("heading", name="No ML Skills yet")).to_be_visible()
    expect(page.locator(".sidenav a.active")).to_have_text("ML Skills")
    shoot(page, "skills-empty")

    page.get_by_role("link", name="Create new ML Skill").click()
    page.wait_for_url("**/skills/new/")
    name = page.get_by_label("Name", exact=True)
    name.fill("invoice-echo")
    package = page.locator("select[name=package]")
    in_place(
        page, lambda: package.select_option("other"), "#skill-form"
    )  # htmx reloads the versions
    version = page.locator("select[name=version]")
    expect(version.locator("option")).to_have_text(["1.0 (newest)"])
    expect(name).to_have_value("invoice-echo")  # what was typed stays
    in_place(page, lambda: package.select_option("echo"), "#skill-form")
    expect(version.locator("option")).to_have_text(["2.0 (newest)", "1.0"])
    expect(version).to_have_value("2.0")
    version.select_option("1.0")
    page.get_by_role("checkbox", name="Auto-update").check()
    shoot(page, "skills-form")
    page.get_by_label("Replicas", exact=True).fill("0")
    page.get_by_role("button", name="Deploy").click()
    expect(page.locator(".field-errors")).to_have_text(["Replicas must be from 1 to 16."])
    expect(page.get_by_role("checkbox", name="Auto-update")).to_be_checked()
    shoot(page, "skills-form-error")
    page.get_by_label("Replicas", exact=True).fill("1")
    page.get_by_role("button", name="Deploy").click()
    page.wait_for_url("**/skills/invoice-echo/")

    # the key, shown this once: copied with its button
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    expect(page.locator("#new-key")).to_contain_text("you won't see it again")
    page.locator("#new-key").get_by_role("button", name="Copy").click()
    expect(page.locator("#new-key button[data-copy]")).to_have_text("Copied")
    key = page.evaluate("navigator.clipboard.readText()")
    assert key.startswith("sk-") and key == page.locator("#skill-key").inner_text().strip()
    shoot(page, "skills-new-key")

    badge = page.locator("#skill-status .status-line > .badge")
    expect(badge).to_have_text("Available", timeout=90_000)  # polled every 2 s
    expect(page.locator("#skill-status")).to_contain_text("1 of 1 replica up")

    box = page.get_by_label("Input", exact=True)
    box.fill('{"invoice": 12, "lines": ["paper", "toner"]}')
    page.get_by_role("button", name="Call").click()
    result = page.locator("#try-result")
    expect(result.locator(".badge")).to_have_text("200 OK")
    expect(result.locator("pre")).to_have_text('{"invoice": 12, "lines": ["paper", "toner"]}')
    expect(result).to_contain_text(" ms")

    curl = page.locator("#curl-line")
    expect(curl).to_contain_text('-d \'{"invoice": 12')  # the curl line sends what was tried
    page.locator("#skill-curl").get_by_role("button", name="Copy").click()
    expect(page.locator("#skill-curl").get_by_role("button")).to_have_text("Copied")
    line = page.evaluate("navigator.clipboard.readText()")
    assert line == curl.inner_text().strip()
    assert line.startswith(f"curl -X POST {live_server.url}/api/v1/projects/alpha/skills/")
    assert '-H "X-API-Key: $SKILL_KEY"' in line  # the key itself was shown once, above

    answered = subprocess.run(
        ["bash", "-c", line + " --silent --show-error --fail-with-body"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "SKILL_KEY": key},
    )
    assert answered.returncode == 0, answered.stderr + answered.stdout
    assert json.loads(answered.stdout) == {"invoice": 12, "lines": ["paper", "toner"]}

    box.fill("raise")
    page.get_by_role("button", name="Call").click()
    expect(result.locator(".badge")).to_contain_text("422 Unprocessable")
    expect(result.locator("pre")).to_have_text("ValueError: no such invoice: raise")

    def calls_listed():
        page.reload()
        return page.locator(".recent-calls tbody tr").count() >= 3

    wait_until(calls_listed, 30, "the calls never showed among the recent calls")
    page.reload()  # the calls and the last hour's counts stored in the same tick
    expect(page.locator("#skill-status")).to_contain_text("3 calls, 1 failed")
    box.fill('{"invoice": 12}')
    page.get_by_role("button", name="Call").click()
    expect(result.locator(".badge")).to_have_text("200 OK")
    shoot(page, "skills-detail")
    assert key not in page.content()  # this visit shows only its first characters

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Rotate key").click()
    expect(page.locator("#new-key")).to_contain_text("you won't see it again")
    rotated = page.locator("#skill-key").inner_text().strip()
    assert rotated.startswith("sk-") and rotated != key
    shoot(page, "skills-rotated-key")
    page.reload()
    expect(page.locator("#new-key")).to_have_count(0)
    expect(page.locator("#skill-key-prefix")).to_have_text(rotated[:8] + "…")
    assert rotated not in page.content()

    page.goto("/p/alpha/skills/")
    row = page.locator("table.skills tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Available")
    expect(row.locator("td").nth(4)).to_have_text("1 / 1")
    # three calls, and the one for the screenshot once its tick stored it
    expect(row.locator("td").nth(5)).to_have_text(re.compile(r"^[34] \(1 failed\)$"))
    shoot(page, "skills-list")

    page.goto("/p/alpha/packages/echo/1.0/")
    shoot(page, "skills-version-page")
    page.locator(".version-skills").get_by_role("link", name="invoice-echo").click()
    page.wait_for_url("**/skills/invoice-echo/")
    for width in (1024, 390):  # nothing wider than the window on a laptop or a phone
        page.set_viewport_size({"width": width, "height": 900})
        shoot(page, f"skills-detail-{width}")
    page.set_viewport_size({"width": 1366, "height": 900})

    # the project keeps call inputs from now on: the recent calls show them
    page.goto("/p/alpha/settings/")
    page.get_by_label("Keep the inputs of ML Skill calls").check()
    page.locator("#skill-inputs").get_by_role("button", name="Save").click()
    expect(page.locator("#skill-inputs")).to_contain_text("Inputs kept")
    shoot(page, "skills-settings")
    page.goto("/p/alpha/skills/invoice-echo/")
    expect(page.locator(".recent-calls th", has_text="Input")).to_have_count(1)
    box.fill('{"invoice": 99}')
    page.get_by_role("button", name="Call").click()
    expect(result.locator(".badge")).to_have_text("200 OK")

    def input_listed():
        page.reload()
        return page.locator(".recent-calls .call-input", has_text='{"invoice": 99}').count() == 1

    wait_until(input_listed, 30, "the kept input never showed among the recent calls")

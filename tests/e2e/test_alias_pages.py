"""Version aliases in Chromium: set on the package page (a bad name refused at its field), shown
beside their version, moved and removed; a skill deployed from the form to follow an alias,
then moved with it when the alias moves (the skill host's move is done here by the service a
host's tick calls). Screenshots at 1280 and 390 px wide (88-90)."""

import pytest
from django.conf import settings
from playwright.sync_api import expect

from core.models import Event
from packages.services import package_create, package_version_upload
from skills.models import Skill
from skills.transitions import follow_alias
from tests.conftest import upload
from tests.factories import package_zip
from tests.skills.conftest import ECHO

pytestmark = [pytest.mark.browser]

SHOTS = settings.BASE_DIR / "test-artifacts" / "screenshots"


def shoot(page, name, width):
    page.set_viewport_size({"width": width, "height": 900})
    page.mouse.move(0, 0)
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"{name}: the page is {overflow}px wider than the window"
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SHOTS / f"{name}-{width}.png", full_page=True)


@pytest.fixture
def echo(project, alice):
    """echo 1.0 and 2.0."""
    content = package_zip(**{"main.py": ECHO})
    package = package_create(project=project, user=alice, name="echo", file=upload(content=content))
    package_version_upload(package=package, user=alice, file=upload(content=content))
    return package


def set_alias(page, name, version):
    form = page.locator("form.alias-form")
    form.get_by_label("Alias").fill(name)
    form.get_by_label("Version").select_option(version)
    form.get_by_role("button", name="Set alias").click()


def test_aliases_are_set_moved_and_removed_on_the_package_page(alice_page, echo):
    page = alice_page
    page.goto("/p/alpha/packages/echo/")
    aliases = page.locator("#aliases")
    expect(aliases).to_contain_text("No aliases yet.")

    set_alias(page, "latest", "1.0")
    expect(aliases.locator(".field-errors")).to_contain_text("it means the newest")
    expect(page.locator("form.alias-form").get_by_label("Alias")).to_have_value("latest")

    set_alias(page, "champion", "1.0")
    set_alias(page, "staging", "2.0")
    rows = aliases.locator("tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("champion")
    expect(rows.first).to_contain_text("1.0")
    expect(rows.first).to_contain_text("by alice")
    versions = page.locator("table.table").first
    expect(versions.locator("tr", has_text="1.0").locator(".alias-badge")).to_have_text("champion")
    shoot(page, "88-package-aliases", 1280)
    shoot(page, "88-package-aliases", 390)

    page.set_viewport_size({"width": 1280, "height": 900})
    set_alias(page, "champion", "2.0")  # moved
    expect(rows.first).to_contain_text("2.0")
    page.on("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Remove the alias staging").click()
    expect(rows).to_have_count(1)
    events = Event.objects.filter(action__startswith="alias_").order_by("id")
    actions = list(events.values_list("action", "message"))
    assert actions == [
        ("alias_set", "champion → 1.0"),
        ("alias_set", "staging → 2.0"),
        ("alias_set", "champion → 2.0 (was 1.0)"),
        ("alias_removed", "staging removed (it pointed at 2.0)"),
    ]


def test_a_skill_deployed_from_the_form_follows_an_alias(alice_page, echo):
    page = alice_page
    page.goto("/p/alpha/packages/echo/")
    set_alias(page, "champion", "1.0")
    expect(page.locator("#aliases tbody tr")).to_have_count(1)

    page.goto("/p/alpha/skills/new/")
    page.get_by_label("Name").fill("invoices")
    page.locator("#skill-form select[name=version]").select_option(label="champion (now 1.0)")
    page.get_by_role("button", name="Deploy").click()
    expect(page.locator("h1")).to_contain_text("invoices")
    expect(page.locator(".facts")).to_contain_text("Follows alias champion")
    skill = Skill.objects.get(name="invoices")
    assert (skill.alias, skill.version.number) == ("champion", "1.0")
    expect(page.locator("#skill-change select[name=version]")).to_have_value("alias:champion")
    shoot(page, "89-skill-follows-alias", 1280)

    page.goto("/p/alpha/packages/echo/")
    set_alias(page, "champion", "2.0")
    follow_alias(Skill.objects.get(name="invoices"))  # a skill host's tick
    page.goto("/p/alpha/skills/")
    row = page.locator("table.skills tbody tr", has_text="invoices")
    expect(row).to_contain_text("follows champion")
    expect(row).to_contain_text("2.0")
    shoot(page, "90-skills-list-alias", 390)

    # a version chosen by hand: the skill stops following
    page.goto("/p/alpha/skills/invoices/")
    page.locator("#skill-change select[name=version]").select_option("1.0")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator(".facts")).not_to_contain_text("Follows alias")
    assert Skill.objects.get(name="invoices").alias == ""

"""The ML Logs page in Chromium: the nav link, the table with its category badges and links,
the filters form, Next and the CSV download with the filters kept. Screenshots in
test-artifacts/screenshots/ (mllogs-*.png)."""

import pytest
from playwright.sync_api import expect

from datasets.services import dataset_create
from tests.e2e.conftest import shoot
from tests.governance.test_logs_page import event

pytestmark = [pytest.mark.browser]


def some_history(project, alice, bob):
    """A project's morning: a dataset made, runs started and finished, a skill deployed, 60
    pipeline events in all, and a version refused."""
    dataset_create(project=project, user=alice, name="invoices")  # writes its own event
    for number in range(1, 31):
        event(
            project,
            bob,
            action="created",
            object_key=number,
            object_name=f"Pipeline {number}",
            message=f"Train classifier 1.0 on invoices (run {number})",
        )
        event(
            project,
            None,
            action="finished",
            object_key=number,
            object_name=f"Pipeline {number}",
            message=f"Successful in {number} s",
            data={"status": "successful"},
        )
    event(
        project,
        alice,
        category="skill",
        action="deployed",
        object_type="skill",
        object_key="scorer",
        object_name="scorer",
        message="classifier 1.0 deployed, 1 replica",
    )
    event(
        project,
        bob,
        category="package",
        action="refused",
        object_type="package",
        object_key="broken",
        object_name="broken",
        message="Refused: train.py has no class Main",
        data={"errors": {"file": ["no Main"]}},
    )


def test_a_person_filters_the_logs_pages_through_and_downloads_them(
    alice_page, project, alice, bob
):
    page = alice_page
    some_history(project, alice, bob)
    page.goto("/p/alpha/")
    page.get_by_role("navigation", name="Project").get_by_role("link", name="ML Logs").click()
    expect(page.get_by_role("heading", name="ML Logs")).to_be_visible()
    expect(page.locator("table.logs tbody tr")).to_have_count(50)
    first = page.locator("table.logs tbody tr").first
    expect(first).to_contain_text("Refused: train.py has no class Main")
    expect(first).to_contain_text("UTC")
    shoot(page, "mllogs-list")
    page.screenshot(path="/tmp/mllogs-list.png", full_page=True)

    page.get_by_role("link", name="Next →").click()
    expect(page.locator("table.logs tbody tr")).to_have_count(13)
    expect(page.get_by_role("link", name="← Previous")).to_be_visible()
    expect(page.get_by_role("link", name="invoices", exact=True)).to_have_attribute(
        "href", "/p/alpha/datasets/invoices/"
    )

    page.get_by_label("Category").select_option("pipeline")
    page.get_by_label("Actor").fill("bob")
    page.get_by_label("Search").fill("run 2")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**/logs/?category=pipeline&actor=bob&**")
    rows = page.locator("table.logs tbody tr")
    expect(rows).to_have_count(11)  # runs 2 and 20 to 29
    expect(rows.first).to_contain_text("run 29")
    expect(page.get_by_label("Category")).to_have_value("pipeline")
    shoot(page, "mllogs-filtered")
    page.screenshot(path="/tmp/mllogs-filtered.png", full_page=True)

    with page.expect_download() as download:
        page.get_by_role("link", name="Export CSV").click()
    text = open(download.value.path(), encoding="utf-8-sig").read()
    assert download.value.suggested_filename == "alpha-ml-logs.csv"
    assert text.count("\n") == 12 and "run 29" in text and "Successful" not in text

    page.get_by_label("From", exact=True).fill("2001-01-02")
    page.get_by_label("To", exact=True).fill("2001-01-01")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_text("The end of the time range is before its start.")).to_be_visible()
    shoot(page, "mllogs-bad-range")
    page.screenshot(path="/tmp/mllogs-bad-range.png", full_page=True)

    page.get_by_role("link", name="Clear").click()
    page.get_by_label("Object").fill("scorer")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("table.logs tbody tr")).to_have_count(1)


def test_an_empty_log_says_what_will_appear(alice_page, project):
    alice_page.goto("/p/alpha/logs/")
    expect(alice_page.get_by_role("heading", name="No events yet")).to_be_visible()
    shoot(alice_page, "mllogs-empty")
    alice_page.screenshot(path="/tmp/mllogs-empty.png", full_page=True)

"""Runs' tags, notes and the list's search, in Chromium: a search in MLflow's syntax typed in
the list's box narrows the list (and a bad one is said beside it, at its token); the run page
edits a run's name, Markdown notes and tags, shows them (the Markdown sanitized), and keeps what
was typed when a save is refused. Screenshots at 1280 and 390 px in
test-artifacts/screenshots/ (tracking-*)."""

import time

import pytest
from playwright.sync_api import expect

from pipelines.metrics import metrics_append
from pipelines.run_values import run_code_record
from tests.conftest import classifier_and_invoices, classifier_run
from tests.e2e.conftest import shoot

pytestmark = [pytest.mark.browser]

WIDTHS = {"wide": 1280, "phone": 390}


@pytest.fixture
def runs(project, alice, runs_stay_here):
    """Three queued runs of Alice's (no worker takes them) with an accuracy and a team."""
    classifier_and_invoices(project, alice)
    made = []
    for accuracy, team in ((0.95, "vision"), (0.8, "vision"), (0.99, "nlp")):
        run = classifier_run(project, alice, parameters={"n_estimators": "200"})
        metrics_append(run.pk, {"accuracy": [(0, accuracy, time.time())]})
        run_code_record(run.pk, tags={"team": team, "data": "invoices-2026"}, note=print)
        made.append(run)
    return made


def both_widths(page, name):
    for label, width in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": 900})
        shoot(page, f"{name}-{label}")
    page.set_viewport_size({"width": 1280, "height": 900})


def test_the_search_box_narrows_the_list_and_says_what_it_cant_read(alice_page, runs):
    page = alice_page
    page.goto("/p/alpha/pipelines/")
    rows = page.locator("#runs tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.last.locator(".tag-list")).to_contain_text("vision")  # newest first
    box = page.get_by_role("searchbox", name="Search")
    box.fill('metrics.accuracy > 0.9 and tags.team = "vision"')
    box.press("Enter")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(f"#{runs[0].pk}")
    assert "filter=metrics.accuracy" in page.url  # a link to this search
    both_widths(page, "tracking-search")

    box.fill("metrics.accuracy is 0.9")
    box.press("Enter")
    error = page.locator(".search-error")
    expect(error).to_contain_text("at position 18, found 'is'")
    expect(box).to_have_value("metrics.accuracy is 0.9")  # kept, to be corrected
    both_widths(page, "tracking-search-error")

    page.goto("/p/alpha/pipelines/?filter=" + "status%20%3D%20%27queued%27")  # a shared link
    expect(rows).to_have_count(3)


def test_the_run_page_edits_name_notes_and_tags(alice_page, runs):
    page = alice_page
    run = runs[0]
    page.goto(f"/p/alpha/pipelines/{run.pk}/")
    page.get_by_text("Edit name, notes and tags").click()
    page.get_by_label("Name").fill("baseline, 200 trees")
    page.get_by_role("textbox", name="Notes").fill(
        "## Why\n\nMore **trees** than [last time](https://example.com/runs/1).\n\n"
        "<script>document.title='owned'</script>[click](javascript:alert(1))\n\n"
        "| metric | value |\n|---|---|\n| accuracy | 0.95 |"
    )
    page.get_by_label("Tag key").nth(2).fill("stage")
    page.get_by_label("Tag value").nth(2).fill("dev")
    page.get_by_label("Tag key").nth(0).fill("")  # removes `data`
    page.get_by_label("Tag value").nth(0).fill("")
    page.get_by_role("button", name="Save").click()

    expect(page.locator("h1")).to_contain_text("baseline, 200 trees")
    notes = page.locator(".run-notes .notes")
    expect(notes.locator("h2")).to_have_text("Why")
    expect(notes.locator("strong")).to_have_text("trees")
    expect(notes.locator("table td").first).to_have_text("accuracy")
    assert notes.locator("script").count() == 0
    assert notes.locator("[href^='javascript']").count() == 0
    expect(notes.get_by_role("link", name="last time")).to_have_attribute(
        "href", "https://example.com/runs/1"
    )
    assert page.title() != "owned"
    tags = page.locator(".run-notes .tag-list")
    expect(tags).to_contain_text("stage")
    expect(tags).not_to_contain_text("invoices-2026")
    both_widths(page, "tracking-notes")

    page.get_by_text("Edit name, notes and tags").click()
    page.get_by_label("Tag key").nth(3).fill("")
    page.get_by_label("Tag value").nth(3).fill("orphan value")
    page.get_by_role("textbox", name="Notes").fill("kept as typed")
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".edit-run .field-errors")).to_contain_text("'orphan value' has no key")
    expect(page.get_by_role("textbox", name="Notes")).to_have_value("kept as typed")
    expect(notes.locator("h2")).to_have_text("Why")  # nothing saved
    both_widths(page, "tracking-notes-error")

    page.goto("/p/alpha/pipelines/?filter=tags.stage%20%3D%20%22dev%22")
    expect(page.locator("#runs tbody tr")).to_have_count(1)
    expect(page.locator("#runs tbody tr").first).to_contain_text("baseline, 200 trees")

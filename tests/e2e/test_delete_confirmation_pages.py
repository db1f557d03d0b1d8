"""Deleting a dataset or package that unfinished runs use: the user sees which runs, with
links, before anything is confirmed; once they finished it deletes, and they keep their
history. Also the pages that show runs in context (Overview, Recurring), screenshot each."""

import re

import pytest
from django.conf import settings
from playwright.sync_api import expect

from datasets.models import Dataset
from packages.models import Package
from pipelines.schedules import schedule_create
from pipelines.services import pipeline_run_create, pipeline_run_kill
from pipelines.when import When
from tests.conftest import classifier_and_invoices

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("runs_stay_here")]

SHOTS = settings.BASE_DIR / "test-artifacts" / "screenshots"
INPUTS = {"type": "train", "package": "classifier", "version": "1.0", "dataset": "invoices"}


def shoot(page, name):
    """A full-page screenshot, after checking nothing overflows sideways."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_load_state("load")
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"{name}: the page is {overflow}px wider than the window"
    page.screenshot(path=SHOTS / f"{name}.png", full_page=True)


@pytest.fixture
def used(project, alice):
    """A package and a dataset, and a killed run on them named 'nightly retrain'."""
    classifier_and_invoices(project, alice)
    run = pipeline_run_create(project=project, user=alice, name="nightly retrain", **INPUTS)
    return pipeline_run_kill(run=run, user=alice)


@pytest.fixture
def live(project, alice):
    """A package and a dataset, and a queued run on them named 'nightly retrain'."""
    classifier_and_invoices(project, alice)
    return pipeline_run_create(project=project, user=alice, name="nightly retrain", **INPUTS)


def kill_run(page, run):
    page.goto(f"/p/alpha/pipelines/{run.pk}/")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Kill", exact=True).click()
    expect(page.locator(".badge", has_text="Killed").first).to_be_visible()


def the_run_keeps_its_history(page, run, marked, name):
    """The run's page names what was deleted, links nowhere, and offers no Retry."""
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(f"/p/alpha/pipelines/{run.pk}/")
        expect(page.locator("dl.facts")).to_contain_text(marked)
        expect(page.get_by_role("button", name="Retry")).to_have_count(0)
        shoot(page, f"{name}-{width}")


def test_deleting_a_package_shows_the_unfinished_runs_that_use_it_first(alice_page, live):
    page, run = alice_page, live
    dialogs = []
    page.on("dialog", lambda dialog: dialogs.append(dialog.message))

    page.goto("/p/alpha/packages/classifier/")
    page.get_by_role("link", name="Delete package").click()
    expect(page).to_have_url("/p/alpha/packages/classifier/delete/")
    expect(page.get_by_role("heading", level=2)).to_have_text(
        "1 unfinished pipeline run uses the package classifier"
    )
    expect(page.get_by_role("button", name="Delete package")).to_have_count(0)
    shoot(page, "160-package-delete-used-by-runs")
    assert dialogs == []  # nothing was asked: nothing can be deleted yet

    page.get_by_role("link", name=f"#{run.pk}").click()
    expect(page).to_have_url(f"/p/alpha/pipelines/{run.pk}/")
    kill_run(page, run)

    page.goto("/p/alpha/packages/classifier/")
    page.get_by_role("link", name="Delete package").click()
    expect(page.get_by_role("heading", level=2)).to_have_text("Delete the package classifier?")
    expect(page.locator("section.card")).to_contain_text(
        "1 finished pipeline run used it: it keeps its history"
    )
    shoot(page, "161-package-delete-confirm")
    page.get_by_role("button", name="Delete package").click()
    expect(page).to_have_url("/p/alpha/packages/")
    assert not Package.objects.filter(name="classifier").exists()
    the_run_keeps_its_history(page, run, "(package deleted)", "165-run-of-a-deleted-package")
    expect(page.get_by_role("link", name="Run again")).to_have_count(0)


def test_deleting_a_dataset_that_unfinished_runs_use_lists_them_with_links(alice_page, live):
    page, run = alice_page, live
    page.goto("/p/alpha/datasets/invoices/delete/")
    expect(page.get_by_role("heading", level=2)).to_have_text(
        "1 unfinished pipeline run uses the dataset invoices"
    )
    expect(page.locator("table.runs")).to_contain_text("nightly retrain")
    shoot(page, "162-dataset-delete-used-by-runs")

    # the browse page's button leads to the same list, before anything is confirmed
    page.goto("/p/alpha/datasets/invoices/")
    page.get_by_role("link", name="Delete dataset").click()
    expect(page.get_by_role("heading", level=2)).to_have_text(
        "1 unfinished pipeline run uses the dataset invoices"
    )
    page.get_by_role("link", name=f"#{run.pk}").click()
    expect(page).to_have_url(f"/p/alpha/pipelines/{run.pk}/")
    kill_run(page, run)

    page.goto("/p/alpha/datasets/invoices/delete/")
    expect(page.get_by_role("heading", level=2)).to_have_text("Delete the dataset invoices?")
    page.get_by_role("button", name="Delete dataset").click()
    expect(page).to_have_url("/p/alpha/datasets/")
    assert not Dataset.objects.filter(name="invoices").exists()
    the_run_keeps_its_history(page, run, "invoices (deleted)", "166-run-of-a-deleted-dataset")
    expect(page.get_by_role("link", name="Run again")).to_have_count(1)


def test_the_overview_and_recurring_pages_show_runs(alice_page, used, project, alice):
    page = alice_page
    when = When(kind="recurring", every=1, unit="days")
    nightly = schedule_create(project=project, user=alice, when=when, name="nightly", inputs=INPUTS)
    for _ in range(2):
        run = pipeline_run_create(project=project, user=alice, schedule=nightly, **INPUTS)
        pipeline_run_kill(run=run, user=alice)

    page.goto("/p/alpha/")
    card = page.locator("section.card", has=page.get_by_role("heading", name="Recent runs"))
    expect(card.locator("tbody tr")).to_have_count(3)
    expect(card.locator("tbody tr").last).to_contain_text("nightly retrain")
    shoot(page, "163-overview-recent-runs")

    page.goto("/p/alpha/pipelines/recurring/")
    link = page.get_by_role("link", name="2 runs")
    expect(link).to_have_attribute("href", re.compile(rf"\?schedule={nightly.pk}$"))
    shoot(page, "164-recurring-run-counts")
    link.click()
    expect(page.locator("table.runs tbody tr")).to_have_count(2)

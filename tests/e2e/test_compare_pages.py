"""Compare in Chromium: real runs with different parameters log their curves through
metrics_file; two are ticked in the pipelines list and compared; the differing parameters are
highlighted and each metric is one chart with a line per run; the page's link, opened by
someone else, shows the same comparison. Screenshots of the list with a metric column and of
the Compare page, checked for overflow at two window widths."""

import io
import re

import pytest
from django.conf import settings
from django.utils.text import Truncator
from playwright.sync_api import expect

from datasets.services import dataset_create, dataset_file_put
from packages.services import package_create
from pipelines.models import PipelineRun
from pipelines.services import pipeline_run_create
from tests.conftest import upload
from tests.e2e.conftest import LANDED, log_in
from tests.factories import package_zip

pytestmark = [pytest.mark.browser]

SHOTS = settings.BASE_DIR / "test-artifacts" / "screenshots"

# The curves depend on the run's learning_rate; logged with no dependency, as the README shows.
TRAIN = """\
import json
import math
import os


class Main:
    def __init__(self):
        self.rate = float(os.environ["learning_rate"])

    def process_data(self, input_directory):
        pass

    def train(self, data_directory):
        with open(os.environ["metrics_file"], "a") as metrics:
            for step in range(40):
                loss = 0.1 + 0.9 * math.exp(-self.rate * step) + 0.02 * math.sin(step)
                metrics.write(json.dumps({"name": "loss", "value": loss}) + "\\n")
                accuracy = 0.95 - 0.45 * math.exp(-self.rate * step)
                metrics.write(json.dumps({"name": "accuracy", "value": accuracy}) + "\\n")

    def evaluate(self, evaluation_directory):
        return round(0.95 - 0.45 * math.exp(-self.rate * 40), 4)

    def save(self):
        with open("model.txt", "w") as model:
            model.write("weights")
"""


def _package_and_dataset(project, user):
    package_create(
        project=project,
        user=user,
        name="classifier",
        file=upload(content=package_zip(**{"train.py": TRAIN})),
    )
    dataset = dataset_create(project=project, user=user, name="invoices")
    dataset_file_put(user=user, dataset=dataset, path="a.csv", fileobj=io.BytesIO(b"1,2\n"))


def _runs(project, user, rates):
    """Full pipeline runs (train, then evaluate: a score), executed as they are created (the
    queue's immediate mode: the real runner in this process, nothing in Redis for another
    test's worker)."""
    _package_and_dataset(project, user)
    runs = []
    for rate in rates:
        settings.PIPELINE_QUEUE_IMMEDIATE = True
        try:
            run = pipeline_run_create(
                project=project,
                user=user,
                name=f"lr {rate}",
                type="full",
                package="classifier",
                version="1.0",
                dataset="invoices",
                parameters={"learning_rate": str(rate), "epochs": "40"},
            )
        finally:
            settings.PIPELINE_QUEUE_IMMEDIATE = False
        run.refresh_from_db()
        assert run.status == "successful", run.failure_reason
        runs.append(run)
    return runs


def shoot(page, name):
    """A full-page screenshot for a person to look at, once the page fits its window."""
    page.wait_for_load_state("load")
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"{name}: the page is {overflow}px wider than the window"
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SHOTS / f"{name}.png", full_page=True)


def chart_labels(page, metric):
    """The labels in the legend of one metric's chart, once it is drawn."""
    chart = page.locator(f'[data-compare-metric="{metric}"]')
    expect(chart.locator("canvas")).to_have_count(1)
    return chart.locator(".u-legend .u-series .u-label").all_inner_texts()


def test_two_runs_ticked_in_the_list_compared_side_by_side(
    alice_page, alice, bob, project, browser, live_server, settings
):
    page = alice_page
    fast, slow, slowest = _runs(project, alice, [0.3, 0.1, 0.05])

    page.goto("/p/alpha/pipelines/?metric=loss&sort=metric")
    rows = page.locator("table.runs tbody tr")
    expect(rows).to_have_count(3)
    # the metric column: each run's last loss, lowest first
    expect(page.locator("table.runs th", has_text="loss")).to_have_attribute(
        "aria-sort", "ascending"
    )
    expect(rows.first).to_contain_text(f"#{fast.pk}")
    shoot(page, "70-pipelines-metric-column")

    compare = page.get_by_role("button", name="Compare")
    expect(compare).to_be_disabled()
    page.get_by_label(f"Compare run #{fast.pk}").check()
    expect(compare).to_be_disabled()
    expect(page.locator(".compare-hint")).to_have_text("Tick one more run")
    page.get_by_label(f"Compare run #{slowest.pk}").check()
    expect(compare).to_be_enabled()
    expect(page.locator(".compare-hint")).to_have_text("2 runs ticked")
    compare.click()

    # in the list's order (lowest loss first); ids=…&ids=… becomes the shareable ids=a,b
    shared = f"/p/alpha/pipelines/compare/?ids={fast.pk},{slowest.pk}"
    expect(page).to_have_url(shared)
    table = page.locator("table.compare")
    runs = ["Run", f"#{fast.pk} lr 0.3", f"#{slowest.pk} lr 0.05"]
    expect(table.locator("thead th")).to_have_text(runs)
    rate = table.locator("tr", has=page.locator("th code", has_text="learning_rate"))
    expect(rate).to_have_class("differs")
    expect(rate.locator("td")).to_have_text(["0.3", "0.05"])
    epochs = table.locator("tr", has=page.locator("th code", has_text="epochs"))
    expect(epochs).not_to_have_class("differs")
    # the best score and the lowest last loss are the faster learner's
    expect(table.locator("tr.score-row td.best")).to_contain_text(str(fast.score))
    loss = table.locator("tr", has=page.locator("th code", has_text=re.compile("^loss$")))
    expect(loss.locator("td").first).to_have_class(re.compile(r"\bbest\b"))
    expect(loss.locator("td").nth(1)).not_to_have_class(re.compile(r"\bbest\b"))
    # one chart per metric, a line per run in each, labelled by run
    # (not the score: one point a run, all in the table)
    expect(page.locator("[data-compare-metric]")).to_have_count(2)
    labels = runs[1:]
    assert chart_labels(page, "loss") == ["Step", *labels]
    assert chart_labels(page, "accuracy") == ["Step", *labels]
    shoot(page, "71-compare")

    page.get_by_role("link", name="Only differences").click()
    expect(page).to_have_url(re.compile(r"only=differences"))
    expect(table.locator("th code", has_text="epochs")).to_have_count(0)
    expect(table.locator("th code", has_text="learning_rate")).to_have_count(1)

    # The link, opened by another member in a browser of their own, shows the same page.
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1024, "height": 800})
    other = context.new_page()
    try:
        log_in(other, "bob", "pw-bob")
        other.wait_for_url(LANDED)
        other.goto(shared)
        expect(other.locator("table.compare thead th")).to_have_text(runs)
        expect(
            other.locator("tr.differs", has=other.locator("th code", has_text="learning_rate"))
        ).to_have_count(1)
        assert chart_labels(other, "loss") == ["Step", *labels]
        shoot(other, "72-compare-1024")
        other.goto("/p/alpha/pipelines/?metric=loss")
        shoot(other, "73-pipelines-metric-column-1024")
    finally:
        context.close()


def test_ticks_survive_the_lists_live_updates(alice_page, alice, project, runs_stay_here):
    """Queued runs (never taken: nothing reaches Redis) keep the list polling every second; a
    tick stays through the updates, and runs with no metrics compare without charts."""
    page = alice_page
    _package_and_dataset(project, alice)
    first, second = (
        pipeline_run_create(
            project=project,
            user=alice,
            type="train",
            package="classifier",
            version="1.0",
            dataset="invoices",
            parameters={"learning_rate": rate},
        )
        for rate in ("0.1", "0.2")
    )
    page.goto("/p/alpha/pipelines/")
    expect(page.locator("#runs")).to_have_attribute("hx-trigger", "every 1s")
    page.get_by_label(f"Compare run #{first.pk}").check()
    page.evaluate(
        """() => { window.__swaps = 0;
                   document.body.addEventListener('htmx:afterSettle', () => window.__swaps++); }"""
    )
    page.wait_for_function("() => window.__swaps >= 2")  # the table was replaced twice
    expect(page.get_by_label(f"Compare run #{first.pk}")).to_be_checked()
    expect(page.get_by_label(f"Compare run #{second.pk}")).not_to_be_checked()
    page.get_by_label(f"Compare run #{second.pk}").check()
    page.get_by_role("button", name="Compare").click()
    expect(page).to_have_url(f"/p/alpha/pipelines/compare/?ids={second.pk},{first.pk}")
    expect(page.locator("table.compare")).to_contain_text("None of these runs logged metrics.")
    expect(page.locator("table.compare .badge").first).to_have_text("Queued")
    expect(page.locator("[data-compare-metric]")).to_have_count(0)


def test_ten_runs_scroll_sideways_in_their_box_with_the_rows_names_in_sight(
    alice_page, alice, project, settings
):
    page = alice_page
    runs = _runs(project, alice, [0.3, 0.25, 0.2, 0.15, 0.1, 0.08, 0.06, 0.05, 0.04, 0.03])
    long_name = "the nightly retraining of the invoice model, with the new vendors"
    PipelineRun.objects.filter(pk=runs[0].pk).update(name=long_name)
    page.goto(f"/p/alpha/pipelines/compare/?ids={','.join(str(run.pk) for run in runs)}")
    # the legend cuts a long name (the table has it whole)
    label = Truncator(f"#{runs[0].pk} {long_name}").chars(36)  # 36 characters, whatever the id
    assert chart_labels(page, "loss")[1] == label and label.endswith("…")
    expect(page.locator("table.compare thead")).to_contain_text(long_name)
    shoot(page, "74-compare-10-runs")
    box = page.locator(".compare-scroll")
    assert box.evaluate("el => el.scrollWidth > el.clientWidth")  # the table scrolls, not the page
    box.evaluate("el => { el.scrollLeft = el.scrollWidth; }")
    name = page.locator("table.compare th[scope=row]", has_text="learning_rate")
    assert abs(name.bounding_box()["x"] - box.bounding_box()["x"]) < 2
    section = page.locator("table.compare tr.section .label").first
    assert 0 <= section.bounding_box()["x"] - box.bounding_box()["x"] < 30
    expect(page.locator(f'a[href="/p/alpha/pipelines/{runs[-1].pk}/"]')).to_be_in_viewport()

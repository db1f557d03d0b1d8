"""Metrics in Chromium, from real runs on the real worker: the run page's Metrics card shows a
run's two curves while it runs (before the test lets it go on), all their points once it has
ended, the summary table, and then stops polling; the package page charts the scores of two
trained versions. Screenshots in test-artifacts/screenshots/ (60-63)."""

import io
import re
import time

import pytest
from django.conf import settings
from playwright.sync_api import expect

from aicenter.templatetags.aicenter import metric
from datasets.services import dataset_create, dataset_file_put
from packages.services import package_create
from pipelines.models import PipelineRun
from pipelines.services import pipeline_run_create
from tests.conftest import upload, wait_for, wait_until
from tests.metrics_package import metrics_package_zip

pytestmark = [pytest.mark.browser]

SHOTS = settings.BASE_DIR / "test-artifacts" / "screenshots"

# What the package logs at each step (tests/metrics_package.py), 40 steps
LOSS = [round(2.0 * 0.93**step + 0.05, 6) for step in range(40)]
ACCURACY = [round(0.95 - 0.6 * 0.9**step, 6) for step in range(40)]


@pytest.fixture
def go(alice, project, tmp_path):
    """Alice's package `scorer` (its runs log 5 points of each curve, then wait for the file
    `go`) and dataset `invoices`, made through the services."""
    gate = tmp_path / "go"
    content = metrics_package_zip(go=gate, first=5, steps=40)
    package_create(project=project, user=alice, name="scorer", file=upload(content=content))
    dataset = dataset_create(project=project, user=alice, name="invoices")
    dataset_file_put(user=alice, dataset=dataset, path="a.csv", fileobj=io.BytesIO(b"1,2\n"))
    yield gate
    gate.touch()  # should the test stop half-way, the session's worker is not kept waiting


def start(project, user, score):
    return pipeline_run_create(
        project=project,
        user=user,
        type="full",
        package="scorer",
        version="1.0",
        dataset="invoices",
        parameters={"score": score},
    )


def shoot(page, name):
    """A full-page screenshot, the mouse away, after checking nothing overflows sideways."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.mouse.move(0, 0)
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"{name}: the page is {overflow}px wider than the window"
    page.screenshot(path=SHOTS / f"{name}.png", full_page=True)


def legend_at_right_end(page, chart):
    """The legend's values ([x, y]) with the mouse on the chart's last point (a person reading
    the curve's end)."""
    return legend_at(page, chart, 1.0)


def legend_at(page, chart, where):
    """The legend's values with the mouse at `where` (0: left end, 1: right end) of the plot."""
    plot = chart.locator(".u-over")
    plot.scroll_into_view_if_needed()
    page.mouse.move(0, 0)
    box = plot.bounding_box()
    page.mouse.move(box["x"] + 1 + where * (box["width"] - 2), box["y"] + box["height"] / 2)
    page.evaluate("() => new Promise(requestAnimationFrame)")
    return chart.locator(".u-legend .u-value").all_inner_texts()


def summary(page):
    rows = page.locator("#metric-summary tbody tr")
    return [row.locator("th, td").all_inner_texts() for row in rows.all()]


def test_the_metrics_card_follows_a_run_live_then_shows_every_point(
    alice_page, alice, project, go, worker
):
    page = alice_page
    problems = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("console", lambda m: m.type == "error" and problems.append(m.text))  # CSP, too
    asked = []
    page.on("request", lambda r: "/metrics" in r.url and asked.append((time.monotonic(), r.url)))

    run = start(project, alice, "0.81")
    page.goto(f"/p/alpha/pipelines/{run.pk}/")
    badge = page.locator("#run-status .status-line .badge")
    card = page.locator("#run-metrics")
    expect(badge).to_have_text("Running", timeout=30_000)

    # While it runs: five points of each curve, a chart each, in name order.
    charts = card.locator(".metric-chart")
    expect(charts).to_have_count(2, timeout=10_000)
    expect(charts.locator("figcaption")).to_have_text(["accuracy", "loss"])
    loss, accuracy = charts.nth(1), charts.nth(0)
    assert legend_at_right_end(page, loss) == ["4", metric(LOSS[4])]
    assert legend_at_right_end(page, accuracy) == ["40", metric(ACCURACY[4])]
    expect(card.locator("#metric-summary tbody tr", has_text="loss")).to_contain_text("5")
    assert summary(page) == [
        ["accuracy", metric(ACCURACY[4]), metric(ACCURACY[0]), metric(ACCURACY[4]), "5"],
        ["loss", metric(LOSS[4]), metric(LOSS[4]), metric(LOSS[0]), "5"],
    ]
    run.refresh_from_db()
    assert run.status == PipelineRun.RUNNING  # all of that before the go-ahead
    shoot(page, "60-pipeline-metrics-running")

    # Let it go on: the card ends with every point, and the score evaluate() gave.
    go.touch()
    expect(badge).to_have_text("Successful", timeout=30_000)
    expect(page.locator("#run-status")).to_have_attribute("data-settled", "true", timeout=10_000)
    wait_until(
        lambda: legend_at_right_end(page, loss) == ["39", metric(LOSS[39])],
        timeout=10,
        message="the loss chart never showed its last point",
    )
    assert legend_at_right_end(page, accuracy) == ["390", metric(ACCURACY[39])]
    expect(card.locator("#metric-summary tbody tr")).to_have_count(3)
    assert summary(page) == [
        ["accuracy", metric(ACCURACY[39]), metric(ACCURACY[0]), metric(ACCURACY[39]), "40"],
        ["loss", metric(LOSS[39]), metric(LOSS[39]), metric(LOSS[0]), "40"],
        ["score", "0.81", "0.81", "0.81", "1"],
    ]
    expect(charts).to_have_count(2)  # one point (the score) is no curve
    width = loss.locator(".chart").evaluate("chart => chart.clientWidth")
    drawn = [url for _, url in asked if "max_points=" in url]
    assert re.search(rf"max_points={width}$", drawn[-1]), (width, drawn[-1])

    # Finished: nothing polls any more.
    time.sleep(1)
    settled_at = time.monotonic()
    time.sleep(5)
    assert [url for moment, url in asked if moment > settled_at] == []
    shoot(page, "61-pipeline-metrics")

    # A narrow window: the charts go one under the other, as wide as the card, nothing wider.
    page.set_viewport_size({"width": 600, "height": 900})
    wait_until(
        lambda: loss.locator("canvas").evaluate("c => c.getBoundingClientRect().width") < 560,
        timeout=5,
        message="the charts kept their width in a narrow window",
    )
    boxes = [chart.bounding_box() for chart in charts.all()]
    assert boxes[0]["y"] + boxes[0]["height"] <= boxes[1]["y"]  # one under the other
    assert legend_at_right_end(page, loss) == ["39", metric(LOSS[39])]
    shoot(page, "61-pipeline-metrics-narrow")
    assert problems == []


def test_a_run_without_metrics_says_how_to_log_them_and_shows_its_logged_parameters(
    alice_page, alice, project, settings
):
    classifier = package_create(project=project, user=alice, name="classifier", file=upload())
    dataset = dataset_create(project=project, user=alice, name="invoices")
    dataset_file_put(user=alice, dataset=dataset, path="a.csv", fileobj=io.BytesIO(b"1,2\n"))
    settings.PIPELINE_QUEUE_IMMEDIATE = True  # run here as it is created: no worker needed
    run = pipeline_run_create(
        project=project,
        user=alice,
        type="train",
        package=classifier.name,
        version="1.0",
        dataset="invoices",
        parameters={"epochs": "3"},
    )
    run.refresh_from_db()
    assert run.status == PipelineRun.SUCCESSFUL, run.failure_reason
    # what MLflow's log_params gives (the whole way, with mlflow-skinny: test_metrics_mlflow.py)
    run.logged_params = {"optimizer": "adam", "learning_rate": "0.01", "layers": "3"}
    run.save(update_fields=["logged_params"])
    page = alice_page
    page.goto(f"/p/alpha/pipelines/{run.pk}/")
    empty = page.locator("#run-metrics .metrics-empty")
    expect(empty).to_contain_text("This run logged no metrics")
    expect(empty).to_contain_text("metrics_file")
    expect(page.locator("#run-metrics .metric-chart")).to_have_count(0)
    inputs = page.locator(".card", has=page.get_by_role("heading", name="Parameters", exact=True))
    logged = page.locator(".logged-params")
    expect(inputs.locator("tr", has_text="epochs")).to_contain_text("3")
    expect(logged.locator("h2")).to_contain_text("Logged parameters")
    assert [row.locator("th, td").all_inner_texts() for row in logged.locator("tr").all()] == [
        ["layers", "3"],  # by name: PostgreSQL's jsonb keeps no order
        ["learning_rate", "0.01"],
        ["optimizer", "adam"],
    ]
    side_by_side = [inputs.bounding_box(), logged.bounding_box()]
    assert side_by_side[0]["y"] == side_by_side[1]["y"]
    assert side_by_side[0]["x"] + side_by_side[0]["width"] <= side_by_side[1]["x"]
    shoot(page, "63-pipeline-no-metrics-logged-params")


def test_the_package_page_charts_the_scores_of_its_trained_versions(
    alice_page, alice, project, go, worker
):
    page = alice_page
    go.touch()
    first = wait_for(start(project, alice, "0.81"), timeout=90)
    assert first.status == PipelineRun.SUCCESSFUL, first.failure_reason
    page.goto("/p/alpha/packages/scorer/")
    expect(page.locator(".score-note")).to_have_text(
        "Version 1.1 has a score (0.81): the scores are charted here once two versions have one."
    )
    expect(page.locator(".score-chart")).to_have_count(0)

    second = wait_for(start(project, alice, "0.87"), timeout=90)
    assert second.status == PipelineRun.SUCCESSFUL, second.failure_reason
    page.reload()
    chart = page.locator(".score-chart")
    expect(chart.locator("h2")).to_have_text("Score by version")
    expect(page.locator(".score-note")).to_have_count(0)
    assert legend_at_right_end(page, chart) == ["1.2", "0.87"]
    assert legend_at(page, chart, 0.0) == ["1.1", "0.81"]
    shoot(page, "62-package-scores")

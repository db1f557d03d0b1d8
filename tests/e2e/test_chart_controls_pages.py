"""The metric charts' controls in Chromium: the x axis by step, by the time since the run's
first point or by the wall clock; a logarithmic y axis; smoothing (an EMA, checked against the
same average computed here); and on the Compare page the scatter of a parameter against a
metric, one point per run. Runs are given their points through metrics_append (the runner's
own writer), so the times are known. Screenshots at 1280 and 390 px wide (80-84)."""

import re

import pytest
from django.conf import settings
from playwright.sync_api import expect

from pipelines.metrics import metrics_append
from pipelines.models import PipelineRun
from tests.conftest import classifier_and_invoices, classifier_run

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("runs_stay_here")]

SHOTS = settings.BASE_DIR / "test-artifacts" / "screenshots"
START = 1_700_000_000.0  # the first point's time: 2023-11-14 22:13:20 UTC
LOSS = [2.0, 1.0, 0.5, 0.4, 0.1, 0.05, 0.02, 0.01, 0.005, 0.001]


def _run(project, user, *, rate, optimizer, score, scale=1.0):
    run = classifier_run(project, user, parameters={"learning_rate": rate}, name=f"lr {rate}")
    PipelineRun.objects.filter(pk=run.pk).update(
        status="successful", score=score, logged_params={"optimizer": optimizer}
    )
    # a point every 30 s: the relative time of the last one is 4:30
    loss = [(step, value * scale, START + 30 * step) for step, value in enumerate(LOSS)]
    accuracy = [(step, 0.5 + 0.04 * step * scale, START + 30 * step) for step in range(10)]
    metrics_append(run.pk, {"loss": loss, "accuracy": accuracy})
    return run


def shoot(page, name, width):
    page.set_viewport_size({"width": width, "height": 900})
    page.mouse.move(0, 0)
    page.wait_for_timeout(200)  # the charts follow their new width
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"{name}: the page is {overflow}px wider than the window"
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SHOTS / f"{name}-{width}.png", full_page=True)


def legend_x(chart):
    """The legend's x name and value with the cursor off the chart (the last point)."""
    x = chart.locator(".u-legend .u-series").first
    return [x.locator(".u-label").inner_text(), x.locator(".u-value").inner_text()]


def x_legend(chart):
    return chart.locator(".u-legend .u-series").first


def last_value(chart):
    return float(chart.locator(".u-legend .u-series").nth(1).locator(".u-value").inner_text())


def ema(values, weight):
    last, debias, out = 0.0, 0.0, []
    for value in values:
        last = last * weight + (1 - weight) * value
        debias = debias * weight + (1 - weight)
        out.append(last / debias)
    return out


def test_the_run_pages_charts_by_time_on_a_log_scale_smoothed(alice_page, alice, project):
    page = alice_page
    classifier_and_invoices(project, alice)
    run = _run(project, alice, rate="0.1", optimizer="adam", score=0.9)
    page.goto(f"/p/alpha/pipelines/{run.pk}/")
    loss = page.locator('figure[data-metric="loss"] .chart')
    expect(loss.locator("canvas")).to_have_count(1)
    controls = page.locator("#run-metrics form.chart-controls")
    expect(controls).to_be_visible()
    assert legend_x(loss) == ["Step", "9"]
    assert last_value(loss) == 0.001

    controls.get_by_label("X axis").select_option(label="Relative time")
    expect(x_legend(loss)).to_have_text(re.compile("Relative time.*4:30"))
    controls.get_by_label("X axis").select_option(label="Wall time")
    expect(x_legend(loss)).to_have_text(re.compile("Wall time.*2023"))

    uplot_y = "el => el.aicenterChart.uplot.scales.y.distr"
    assert loss.evaluate(uplot_y) == 1
    controls.get_by_label("Log scale").check()
    expect(loss.locator("canvas")).to_have_count(1)
    assert loss.evaluate(uplot_y) == 3  # uPlot's logarithmic distribution
    shoot(page, "80-run-charts-wall-time-log", 1280)

    controls.get_by_label("X axis").select_option(label="Step")
    controls.get_by_label("Log scale").uncheck()
    controls.get_by_label("Smoothing").fill("0.9")
    expect(controls.locator("output")).to_have_text("0.90")
    assert last_value(loss) == pytest.approx(ema(LOSS, 0.9)[-1], rel=1e-4)
    assert last_value(loss) > 0.1  # far above the last raw point: the average lags
    shoot(page, "81-run-charts-smoothed", 390)

    # the choice is kept for the next page this browser opens
    page.reload()
    expect(loss.locator("canvas")).to_have_count(1)
    expect(controls.locator("output")).to_have_text("0.90")
    assert last_value(loss) == pytest.approx(ema(LOSS, 0.9)[-1], rel=1e-4)


def test_compare_plots_a_parameter_against_a_metric(alice_page, alice, project):
    page = alice_page
    classifier_and_invoices(project, alice)
    runs = [
        _run(project, alice, rate="0.001", optimizer="sgd", score=0.62, scale=1.5),
        _run(project, alice, rate="0.01", optimizer="adam", score=0.81, scale=1.2),
        _run(project, alice, rate="0.1", optimizer="adam", score=0.93),
    ]
    page.goto(f"/p/alpha/pipelines/compare/?ids={','.join(str(run.pk) for run in runs)}")
    scatter = page.locator("[data-scatter]")
    points = scatter.locator("g.point")
    expect(points).to_have_count(3)
    form = page.locator("form[data-scatter-controls]")
    # the parameter that differs, against the score; the rates span two decades: a log axis
    expect(form.get_by_label("Parameter")).to_have_value("learning_rate")
    expect(form.get_by_label("Metric")).to_have_value("score")
    expect(scatter.locator("text.axis-label").first).to_have_text("learning_rate (log scale)")

    def positions():
        return [
            (float(c.get_attribute("cx")), float(c.get_attribute("cy")))
            for c in points.locator("circle").all()
        ]

    xs, ys = zip(*positions(), strict=True)
    assert xs[0] < xs[1] < xs[2]
    assert xs[1] - xs[0] == pytest.approx(xs[2] - xs[1], abs=1)  # a decade each
    assert ys[0] > ys[1] > ys[2]  # a higher score is higher up
    assert points.first.locator("title").text_content().startswith(f"#{runs[0].pk} lr 0.001")
    assert points.first.locator("text").text_content() == f"#{runs[0].pk}"

    # a logged parameter that is text: one slot per value
    form.get_by_label("Parameter").select_option("optimizer")
    form.get_by_label("Metric").select_option("loss")
    expect(scatter.locator("text.tick", has_text="adam")).to_have_count(1)
    expect(scatter.locator("text.tick", has_text="sgd")).to_have_count(1)
    xs, _ = zip(*positions(), strict=True)
    assert xs[1] == xs[2] != xs[0]
    form.get_by_label("Parameter").select_option("learning_rate")
    form.get_by_label("Metric").select_option("score")
    shoot(page, "82-compare-scatter", 1280)

    # the line charts answer their own controls
    loss = page.locator('[data-compare-metric="loss"]')
    expect(loss.locator("canvas")).to_have_count(1)
    controls = page.locator("form[data-chart-controls]")
    controls.get_by_label("X axis").select_option(label="Relative time")
    expect(x_legend(loss)).to_have_text(re.compile("Relative time.*4:30"))
    controls.get_by_label("Log scale").check()
    assert loss.evaluate("el => el.aicenterChart.uplot.scales.y.distr") == 3
    shoot(page, "83-compare-controls", 1280)
    shoot(page, "84-compare-scatter", 390)

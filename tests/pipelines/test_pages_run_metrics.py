"""The run page's Metrics card through the test client: each metric's summary from the stored
summaries (one query), where its charts read their points, polling only while the run runs,
the empty state, and the parameters logged with MLflow beside the input parameters.

The points are stored with metrics_append, as the worker stores what it reads; runs logging
through metrics_file on a real worker are in tests/e2e/test_metrics_pages.py."""

import re
import time

import pytest
from django.utils.html import strip_tags

from pipelines.metrics import metrics_append
from pipelines.metrics_pages import metrics_context
from tests.pipelines.pages import HTMX, finished_run, queued_run

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("runs_stay_here"),
]


def log(run, **series):
    now = time.time()
    metrics_append(run.pk, {name: [(*p, now) for p in points] for name, points in series.items()})


def summary_rows(html):
    table = html.split('class="table compact metric-summary"')[1].split("</table>")[0]
    rows = re.findall(r"<tr>(.*?)</tr>", table.split("<tbody>")[1], re.S)
    return [
        [strip_tags(cell).strip() for cell in re.findall(r"<t[hd].*?</t[hd]>", r, re.S)]
        for r in rows
    ]


def element(html, element_id):
    """The opening tag of the element with this id."""
    return html.split(f'id="{element_id}"')[1].split(">")[0]


def test_it_shows_each_metrics_summary_and_where_the_charts_read_points(bobs, project, bob):
    run = finished_run(project, bob)
    assert run.status == "successful", run.failure_reason
    log(
        run,
        loss=[(None, 1.0), (None, 0.5), (None, float("nan")), (None, 0.000125)],
        accuracy=[(0, 0.5), (10, 0.75)],
        throughput=[(0, 1234567.0)],
    )
    page = bobs.get(f"/p/alpha/pipelines/{run.pk}/").content.decode()
    assert summary_rows(page) == [
        ["accuracy", "0.75", "0.5", "0.75", "2"],
        ["loss", "1.250e-04", "1.250e-04", "1", "4"],  # NaN counts as a step, not as a value
        ["throughput", "1.235e+06", "1.235e+06", "1.235e+06", "1"],
    ]
    card = element(page, "run-metrics")
    assert f'data-run-metrics="/api/v1/projects/alpha/pipelines/{run.pk}/metrics"' in card
    assert "hx-trigger" not in element(page, "metric-summary")  # the run is over: no polling
    assert 'data-settled="true"' in element(page, "run-status")
    assert "No metrics" not in page
    # the API the charts read answers the page's session
    points = bobs.get(f"/api/v1/projects/alpha/pipelines/{run.pk}/metrics?max_points=300")
    assert [p["value"] for p in points.json()["metrics"]["loss"]] == [1.0, 0.5, None, 0.000125]


def test_the_summary_is_one_query_however_many_metrics(
    project, bob, bobs, django_assert_num_queries
):
    run = queued_run(project, bob)
    log(run, **{f"metric_{i:02}": [(None, float(i)), (None, i / 2)] for i in range(30)})
    with django_assert_num_queries(1):
        context = metrics_context(project, run)
    assert list(context["metrics"]) == [f"metric_{i:02}" for i in range(30)]
    assert context["metrics"]["metric_07"] == {"last": 3.5, "min": 3.5, "max": 7.0, "steps": 2}


def test_while_the_run_runs_the_summary_polls_and_fills_in(bobs, project, bob):
    run = queued_run(project, bob)
    page = bobs.get(f"/p/alpha/pipelines/{run.pk}/").content.decode()
    summary = element(page, "metric-summary")
    assert f'hx-get="/p/alpha/pipelines/{run.pk}/metrics/"' in summary
    assert 'hx-trigger="every 2s"' in summary
    assert 'data-settled="false"' in element(page, "run-status")
    empty = strip_tags(page.split('class="empty-state small metrics-empty"')[1].split("</p>")[0])
    assert "No metrics yet" in empty
    assert "metrics_file" in empty and "mlflow.log_metric" in empty and "README" in empty

    log(run, loss=[(None, 0.9), (None, 0.7)])
    polled = bobs.get(f"/p/alpha/pipelines/{run.pk}/metrics/", headers=HTMX).content.decode()
    assert polled.lstrip().startswith('<div id="metric-summary"')
    assert 'hx-trigger="every 2s"' in element(polled, "metric-summary")
    assert summary_rows(polled) == [["loss", "0.7", "0.7", "0.9", "2"]]
    assert "Logs" not in polled  # the table alone


def test_a_finished_run_without_metrics_says_how_to_log_them(bobs, project, bob):
    run = finished_run(project, bob)
    page = bobs.get(f"/p/alpha/pipelines/{run.pk}/").content.decode()
    assert "This run logged no metrics" in strip_tags(page)
    assert "metric-summary" in page and "hx-trigger" not in element(page, "metric-summary")


def test_logged_parameters_show_beside_the_input_parameters(bobs, project, bob):
    run = finished_run(project, bob, parameters={"epochs": "3"})
    page = bobs.get(f"/p/alpha/pipelines/{run.pk}/").content.decode()
    assert "Logged parameters" not in page
    run.logged_params = {"optimizer": "adam", "learning_rate": "0.01"}
    run.save(update_fields=["logged_params"])
    page = bobs.get(f"/p/alpha/pipelines/{run.pk}/").content.decode()
    params = page.split('<div class="two-columns run-params">')[1]
    inputs, logged = params.split('<section class="card logged-params">')
    assert "epochs" in inputs and "Logged parameters" in logged
    rows = re.findall(r"<code>(.*?)</code></th><td><code>(.*?)</code>", logged.split("</table>")[0])
    assert rows == [("learning_rate", "0.01"), ("optimizer", "adam")]  # by name


def test_an_outsider_gets_no_summary(bobs, project, bob, pages_as, charlie):
    run = queued_run(project, bob)
    log(run, loss=[(None, 0.5)])
    assert pages_as(charlie).get(f"/p/alpha/pipelines/{run.pk}/metrics/").status_code == 404

"""The package page's chart of the scores of its trained versions: drawn from the versions'
runs (no query per version), only from two scored versions on, with a line saying why not
when it would help. Full runs executed in this process by the runner (no Redis)."""

import io
import json
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils.html import strip_tags

from datasets.services import dataset_create, dataset_file_put
from packages.services import package_create
from pipelines.runner.run import run_pipeline
from pipelines.services import pipeline_run_create, pipeline_run_delete
from tests.conftest import upload
from tests.metrics_package import metrics_package_zip

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("runs_stay_here"),
]
PAGE = "/p/alpha/packages/scorer/"


@pytest.fixture
def scorer(project, bob, tmp_path):
    (tmp_path / "go").touch()
    content = metrics_package_zip(go=tmp_path / "go", steps=3)
    package_create(project=project, user=bob, name="scorer", file=upload(content=content))
    dataset = dataset_create(project=project, user=bob, name="invoices")
    dataset_file_put(user=bob, dataset=dataset, path="a.csv", fileobj=io.BytesIO(b"1,2\n"))


def train(project, bob, score, type="full"):
    run = pipeline_run_create(
        project=project,
        user=bob,
        type=type,
        package="scorer",
        version="1.0",
        dataset="invoices",
        parameters={"score": str(score)},
    )
    run_pipeline(run)
    run.refresh_from_db()
    assert run.status == "successful", run.failure_reason
    return run


def chart(page):
    found = re.search(r'<script id="score-chart-data" type="application/json">(.*?)</script>', page)
    return json.loads(found.group(1)) if found else None


def note(page):
    found = re.search(r'<p class="muted small score-note">(.*?)</p>', page, re.S)
    return strip_tags(found.group(1)) if found else None


def test_it_charts_the_scores_of_the_trained_versions_in_version_order(
    scorer, project, bob, pages_as
):
    bobs = pages_as(bob)
    page = bobs.get(PAGE).content.decode()
    assert chart(page) is None and note(page) is None  # nothing trained: nothing to say
    assert "uPlot" not in page  # nor any chart script to load

    train(project, bob, "0.25", type="train")  # a version, but no evaluate(): no score
    page = bobs.get(PAGE).content.decode()
    assert chart(page) is None
    assert note(page).startswith("No trained version has a score yet")

    train(project, bob, 0.81)
    page = bobs.get(PAGE).content.decode()
    assert chart(page) is None
    assert note(page).startswith("Version 1.2 has a score (0.81)")

    train(project, bob, 0.87)
    page = bobs.get(PAGE).content.decode()
    assert note(page) is None
    assert chart(page) == {
        "series": [{"label": "Score", "points": [[0, 0.81], [1, 0.87]]}],
        "xLabel": "Version",
        "yLabel": "Score",
        "xNames": ["1.2", "1.3"],
        "height": 200,
    }
    assert 'data-chart="score-chart-data"' in page
    assert "vendor/uplot/uPlot.iife.min.js" in page and "js/metrics.js" in page


def test_more_versions_cost_no_more_queries(scorer, project, bob, pages_as):
    bobs = pages_as(bob)
    for score in (0.5, 0.6):
        train(project, bob, score)
    with CaptureQueriesContext(connection) as two:
        bobs.get(PAGE)
    for score in (0.7, 0.8, 0.9):
        train(project, bob, score)
    with CaptureQueriesContext(connection) as five:
        page = bobs.get(PAGE).content.decode()
    assert [p[1] for p in chart(page)["series"][0]["points"]] == [0.5, 0.6, 0.7, 0.8, 0.9]
    assert len(five) == len(two)


def test_a_version_whose_run_was_deleted_drops_out_of_the_chart(scorer, project, bob, pages_as):
    runs = [train(project, bob, score) for score in (0.5, 0.6, 0.7)]
    pipeline_run_delete(run=runs[1], user=bob)  # its version stays, with no score to show
    page = pages_as(bob).get(PAGE).content.decode()
    assert chart(page)["xNames"] == ["1.1", "1.3"]

"""The Compare page through the test client: runs side by side from the same selector as the
API's compare, the differing rows highlighted, the best values marked, bad links answered in
words. The runs are created by the service and given what a finished run would have; real
runs in a real browser are in tests/e2e/test_compare_pages.py."""

import json
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from core.models import Project
from pipelines.metrics import metrics_append
from pipelines.models import PipelineRun
from tests.pipelines.pages import queued_run

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("runs_stay_here"),
]


def _run(project, bob, *, parameters, logged, score, loss, accuracy):
    run = queued_run(project, bob, parameters=parameters, name=f"lr {parameters['lr']}")
    PipelineRun.objects.filter(pk=run.pk).update(
        status="successful", logged_params=logged, score=score
    )
    metrics_append(
        run.pk,
        {
            "loss": [(None, value, 1.0 + step) for step, value in enumerate(loss)],
            "accuracy": [(None, value, 1.0) for value in accuracy],
        },
    )
    return run.pk


@pytest.fixture
def two_runs(bobs, project, bob):
    first = _run(
        project,
        bob,
        parameters={"lr": "0.1", "epochs": "3"},
        logged={"optimizer": "adam", "seed": "7"},
        score=0.8,
        loss=[1.0, 0.5, 0.3],
        accuracy=[0.6, 0.8],
    )
    second = _run(
        project,
        bob,
        parameters={"lr": "0.01", "epochs": "3"},
        logged={"optimizer": "sgd", "seed": "7"},
        score=0.9,
        loss=[1.2, 0.6, 0.2, 0.1],
        accuracy=[0.5, 0.9],
    )
    return first, second


def _row(html, name):
    """The <tr> of the Compare table whose header cell is `name`."""
    match = re.search(
        rf"<tr( class=\"differs\")?>\s*<th scope=\"row\"><code>{name}</code>.*?</tr>", html, re.S
    )
    assert match, f"no row {name}"
    return match


def test_two_runs_side_by_side_differences_highlighted_best_marked(bobs, two_runs):
    first, second = two_runs
    with CaptureQueriesContext(connection) as queries:
        response = bobs.get("/p/alpha/pipelines/compare/", {"ids": f"{first},{second}"})
    assert response.status_code == 200, response.content
    assert len(queries) <= 8  # session, user, project and role, the runs, the summaries
    html = response.content.decode()
    assert html.index(f">#{first}</a>") < html.index(f">#{second}</a>")  # in the given order
    assert _row(html, "lr").group(1) and "<code>0.1</code>" in _row(html, "lr").group(0)
    assert not _row(html, "epochs").group(1)  # the same in both: not highlighted
    assert _row(html, "optimizer").group(1) and "<code>sgd</code>" in _row(html, "optimizer").group(
        0
    )
    assert not _row(html, "seed").group(1)
    assert _row(html, "artifacts_directory")  # the platform's parameters too, after the user's
    assert html.index("<code>lr</code>") < html.index("<code>artifacts_directory</code>")
    # loss: lower is better, the second's 0.1 is marked; accuracy: higher, the second's 0.9
    loss = _row(html, "loss").group(0)
    assert "lower is better" in loss
    assert re.search(r'class="num best">\s*0.1\s*<span class="badge ok"', loss)
    assert "min 0.3 · max 1 · 3 steps" in loss and "min 0.1 · max 1.2 · 4 steps" in loss
    assert loss.count("best") == 2  # the mark (class and badge) once
    assert re.search(r'class="num best">\s*0.9\s*<span', _row(html, "accuracy").group(0))
    # the charts' data: every metric, each run's points from the metrics API
    chart = json.loads(
        re.search(r'id="compare-data" type="application/json">(.*?)</script>', html).group(1)
    )
    assert chart["metrics"] == ["accuracy", "loss"]
    assert [(run["label"], run["points"]) for run in chart["runs"]] == [
        (f"#{first} lr 0.1", f"/api/v1/projects/alpha/pipelines/{first}/metrics"),
        (f"#{second} lr 0.01", f"/api/v1/projects/alpha/pipelines/{second}/metrics"),
    ]
    # the scatter's: each run's parameters (inputs and logged) and last values, score first
    assert chart["runs"][0]["parameters"]["lr"] == "0.1"
    assert chart["runs"][0]["parameters"]["optimizer"] == "adam"
    assert chart["runs"][1]["values"] == {"score": 0.9, "accuracy": 0.9, "loss": 0.1}
    # first shown: the first parameter that differs, against the score
    x = re.search(r'<select name="x">(.*?)</select>', html).group(1)
    assert "<option selected>lr</option>" in x and "<option>optimizer</option>" in x
    assert re.search(r'<select name="y"><option selected>score</option>', html)
    assert (
        bobs.get(chart["runs"][1]["points"], {"max_points": 600}).json()["metrics"]["loss"][-1][
            "value"
        ]
        == 0.1
    )


def test_only_differences_leaves_the_rows_that_differ(bobs, two_runs):
    first, second = two_runs
    html = bobs.get(
        "/p/alpha/pipelines/compare/", {"ids": f"{first},{second}", "only": "differences"}
    ).content.decode()
    assert "<code>lr</code>" in html and "<code>optimizer</code>" in html
    assert "<code>epochs</code>" not in html and "<code>seed</code>" not in html
    assert "<code>artifacts_directory</code>" not in html
    assert f'href="?ids={first},{second}">Show all rows' in html


def test_the_lists_ticks_lead_to_the_shareable_link(bobs, two_runs):
    first, second = two_runs
    page = bobs.get("/p/alpha/pipelines/").content.decode()
    assert 'id="compare-runs"' in page and f'name="ids" value="{first}" form="compare-runs"' in page
    response = bobs.get(f"/p/alpha/pipelines/compare/?ids={second}&ids={first}")
    assert response.status_code == 302
    assert response["Location"] == f"/p/alpha/pipelines/compare/?ids={second},{first}"


@pytest.mark.parametrize(
    ("ids", "message"),
    [
        ("", "Give the runs to compare as ids=1,2,3."),
        ("1,two", "ids are run numbers separated by commas, like 1,2,3."),
        (",".join(str(n) for n in range(1, 12)), "Compare at most 10 runs at once."),
    ],
)
def test_a_bad_list_of_runs_is_answered_400_in_words(bobs, ids, message):
    response = bobs.get("/p/alpha/pipelines/compare/", {"ids": ids})
    assert response.status_code == 400
    assert message in response.content.decode()


def test_runs_not_in_the_project_are_404_and_outsiders_see_nothing(
    bobs, two_runs, pages_as, charlie
):
    first, second = two_runs
    response = bobs.get("/p/alpha/pipelines/compare/", {"ids": f"{first},999999"})
    assert response.status_code == 404
    assert "No pipeline run 999999 in this project." in response.content.decode()
    Project.objects.create(slug="beta", name="Beta")
    assert bobs.get("/p/beta/pipelines/compare/", {"ids": str(first)}).status_code == 404
    outsider = pages_as(charlie)
    assert (
        outsider.get("/p/alpha/pipelines/compare/", {"ids": f"{first},{second}"}).status_code == 404
    )

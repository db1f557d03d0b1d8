"""A run's name, notes and tags through `PATCH …/pipelines/{id}`, and runs found by an
expression in MLflow's syntax with `?filter=` (runs made through the services, their metrics
stored as a worker stores them)."""

import time

import pytest

from pipelines import run_search
from pipelines.metrics import metrics_append
from pipelines.models import RunParam
from pipelines.run_values import run_code_record
from tests.conftest import classifier_and_invoices, classifier_run

API = "/api/v1/projects/alpha/pipelines"

pytestmark = pytest.mark.django_db


@pytest.fixture
def runs(project, bob):
    """Three runs: their metrics, params and tags as a search sees them."""
    classifier_and_invoices(project, bob)
    made = []
    for accuracy, trees, team in (
        (0.95, "200", "vision"),
        (0.8, "200", "vision"),
        (0.99, "50", "nlp"),
    ):
        run = classifier_run(project, bob, parameters={"n_estimators": trees})
        metrics_append(
            run.pk, {"accuracy": [(0, accuracy / 2, time.time()), (1, accuracy, time.time())]}
        )
        run_code_record(run.pk, tags={"team": team}, note=print)
        made.append(run)
    return made


def ids(response):
    assert response.status_code == 200, response.content
    return sorted(run["id"] for run in response.json())


def test_it_renames_writes_notes_and_tags_a_run(api_as, bob, runs):
    api, run = api_as(bob), runs[0]
    response = api.patch_json(
        f"{API}/{run.pk}",
        {"name": "baseline", "description": "# Why\n\nMore *trees*.", "tags": {"stage": "dev"}},
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["name"] == "baseline" and body["description"].startswith("# Why")
    assert body["tags"] == {"stage": "dev", "team": "vision"}
    response = api.patch_json(f"{API}/{run.pk}", {"tags": {"team": None, "stage": "prod"}})
    assert response.json()["tags"] == {"stage": "prod"}
    assert response.json()["name"] == "baseline"  # fields not given stay
    response = api.patch_json(f"{API}/{run.pk}", {"name": "  "})  # back to the default
    assert response.json()["name"] == f"classifier-1.0-train-{run.pk}"
    listed = api.get(f"{API}?filter=tags.stage%20%3D%20%22prod%22").json()
    assert [r["tags"] for r in listed] == [{"stage": "prod"}]


@pytest.mark.parametrize(
    "payload, field",
    [
        ({"name": "x" * 201}, "name"),
        ({"tags": {"": "empty key"}}, "tags"),
        ({"tags": {"k": "v" * 501}}, "tags"),
        ({"tags": {"bell\x07": "v"}}, "tags"),
        ({"description": "x" * 50_001}, "description"),
    ],
)
def test_bad_edits_are_400_naming_the_field(api_as, bob, runs, payload, field):
    response = api_as(bob).patch_json(f"{API}/{runs[0].pk}", payload)
    assert response.status_code == 400, response.content
    assert field in response.json()["detail"] or field in response.json().get("errors", {})


def test_unknown_or_mistyped_fields_are_refused(api_as, bob, runs):
    response = api_as(bob).patch_json(f"{API}/{runs[0].pk}", {"tag": {"a": "b"}})
    assert response.status_code == 422 and "tag" in response.json()["detail"]
    response = api_as(bob).patch_json(f"{API}/{runs[0].pk}", {"tags": {"a": 1}})
    assert response.status_code == 422


def test_a_viewer_cant_edit_and_an_outsider_cant_see(api_as, vera, charlie, runs):
    response = api_as(vera).patch_json(f"{API}/{runs[0].pk}", {"name": "mine"})
    assert response.status_code == 403
    response = api_as(charlie).patch_json(f"{API}/{runs[0].pk}", {"name": "mine"})
    assert response.status_code == 404


@pytest.mark.parametrize("listed", [20_000, 0], ids=["read-as-ids", "tested-run-by-run"])
def test_filters_by_metric_param_tag_and_attribute(api_as, bob, runs, monkeypatch, listed):
    monkeypatch.setattr(run_search, "LISTED_RUNS", listed)
    api = api_as(bob)
    first, second, third = (run.pk for run in runs)

    def found(expression):
        return ids(api.get(API, {"filter": expression}))

    assert found("metrics.accuracy > 0.9") == [first, third]  # the last value, not the first
    assert found('metrics.accuracy > 0.9 and params.n_estimators = "200"') == [first]
    assert found(
        'metrics.accuracy > 0.9 AND params.n_estimators = "200" and tags.team = "vision"'
    ) == [first]
    assert found('tags.team != "vision"') == [third]
    assert found('tags.team LIKE "vis%"') == [first, second]
    assert found('tags.team ILIKE "%ISI%"') == [first, second]
    assert found('tags.team LIKE "n_p"') == [third]
    assert found("metrics.`accuracy` <= 0.8") == [second]
    assert found("metrics.missing > 0") == []
    assert found('attributes.status = "queued" and name LIKE "classifier%"') == [
        first,
        second,
        third,
    ]
    assert found("status = 'FINISHED'") == []  # MLflow's name for Successful
    assert found(f"id >= {second}") == [second, third]
    assert found('package = "classifier" and version = "1.0"') == [first, second, third]
    assert found("") == [first, second, third]


@pytest.mark.parametrize(
    "expression, message",
    [
        (
            "metrics.accuracy is 0.9",
            "operator after 'metrics.accuracy' (=, !=, >, >=, <, <=) at position 18, found 'is'",
        ),
        (
            "params.n_estimators = 200",
            'quoted string after params.n_estimators = (in quotes: "200") at position 23',
        ),
        ("metrics.accuracy > 'high'", "number after metrics.accuracy > at position 20"),
        (
            "metrics.accuracy > 0.9 or status = 'failed'",
            "'and' between comparisons at position 24, found 'or'",
        ),
        ("colour = 'red'", "Unknown attribute 'colour'"),
        ("weights.a = 'b'", "Unknown key 'weights'"),
        ("metrics.accuracy > 0.9 and", "comparison after 'and' at the end"),
        ("tags.team LIKE", "quoted string after tags.team LIKE at the end"),
        ("metrics.a > 1 ;", "'and' between comparisons at position 15, found ';'"),
    ],
)
def test_a_bad_filter_is_a_400_at_its_token(api_as, bob, runs, expression, message):
    response = api_as(bob).get(API, {"filter": expression})
    assert response.status_code == 400, response.content
    assert message in response.json()["detail"], response.json()


def test_params_searched_are_the_inputs_and_the_logged_over_them(project, bob, runs):
    run_code_record(
        runs[2].pk, tags={}, logged_params={"n_estimators": "75", "lr": "0.1"}, note=print
    )
    params = dict(RunParam.objects.filter(run=runs[2]).values_list("key", "value"))
    assert params["n_estimators"] == "75" and params["lr"] == "0.1"
    assert params["data_directory"] == "data"  # SPEC's defaults are parameters too

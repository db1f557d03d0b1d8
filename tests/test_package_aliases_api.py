"""Version aliases through the API: set, moved and removed (each an ML Logs event), listed in
the package's GET, refused field by field when wrong, and standing for their version where a
run names one. Skills that take or follow an alias: tests/skills/test_skill_aliases.py."""

import json

import pytest

from core.models import Event
from packages.models import PackageAlias
from pipelines.models import PipelineRun
from tests.conftest import classifier_and_invoices, upload
from tests.factories import package_zip

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/api/v1/projects/alpha/packages/classifier"


def put(api, alias, body):
    return api.put(f"{URL}/aliases/{alias}", json.dumps(body), content_type="application/json")


@pytest.fixture
def api(api_as, bob, project):
    """bob's API, and classifier 1.0 and 2.0 (and the dataset invoices)."""
    classifier_and_invoices(project, bob)
    api = api_as(bob)
    response = api.post(f"{URL}/versions", {"file": upload(content=package_zip())})
    assert response.status_code == 201, response.content
    return api


def aliases(api):
    return {a["alias"]: a["version"] for a in api.get(URL).json()["aliases"]}


def logged():
    events = Event.objects.filter(category="package", action__startswith="alias_").order_by("id")
    return [(e.action, e.actor_name, e.object_key, e.message, e.data) for e in events]


def test_it_sets_moves_and_removes_an_alias_each_in_ml_logs(api):
    response = put(api, "champion", {"version": "1.0"})
    assert response.status_code == 200, response.content
    assert response.json()["alias"] == "champion"
    assert response.json()["version"] == "1.0"
    assert response.json()["updated_by"] == "bob"
    assert put(api, "staging", {"version": "2.0"}).status_code == 200
    assert aliases(api) == {"champion": "1.0", "staging": "2.0"}

    assert put(api, "champion", {"version": "2.0"}).json()["version"] == "2.0"
    assert put(api, "champion", {"version": "2.0"}).status_code == 200  # already there
    assert aliases(api) == {"champion": "2.0", "staging": "2.0"}
    response = api.delete(f"{URL}/aliases/staging")
    assert response.status_code == 204
    assert aliases(api) == {"champion": "2.0"}

    assert logged() == [
        ("alias_set", "bob", "classifier", "champion → 1.0", _data("champion", "1.0", None)),
        ("alias_set", "bob", "classifier", "staging → 2.0", _data("staging", "2.0", None)),
        (
            "alias_set",
            "bob",
            "classifier",
            "champion → 2.0 (was 1.0)",
            _data("champion", "2.0", "1.0"),
        ),
        (
            "alias_removed",
            "bob",
            "classifier",
            "staging removed (it pointed at 2.0)",
            {"alias": "staging", "version": "2.0"},
        ),
    ]


def _data(alias, version, previous):
    return {"alias": alias, "version": version, "previous": previous}


@pytest.mark.parametrize(
    ("alias", "body", "field", "message"),
    [
        ("1x", {"version": "1.0"}, "alias", "starting with a letter"),
        ("x" * 41, {"version": "1.0"}, "alias", "1 to 40"),
        ("has.dot", {"version": "1.0"}, "alias", "letters, digits, '-' or '_'"),
        ("latest", {"version": "1.0"}, "alias", "it means the newest"),
        ("champion", {"version": "9.9"}, "version", "has no version '9.9' (it has: 2.0, 1.0)"),
        ("champion", {"version": "staging"}, "version", "has no version 'staging'"),
        ("champion", {"version": ""}, "version", "has no version ''"),
    ],
)
def test_bad_aliases_are_refused_field_by_field(api, alias, body, field, message):
    response = put(api, alias, body)
    assert response.status_code == 400, response.content
    assert message in " ".join(response.json()["errors"][field])
    assert not PackageAlias.objects.exists()
    assert logged() == []


@pytest.mark.parametrize(
    "body",
    [{}, {"version": 1.0}, {"version": "1.0", "versoin": "2.0"}],
    ids=["no version", "a number", "an unknown field"],
)
def test_wrong_bodies_are_422(api, body):
    response = put(api, "champion", body)
    assert response.status_code == 422, response.content
    assert not PackageAlias.objects.exists()


def test_removing_an_alias_that_is_not_there_is_404(api):
    response = api.delete(f"{URL}/aliases/champion")
    assert response.status_code == 404
    assert "has no alias 'champion'" in response.json()["detail"]


def test_viewers_read_aliases_but_cant_move_them(api, api_as, vera, charlie):
    put(api, "champion", {"version": "1.0"})
    viewer = api_as(vera)
    assert {a["alias"] for a in viewer.get(URL).json()["aliases"]} == {"champion"}
    assert put(viewer, "champion", {"version": "2.0"}).status_code == 403
    assert viewer.delete(f"{URL}/aliases/champion").status_code == 403
    assert put(api_as(charlie), "champion", {"version": "2.0"}).status_code == 404
    assert aliases(api) == {"champion": "1.0"}


def test_a_run_given_an_alias_runs_the_version_it_points_at(api, runs_stay_here):
    put(api, "champion", {"version": "2.0"})
    inputs = {"type": "train", "package": "classifier", "dataset": "invoices"}
    response = api.post_json("/api/v1/projects/alpha/pipelines", {**inputs, "version": "champion"})
    assert response.status_code == 201, response.content
    assert response.json()["version"] == "2.0"
    assert PipelineRun.objects.get().version.number == "2.0"

    response = api.post_json("/api/v1/projects/alpha/pipelines", {**inputs, "version": "nope"})
    assert response.status_code == 400
    assert response.json()["errors"]["version"] == [
        "Package classifier has no version 'nope', nor an alias so named."
    ]


def test_a_version_an_alias_points_at_cant_be_deleted(api):
    put(api, "champion", {"version": "2.0"})
    response = api.delete(f"{URL}/versions/2.0")
    assert response.status_code == 409
    assert "alias(es) champion point at it" in response.json()["detail"]
    put(api, "champion", {"version": "1.0"})
    assert api.delete(f"{URL}/versions/2.0").status_code == 204

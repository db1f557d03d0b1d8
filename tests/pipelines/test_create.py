"""Creating pipeline runs: every bad choice refused field by field, nothing stored."""

import io

import pytest

from datasets.services import dataset_create, dataset_file_put
from packages.services import package_create
from pipelines.models import PipelineRun
from tests.conftest import upload
from tests.factories import package_zip

API = "/api/v1/projects/alpha/pipelines"


@pytest.fixture
def setup(project, bob):
    package_create(project=project, user=bob, name="classifier", file=upload())
    package_create(
        project=project,
        user=bob,
        name="no_training",
        training_enabled=False,
        file=upload(content=package_zip(**{"train.py": None})),
    )
    dataset = dataset_create(project=project, user=bob, name="invoices")
    dataset_file_put(user=bob, dataset=dataset, path="train/a.csv", fileobj=io.BytesIO(b"1"))
    dataset_create(project=project, user=bob, name="empty")


def post(api, **fields):
    payload = {"type": "train", "package": "classifier", "version": "1.0", "dataset": "invoices"}
    payload.update(fields)
    return api.post_json(API, {k: v for k, v in payload.items() if v is not ...})


def test_it_creates_a_queued_run(api_as, bob, setup):
    response = post(api_as(bob), dataset_folder="train", parameters={"epochs": 3}, gpu=True)
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "queued"
    assert body["queue"] == "gpu"
    assert body["parameters"]["epochs"] == "3"
    assert body["parameters"]["artifacts_directory"] == "artifacts"
    assert body["dataset_folder"] == "train"


@pytest.mark.parametrize(
    "fields, field, message",
    [
        ({"type": "predict"}, "type", "not a pipeline type"),
        ({"package": "nope"}, "package", "There is no package 'nope'"),
        ({"package": ""}, "package", "Choose a package"),
        ({"version": "9.0"}, "version", "has no version '9.0'"),
        ({"version": "one"}, "version", "has no version 'one'"),
        ({"package": "no_training"}, "version", "does not have training enabled"),
        ({"dataset": "nope"}, "dataset", "There is no dataset 'nope'"),
        ({"dataset": ...}, "dataset", "Choose the input dataset"),
        ({"dataset": "empty"}, "dataset", "is empty"),
        ({"dataset_folder": "test"}, "dataset_folder", "has no folder 'test'"),
        ({"dataset_folder": "../etc"}, "dataset_folder", "not a valid folder"),
        ({"evaluation_dataset": "invoices"}, "evaluation_dataset", "takes no evaluation"),
        ({"type": "evaluate"}, "evaluation_dataset", "Choose the evaluation dataset"),
        ({"parameters": {"1abc": "x"}}, "parameters", "not a valid variable name"),
        ({"parameters": {"my-var": "x"}}, "parameters", "not a valid variable name"),
        ({"parameters": {"PATH": "/tmp"}}, "parameters", "set by the platform"),
        ({"parameters": {"PYTHONPATH": "/tmp"}}, "parameters", "set by the platform"),
        ({"parameters": {"LD_PRELOAD": "x.so"}}, "parameters", "set by the platform"),
        ({"parameters": {"save_training_data": "maybe"}}, "parameters", "must be true or false"),
        ({"parameters": {"data_directory": "/etc"}}, "parameters", "relative folder"),
        ({"parameters": {"artifacts_directory": "../out"}}, "parameters", "relative folder"),
    ],
)
def test_it_refuses_bad_choices_and_stores_nothing(api_as, bob, setup, fields, field, message):
    response = post(api_as(bob), **fields)
    assert response.status_code == 400, response.content
    assert message in " ".join(response.json()["errors"][field])
    assert message in response.json()["detail"]
    assert not PipelineRun.objects.exists()


@pytest.mark.parametrize(
    "payload", [{"package": "classifier", "parameters": {"a": [1]}}, {"gpu": "lots"}, {}]
)
def test_it_refuses_malformed_json_fields(api_as, bob, setup, payload):
    response = api_as(bob).post_json(API, payload)
    assert response.status_code == 422
    assert response.json()["detail"]
    assert not PipelineRun.objects.exists()


def test_a_viewer_cannot_start_a_run(api_as, vera, setup):
    assert post(api_as(vera)).status_code == 403
    assert not PipelineRun.objects.exists()


def test_outsiders_get_404(api_as, charlie, setup):
    assert post(api_as(charlie)).status_code == 404


def test_unknown_runs_are_404(api_as, bob, setup):
    api = api_as(bob)
    assert api.get(f"{API}/999").status_code == 404
    assert api.get(f"{API}/999/results").json()["detail"].startswith("There is no pipeline run")


def test_an_unfinished_run_cannot_be_deleted(api_as, bob, setup):
    api = api_as(bob)
    run_id = post(api).json()["id"]
    response = api.delete(f"{API}/{run_id}")
    assert response.status_code == 409
    assert "kill it or wait" in response.json()["detail"]
    assert api.get(f"{API}/{run_id}/results").status_code == 404


def test_a_package_or_dataset_used_by_a_run_cannot_be_deleted(api_as, bob, setup):
    api = api_as(bob)
    run_id = post(api).json()["id"]
    response = api.delete("/api/v1/projects/alpha/packages/classifier")
    assert response.status_code == 409
    assert f"pipeline run(s) {run_id} use it" in response.json()["detail"]
    response = api.delete("/api/v1/projects/alpha/datasets/invoices")
    assert response.status_code == 409
    assert "use it" in response.json()["detail"]


def test_a_full_run_needs_process_data(api_as, bob, setup):
    response = post(api_as(bob), type="full")
    assert response.status_code == 400
    assert "has no method process_data" in response.json()["errors"]["version"][0]
    assert not PipelineRun.objects.exists()

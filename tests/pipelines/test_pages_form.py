"""The create form of a pipeline run, through the test client: what it offers, what it pre-fills,
what it refuses.

Runs are executed by the runner itself (no Redis); the helpers are in tests/pipelines/pages.py,
the bobs fixture in tests/pipelines/conftest.py."""

import re

import pytest
from django.utils.html import strip_tags

from pipelines.models import PipelineRun
from pipelines.services import pipeline_run_create
from tests.pipelines.pages import HTMX, finished_run

# Committed rows: the runner's watch thread reads the run on a connection of its own; the runs
# are executed here, never by a worker.
pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("runs_stay_here"),
]


def test_the_form_offers_packages_versions_datasets_and_folders(bobs):
    page = bobs.get("/p/alpha/pipelines/new/").content.decode()
    assert "classifier" in page and "invoices" in page
    assert 'name="param_name" value="artifacts_directory"' in page
    assert 'name="param_value" value="false"' in page
    response = bobs.get(
        "/p/alpha/pipelines/new/",
        {
            "type": "train",
            "package": "classifier",
            "dataset": "invoices",
            "param_name": ["artifacts_directory"],
            "param_value": ["artifacts"],
        },
        headers=HTMX,
    )
    partial = response.content.decode()
    assert "<html" not in partial
    assert '<option value="1" selected>1</option>' in partial  # major
    assert '<option value="0" selected>0</option>' in partial  # minor
    assert '<option value="train/deep" >train/deep/</option>' in partial.replace("  ", " ")


def test_parameter_rows_are_added_and_removed_in_place(bobs):
    base = {"type": "train", "param_name": ["a", "b"], "param_value": ["1", "2"]}
    added = bobs.get("/p/alpha/pipelines/new/", {**base, "add_param": "1"}, headers=HTMX)
    assert added.content.decode().count('name="param_name"') == 3
    removed = bobs.get("/p/alpha/pipelines/new/", {**base, "remove_param": "0"}, headers=HTMX)
    page = removed.content.decode()
    assert page.count('name="param_name"') == 1
    assert 'value="b"' in page and 'value="a"' not in page


def test_it_creates_a_run_through_the_form(bobs):
    response = bobs.post(
        "/p/alpha/pipelines/new/",
        {
            "type": "train",
            "package": "classifier",
            "major": "1",
            "minor": "0",
            "dataset": "invoices",
            "dataset_folder": "train",
            "param_name": ["artifacts_directory", "save_training_data", "epochs"],
            "param_value": ["artifacts", "true", "5"],
        },
    )
    run = PipelineRun.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/p/alpha/pipelines/{run.pk}/"
    assert run.parameters["epochs"] == "5"
    assert run.parameters["save_training_data"] == "true"
    assert run.dataset_folder == "train"


@pytest.mark.parametrize(
    "fields, message",
    [
        (
            {"param_name": ["", "x"], "param_value": ["orphan", "1"]},
            "Row 1 has a value but no name",
        ),
        ({"param_name": ["x", "x"], "param_value": ["1", "2"]}, "&#x27;x&#x27; is given twice"),
        ({"param_name": ["bad name"], "param_value": ["1"]}, "not a valid variable name"),
        ({"dataset": ""}, "Choose the input dataset"),
        ({"dataset_folder": "nope"}, "has no folder"),
        ({"package": ""}, "Choose a package"),
    ],
)
def test_the_form_shows_what_is_wrong_and_stores_nothing(bobs, fields, message):
    data = {
        "type": "train",
        "package": "classifier",
        "major": "1",
        "minor": "0",
        "dataset": "invoices",
        **fields,
    }
    response = bobs.post("/p/alpha/pipelines/new/", data, headers=HTMX)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert "<html" not in response.content.decode()
    assert not PipelineRun.objects.exists()


def test_run_again_opens_the_form_pre_filled(bobs, project, bob):
    run = finished_run(project, bob, dataset_folder="train", parameters={"epochs": "7"})
    page = bobs.get("/p/alpha/pipelines/new/", {"from_run": run.pk}).content.decode()
    assert 'value="epochs"' in page and 'value="7"' in page
    assert '<option value="train" selected>train/</option>' in page


def test_a_version_page_offers_train_with_the_form_pre_filled(bobs):
    page = bobs.get("/p/alpha/packages/classifier/1.0/").content.decode()
    assert "?type=train&package=classifier&major=1&minor=0" in page
    form = bobs.get(
        "/p/alpha/pipelines/new/",
        {"type": "train", "package": "classifier", "major": "1", "minor": "0"},
    )
    assert form.status_code == 200
    assert '<option value="classifier" selected>classifier</option>' in form.content.decode()


def test_the_form_shows_every_problem_at_once_and_a_negative_time_limit_must_be_positive(bobs):
    response = bobs.post(
        "/p/alpha/pipelines/new/",
        {
            "type": "train",
            "package": "",
            "dataset": "",
            "time_limit": "-5",
            "param_name": ["bad name"],
            "param_value": ["1"],
            "when": "at",
            "at": "",
        },
        headers=HTMX,
    )
    assert response.status_code == 400
    page = response.content.decode()
    for message in (
        "The time limit must be positive",
        "Choose a package",
        "Choose the input dataset",
        "not a valid variable name",
        "Choose the date and time",
    ):
        assert message in page, message
    assert not PipelineRun.objects.exists()


def param_rows(page):
    names = re.findall(r'name="param_name" value="([^"]*)"', page)
    values = re.findall(r'name="param_value" value="([^"]*)"', page)
    return dict(zip(names, values, strict=True))


def test_the_evaluation_form_pre_fills_save_test_data(bobs, project, bob):
    page = bobs.get("/p/alpha/pipelines/new/", {"type": "evaluate"}).content.decode()
    assert param_rows(page) == {"artifacts_directory": "artifacts", "save_test_data": "false"}
    full = bobs.get("/p/alpha/pipelines/new/", {"type": "full"}).content.decode()
    assert param_rows(full) == {
        "artifacts_directory": "artifacts",
        "save_training_data": "false",
        "save_test_data": "false",
    }
    # the form says where the evaluation dataset and process_data's test split go
    text = " ".join(strip_tags(full).split())
    assert "placed at test_data_directory" in text
    assert "process_data must not write there" in text
    # switched in place from a training form: the rows follow the type, the user's own stay
    switched = bobs.get(
        "/p/alpha/pipelines/new/",
        {
            "type": "evaluate",
            "params_for": "train",
            "param_name": ["artifacts_directory", "save_training_data", "epochs"],
            "param_value": ["artifacts", "false", "5"],
        },
        headers=HTMX,
    ).content.decode()
    assert param_rows(switched) == {
        "artifacts_directory": "artifacts",
        "epochs": "5",
        "save_test_data": "false",
    }
    # a row the user removed stays removed while the type is the same
    removed = bobs.get(
        "/p/alpha/pipelines/new/",
        {
            "type": "evaluate",
            "params_for": "evaluate",
            "param_name": ["artifacts_directory", "save_test_data"],
            "param_value": ["artifacts", "false"],
            "remove_param": "1",
        },
        headers=HTMX,
    ).content.decode()
    assert param_rows(removed) == {"artifacts_directory": "artifacts"}
    run = pipeline_run_create(
        project=project,
        user=bob,
        type="evaluate",
        package="classifier",
        version="1.0",
        evaluation_dataset="invoices",
    )
    again = bobs.get("/p/alpha/pipelines/new/", {"from_run": run.pk}).content.decode()
    assert param_rows(again) == {"artifacts_directory": "artifacts", "save_test_data": "false"}

"""Where a run's name, notes, tags and logged models come from in package code: a real
mlflow-skinny's start_run(run_name=, description=) and set_tag(s); hand-made stores with logged
models (the newest of a name kept, a deleted run's left out, a link not followed); and
metrics_file tag lines, read as the worker reads them."""

import json
import os

import pytest

from pipelines.models import PipelineRun
from pipelines.run_values import run_code_record
from pipelines.runner.metrics_file import MetricsFile
from pipelines.runner.mlflow_store import read_store
from pipelines.tracking import run_tags
from tests.conftest import classifier_and_invoices, classifier_run
from tests.pipelines.test_mlflow_store import mlflow_python, run_with_mlflow

__all__ = ["mlflow_python"]  # a fixture

LIMITS = {"max_points": 10_000, "max_bytes": 10_000_000}


def test_a_named_run_gives_its_name_notes_and_tags(mlflow_python, tmp_path):
    root = run_with_mlflow(
        mlflow_python,
        tmp_path,
        """
        with mlflow.start_run(run_name="baseline", description="First *try*"):
            mlflow.set_tag("team", "vision")
            mlflow.set_tags({"stage": "dev"})
        """,
    )
    record = read_store(root, **LIMITS)
    assert (record.run_name, record.description) == ("baseline", "First *try*")
    assert record.tags == {"team": "vision", "stage": "dev"}


def test_a_name_mlflow_made_up_is_not_kept(mlflow_python, tmp_path):
    root = run_with_mlflow(mlflow_python, tmp_path, 'mlflow.log_metric("loss", 1.0)')
    record = read_store(root, **LIMITS)
    assert record.run_name == "" and record.description == ""


def model(root, experiment, model_id, *, name, run, created, files=None):
    folder = root / experiment / "models" / model_id
    (folder / "artifacts").mkdir(parents=True)
    (folder / "meta.yaml").write_text(
        f"model_id: {model_id}\nname: {name}\nsource_run_id: {run}\n"
        f"creation_timestamp: {created}\nstatus: 3\n"
    )
    for path, text in (files or {"MLmodel": f"model {model_id}"}).items():
        (folder / "artifacts" / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / "artifacts" / path).write_text(text)
    return folder


def a_run(root, experiment, run, *, deleted=False):
    folder = root / experiment / run
    folder.mkdir(parents=True)
    stage = "deleted" if deleted else "active"
    (folder / "meta.yaml").write_text(f"start_time: 1\nlifecycle_stage: {stage}\n")


def test_logged_models_are_kept_by_name_newest_first(tmp_path):
    root = tmp_path / "mlruns"
    a_run(root, "0", "r1")
    a_run(root, "0", "gone", deleted=True)
    model(root, "0", "m-old", name="model", run="r1", created=1)
    model(
        root,
        "0",
        "m-new",
        name="model",
        run="r1",
        created=2,
        files={"MLmodel": "new", "w/x.bin": "x"},
    )
    model(root, "0", "m-deleted", name="other", run="gone", created=3)
    model(root, "0", "m-odd", name="../escape", run="r1", created=4)
    record = read_store(root, **LIMITS)
    assert record.models == {"model": "0/models/m-new", "m-odd": "0/models/m-odd"}
    files = {path: opened.read() for path, opened in record.model_files()}
    assert files == {
        "mlflow_models/model/MLmodel": b"new",
        "mlflow_models/model/w/x.bin": b"x",
        "mlflow_models/m-odd/MLmodel": b"model m-odd",
    }
    assert any("logged more than once" in note for note in record.notes)
    assert any("'../escape'" in note for note in record.notes)


def test_a_logged_models_link_is_not_followed(tmp_path):
    root = tmp_path / "mlruns"
    a_run(root, "0", "r1")
    folder = model(root, "0", "m1", name="model", run="r1", created=1)
    (folder / "artifacts" / "secret").symlink_to("/etc/passwd")
    record = read_store(root, **LIMITS)
    assert [path for path, _ in record.model_files()] == ["mlflow_models/model/MLmodel"]
    assert any("secret" in note for note in record.notes)


@pytest.mark.django_db
def test_metrics_file_tag_lines_become_the_runs_tags(project, bob, tmp_path):
    classifier_and_invoices(project, bob)
    run = classifier_run(project, bob)
    lines = [
        {"tag": "team", "value": "vision"},
        {"name": "loss", "value": 0.5, "step": 1},
        {"tag": "team", "value": "nlp"},  # the last one set wins
        {"tag": "", "value": "no key"},
        {"tag": "stage", "value": 3},
    ]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    notes = []
    folder = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        reader = MetricsFile(run.pk, folder, "metrics.jsonl", notes.append)
        reader.finish()
    finally:
        os.close(folder)
    assert run_tags(run) == {"team": "nlp"}
    assert any("tag skipped" in note for note in notes)
    assert any('{"tag": "<key>", "value": "<text>"}' in note for note in notes)


@pytest.mark.django_db
def test_a_package_name_replaces_only_a_default_name(project, bob):
    classifier_and_invoices(project, bob)
    default, named = classifier_run(project, bob), classifier_run(project, bob, name="mine")
    for run in (default, named):
        run_code_record(run.pk, tags={}, name="baseline", description="notes", note=print)
    assert PipelineRun.objects.get(pk=default.pk).name == "baseline"
    assert PipelineRun.objects.get(pk=named.pk).name == "mine"
    assert PipelineRun.objects.get(pk=named.pk).description == "notes"

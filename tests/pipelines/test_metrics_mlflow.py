"""A package instrumented with MLflow, unchanged: it brings mlflow-skinny in its requirements,
logs with no tracking setup of its own, and its metrics, params and artifact become the run's
(real worker, real environment build from PyPI, real sandboxed run)."""

import pytest

from pipelines.models import PipelineRun
from tests.conftest import upload, wait_for
from tests.factories import package_zip
from tests.pipelines.training import API, artifact, start

pytestmark = pytest.mark.django_db(transaction=True)

TRAIN = """\
import os
from pathlib import Path

import mlflow


class Main:
    def __init__(self):
        pass

    def predict(self, input):
        return input

    def train(self, data_directory):
        mlflow.log_param("learning_rate", 0.01)
        mlflow.log_params({"optimizer": "adam", "layers": 3})
        mlflow.set_tag("team", "invoices")
        for step in range(5):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
        mlflow.log_metrics({"accuracy": 0.75, "f1": 0.5}, step=4)
        Path("confusion.txt").write_text("tp=3 fp=1")
        mlflow.log_artifact("confusion.txt", artifact_path="plots")
        os.remove("confusion.txt")

    def evaluate(self, evaluation_directory):
        return 0.9

    def save(self):
        Path("model.txt").write_text("weights")
"""


def test_mlflow_code_unchanged_logs_the_runs_metrics_params_and_artifacts(api, worker, dataset):
    content = package_zip(**{"train.py": TRAIN, "requirements.txt": "mlflow-skinny>=3,<4\n"})
    response = api.post(f"{API}/packages", {"name": "classifier", "file": upload(content=content)})
    assert response.status_code == 201, response.content
    dataset()
    run = wait_for(start(api), timeout=300)  # the first build downloads mlflow-skinny
    assert run.status == PipelineRun.SUCCESSFUL, run.failure_reason
    body = api.get(f"{API}/pipelines/{run.pk}").json()
    assert body["logged_params"] == {"learning_rate": "0.01", "optimizer": "adam", "layers": "3"}
    points = api.get(f"{API}/pipelines/{run.pk}/metrics").json()["metrics"]
    assert [(p["step"], p["value"]) for p in points["loss"]] == [
        (step, 1.0 / (step + 1)) for step in range(5)
    ]
    assert [(p["step"], p["value"]) for p in points["accuracy"]] == [(4, 0.75)]
    assert points["f1"][0]["value"] == 0.5
    assert artifact(api, run, "plots/confusion.txt") == b"tp=3 fp=1"

"""An MLflow 3 package, unchanged: train.py logs a scikit-learn model with
`mlflow.sklearn.log_model(model, name="model")` in a run it names and tags, and main.py of the
trained version loads it with `mlflow.pyfunc.load_model` to answer a skill's calls (real
mlflow-skinny and scikit-learn from the package index, real worker, real skill host)."""

import pytest

from pipelines.models import PipelineRun
from tests.conftest import upload, wait_for
from tests.factories import package_zip
from tests.pipelines.training import API, artifact, start
from tests.skills.conftest import deploy, predict, sandboxed, skill_host, wait_available

__all__ = ["sandboxed", "skill_host"]  # fixtures

pytestmark = pytest.mark.django_db(transaction=True)

REQUIREMENTS = "mlflow-skinny>=3,<4\nscikit-learn\npandas\nskops\n"

TRAIN = """\
import mlflow
import mlflow.sklearn
from sklearn.linear_model import LogisticRegression


class Main:
    def __init__(self):
        pass

    def train(self, data_directory):
        model = LogisticRegression().fit([[0], [1], [2], [3]], [0, 0, 1, 1])
        with mlflow.start_run(run_name="baseline", description="First try: **plain** LR"):
            mlflow.set_tag("team", "vision")
            mlflow.set_tags({"data": "toy", "stage": "dev"})
            mlflow.log_param("C", 1.0)
            mlflow.sklearn.log_model(model, name="model")

    def evaluate(self, evaluation_directory):
        return 1.0

    def save(self):
        pass
"""

MAIN = """\
import json

import mlflow.pyfunc
import numpy


class Main:
    def __init__(self):
        self.model = mlflow.pyfunc.load_model("mlflow_models/model")

    def predict(self, input):
        rows = numpy.array([[x] for x in json.loads(input)])
        return json.dumps([int(v) for v in self.model.predict(rows)])
"""


def test_a_logged_model_is_kept_and_main_py_loads_it(api, worker, dataset, skill_host, sandboxed):
    content = package_zip(**{"train.py": TRAIN, "main.py": MAIN, "requirements.txt": REQUIREMENTS})
    response = api.post(f"{API}/packages", {"name": "classifier", "file": upload(content=content)})
    assert response.status_code == 201, response.content
    dataset()
    run = wait_for(start(api), timeout=900)  # the first build downloads scikit-learn & co.
    assert run.status == PipelineRun.SUCCESSFUL, run.failure_reason
    body = api.get(f"{API}/pipelines/{run.pk}").json()
    assert body["name"] == "baseline"
    assert body["tags"] == {"data": "toy", "stage": "dev", "team": "vision"}
    assert body["description"] == "First try: **plain** LR"
    assert body["logged_params"] == {"C": "1.0"}
    assert b"flavors:" in artifact(api, run, "mlflow_models/model/MLmodel")

    version = body["output_version"]
    files = api.get(f"{API}/packages/classifier/versions/{version}/download")
    assert files.status_code == 200
    deploy(api, name="toy", package="classifier", version=version)
    wait_available(api, name="toy", timeout=600)
    answer = predict(api, name="toy", body="[0, 3]")
    assert answer.status_code == 200, answer.content
    assert answer.content == b"[0, 1]"

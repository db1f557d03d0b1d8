"""Helpers of the training tests (test_training_*.py): the package they train, a run started
through the API, an artifact read back. Their api, package and dataset fixtures are in
tests/pipelines/conftest.py."""

from pipelines.models import PipelineRun

API = "/api/v1/projects/alpha"

TRAIN = """\
import json, os, sys, time
from pathlib import Path


class Main:
    def __init__(self):
        self.artifacts = Path(os.environ["artifacts_directory"])

    def train(self, data_directory):
        print("training on", data_directory, flush=True)
        files = sorted(str(p.relative_to(data_directory)) for p in Path(data_directory).rglob("*")
                       if p.is_file())
        self.artifacts.mkdir(exist_ok=True)
        (self.artifacts / "files.json").write_text(json.dumps(files))
        (self.artifacts / "env.json").write_text(json.dumps(dict(os.environ)))
        (self.artifacts / "cwd.txt").write_text(os.getcwd())
        sub = self.artifacts / "résultats"
        sub.mkdir(exist_ok=True)
        (sub / "sortie.txt").write_text("ok ✓")
        print("error stream works", file=sys.stderr)
%(extra)s

    def evaluate(self, evaluation_directory):
        return 0.5

    def save(self):
        Path("model.txt").write_text("weights")
"""


def train_py(extra=""):
    return TRAIN % {"extra": extra}


def start(api, **fields):
    payload = {"type": "train", "package": "classifier", "version": "1.0", "dataset": "invoices"}
    response = api.post_json(f"{API}/pipelines", {**payload, **fields})
    assert response.status_code == 201, response.content
    assert response.json()["status"] == "queued"
    return PipelineRun.objects.get(pk=response.json()["id"])


def artifact(api, run, path):
    response = api.get(f"{API}/pipelines/{run.pk}/artifacts/{path}")
    assert response.status_code == 200, response.content
    return b"".join(response.streaming_content)

"""Helpers of the pipeline page tests (test_pages_*.py): the package they run and its runs,
executed by the runner itself (no Redis). Their bobs fixture is in tests/pipelines/conftest.py."""

from pipelines.runner.run import run_pipeline
from tests.conftest import classifier_run

HTMX = {"HX-Request": "true"}

TRAIN = """\
import os
from pathlib import Path


class Main:
    def __init__(self):
        pass

    def train(self, data_directory):
        out = Path(os.environ["artifacts_directory"])
        (out / "plots").mkdir(parents=True)
        (out / "metrics.csv").write_text("epoch,loss\\n1,0.5\\n2,0.25\\n")
        (out / "report.json").write_text('{"accuracy": 0.93}')
        (out / "plots" / "loss.png").write_bytes(b"\\x89PNG\\r\\n\\x1a\\n")
        print("epoch 1 loss 0.5")

    def evaluate(self, evaluation_directory):
        return 0.93

    def save(self):
        Path("model.bin").write_bytes(b"weights")
"""


def queued_run(project, bob, **fields):
    return classifier_run(project, bob, **fields)


def finished_run(project, bob, **fields):
    run = queued_run(project, bob, **fields)
    run_pipeline(run)
    run.refresh_from_db()
    return run

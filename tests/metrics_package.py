"""A package for the pages that show metrics and scores: its full runs log two curves through
metrics_file (`loss` numbered by the platform, `accuracy` at steps 0, 10, 20…) and score the
version they train with the run's `score` parameter. `go`: a file train() waits for after its
first `first` points (120 s at most), so a test sees the run's curves while it runs."""

from tests.factories import package_zip

TRAIN = """\
import json, os, time
from pathlib import Path


def log(**point):
    with open(os.environ["metrics_file"], "a") as file:
        file.write(json.dumps(point) + "\\n")


class Main:
    def __init__(self):
        pass

    def process_data(self, data_directory):
        for variable in ("training_data_directory", "test_data_directory"):
            Path(os.environ[variable]).mkdir(parents=True, exist_ok=True)

    def train(self, data_directory):
        for step in range(%(steps)d):
            if step == %(first)d:
                deadline = time.time() + 120
                while not os.path.exists(%(go)r) and time.time() < deadline:
                    time.sleep(0.05)
            log(name="loss", value=round(2.0 * 0.93 ** step + 0.05, 6))
            log(name="accuracy", value=round(0.95 - 0.6 * 0.9 ** step, 6), step=step * 10)

    def evaluate(self, evaluation_directory):
        return float(os.environ.get("score", "0.5"))

    def save(self):
        Path("model.bin").write_bytes(b"weights")
"""


def metrics_package_zip(*, go, first=0, steps=40) -> bytes:
    """The package's zip; with first=0 train() waits for `go` before any point."""
    return package_zip(**{"train.py": TRAIN % {"go": str(go), "first": first, "steps": steps}})

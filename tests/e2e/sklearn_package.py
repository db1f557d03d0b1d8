"""The scikit-learn package of the acceptance journey (test_sklearn_journey.py), as its user
has it on disk: a logistic regression on CSV files (its requirements.txt, train.py and main.py),
and the labelled points it is trained on."""

import random

REQUIREMENTS = "scikit-learn>=1.3\npandas>=2.0\n"

TRAIN_PY = '''\
"""Logistic regression on the CSV files of a folder (columns x1, x2, x3, label)."""

import json
import os
import struct
import zlib
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import sklearn
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, confusion_matrix
from sklearn.model_selection import train_test_split

FEATURES = ["x1", "x2", "x3"]


def read_csvs(directory):
    paths = sorted(Path(directory).rglob("*.csv"))
    if not paths:
        raise FileNotFoundError(f"no CSV file in {directory}")
    return pd.concat([pd.read_csv(path) for path in paths], ignore_index=True)


def artifacts():
    folder = Path(os.environ.get("artifacts_directory", "artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def png(pixels):
    """An RGB PNG of a (height, width, 3) uint8 array, by hand: no plotting library needed."""
    height, width, _ = pixels.shape

    def chunk(kind, data):
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    raw = b"".join(b"\\x00" + pixels[y].tobytes() for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\\x89PNG\\r\\n\\x1a\\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def decision_map(model, frame, size=240):
    """The model's probability of class 1 over (x1, x2) in [0, 10]², x3 at its mean, with the
    training points on it."""
    steps = np.linspace(0, 10, size)
    x1, x2 = np.meshgrid(steps, steps[::-1])
    grid = pd.DataFrame(
        {"x1": x1.ravel(), "x2": x2.ravel(), "x3": np.full(x1.size, frame["x3"].mean())}
    )
    p = model.predict_proba(grid[FEATURES])[:, 1].reshape(size, size, 1)
    blue, orange = np.array([198, 219, 239]), np.array([253, 208, 162])
    pixels = ((1 - p) * blue + p * orange).astype(np.uint8)
    for x, y, label in frame[["x1", "x2", "label"]].itertuples(index=False):
        col, row = int(x / 10 * (size - 1)), int((1 - y / 10) * (size - 1))
        colour = (230, 85, 13) if label else (49, 130, 189)
        pixels[max(row - 2, 0) : row + 3, max(col - 2, 0) : col + 3] = colour
    return png(pixels)


class Main:
    def __init__(self):
        self.model = LogisticRegression()
        self.metrics = {}

    def process_data(self, input_directory):
        frame = read_csvs(input_directory)
        train, test = train_test_split(
            frame, test_size=0.25, random_state=0, stratify=frame["label"]
        )
        for variable, part in (("training_data_directory", train), ("test_data_directory", test)):
            folder = Path(os.environ[variable])
            folder.mkdir(parents=True, exist_ok=True)
            part.to_csv(folder / f"{folder.name}.csv", index=False)
        print(f"process_data: {len(frame)} rows -> {len(train)} training, {len(test)} test")

    def train(self, data_directory):
        frame = read_csvs(data_directory)
        self.model.fit(frame[FEATURES], frame["label"])
        predicted = self.model.predict(frame[FEATURES])
        self.metrics = {
            "model": "LogisticRegression",
            "sklearn": sklearn.__version__,
            "pandas": pd.__version__,
            "training_rows": len(frame),
            "training_accuracy": round(float(accuracy_score(frame["label"], predicted)), 4),
            "coefficients": dict(zip(FEATURES, self.model.coef_[0].round(4).tolist())),
            "intercept": round(float(self.model.intercept_[0]), 4),
        }
        out = artifacts()
        (out / "metrics.json").write_text(json.dumps(self.metrics, indent=2))
        frame.assign(predicted=predicted).to_csv(out / "predictions.csv", index=False)
        (out / "decision_boundary.png").write_bytes(decision_map(self.model, frame))
        print(f"train: {len(frame)} rows, training accuracy {self.metrics['training_accuracy']}")

    def evaluate(self, evaluation_directory):
        frame = read_csvs(evaluation_directory)
        predicted = self.model.predict(frame[FEATURES])
        accuracy = float(accuracy_score(frame["label"], predicted))
        self.metrics.update(
            test_rows=len(frame),
            accuracy=round(accuracy, 4),
            confusion_matrix=confusion_matrix(frame["label"], predicted).tolist(),
        )
        out = artifacts()
        (out / "metrics.json").write_text(json.dumps(self.metrics, indent=2))
        frame.assign(predicted=predicted).to_csv(out / "test_predictions.csv", index=False)
        print(f"evaluate: {len(frame)} rows, accuracy {accuracy:.4f}")
        return accuracy

    def save(self):
        joblib.dump(self.model, "model.joblib")
        print("save: model.joblib written")
'''

MAIN_PY = """\
import json
from pathlib import Path

import joblib
import pandas as pd

FEATURES = ["x1", "x2", "x3"]


class Main:
    def __init__(self):
        path = Path(__file__).with_name("model.joblib")
        self.model = joblib.load(path) if path.exists() else None

    def predict(self, input):
        if self.model is None:
            raise RuntimeError("no model.joblib: train this package first")
        rows = json.loads(input) if isinstance(input, str) else input
        frame = pd.DataFrame(rows, columns=FEATURES)
        return json.dumps({"predictions": self.model.predict(frame).tolist()})
"""


def points_csv(rows):
    return "x1,x2,x3,label\n" + "".join(f"{a},{b},{c},{label}\n" for a, b, c, label in rows)


def synthetic_points(count=200, seed=3):
    """Two informative features and one of noise; the label is a noisy linear boundary, so a
    logistic regression scores in the 0.9s, not 1.0."""
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        x1, x2, x3 = rng.uniform(0, 10), rng.uniform(0, 10), rng.uniform(0, 1)
        label = int(x1 + 0.8 * x2 + rng.gauss(0, 0.6) > 9)
        rows.append((round(x1, 3), round(x2, 3), round(x3, 3), label))
    return rows

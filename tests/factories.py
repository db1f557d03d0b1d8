"""Builders for what users upload: package zips and their sources."""

import io
import zipfile

MAIN_PY = """\
class Main:
    def __init__(self):
        self.model = None

    def predict(self, input):
        return input
"""

TRAIN_PY = """\
import os


class Main:
    def __init__(self):
        self.trained = False

    def train(self, data_directory):
        self.files = sorted(os.listdir(data_directory))
        os.makedirs(os.environ.get("artifacts_directory", "artifacts"), exist_ok=True)

    def evaluate(self, evaluation_directory):
        return 0.9

    def save(self):
        with open("model.txt", "w") as f:
            f.write("trained")
"""


def package_files(**overrides) -> dict[str, str | bytes]:
    files = {"main.py": MAIN_PY, "train.py": TRAIN_PY, "requirements.txt": ""}
    files.update(overrides)
    return {name: content for name, content in files.items() if content is not None}


def make_zip(files: dict[str, str | bytes], *, root: str = "") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(f"{root}/{name}" if root else name, content)
    return buffer.getvalue()


def package_zip(*, root: str = "", **overrides) -> bytes:
    return make_zip(package_files(**overrides), root=root)

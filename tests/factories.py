"""Builders for what users upload: package zips and their sources."""

import io
import os
import subprocess
import tempfile
import zipfile
from pathlib import Path

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


def make_zip(
    files: dict[str, str | bytes], *, root: str = "", compression: int = zipfile.ZIP_DEFLATED
) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, content in files.items():
            archive.writestr(f"{root}/{name}" if root else name, content)
    return buffer.getvalue()


def package_zip(*, root: str = "", **overrides) -> bytes:
    return make_zip(package_files(**overrides), root=root)


def zip_with_raw_names(files: dict[bytes, bytes]) -> bytes:
    """A zip whose names are exactly the given bytes with the UTF-8 flag (bit 11) clear, the way
    Info-ZIP's `zip` stores UTF-8 names on Linux and old Windows tools store cp437 ones.

    Python's zipfile would set the flag on any non-ASCII name, so each entry is written under
    an ASCII placeholder of the same length, then the placeholder's bytes are swapped for the
    name's in the local header and the central directory."""
    placeholders = {f"~{i}~".ljust(len(raw), "~").encode(): raw for i, raw in enumerate(files)}
    assert all(len(p) == len(raw) for p, raw in placeholders.items()), "names too short"
    content = make_zip(
        {p.decode(): files[raw] for p, raw in placeholders.items()},
        compression=zipfile.ZIP_STORED,
    )
    for placeholder, raw in placeholders.items():
        assert content.count(placeholder) == 2  # local header and central directory
        content = content.replace(placeholder, raw)
    return content


def info_zip(files: dict[str, str | bytes]) -> bytes:
    """The zip that Info-ZIP's `zip -r` makes of these files on Linux (under a UTF-8 locale it
    stores UTF-8 names without the UTF-8 flag)."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder, "files")
        for name, content in files.items():
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content.encode() if isinstance(content, str) else content)
        env = {**os.environ, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
        subprocess.run(["zip", "-q", "-r", "../out.zip", "."], cwd=root, env=env, check=True)
        return Path(folder, "out.zip").read_bytes()

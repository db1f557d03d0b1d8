"""What a run logged with mlflow, as read from its store (pipelines/runner/mlflow_store.py),
and the files it logged (artifacts and logged models) as the run keeps them."""

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, NamedTuple

from sandbox.workspace import UnsafeOutput, collected_files

MODELS = "mlflow_models"  # where logged models go, in the run's artifacts and trained version


class MetricPoint(NamedTuple):
    step: int
    value: float
    timestamp: float  # seconds since the epoch (mlflow writes milliseconds)


@dataclass
class MlflowRecord:
    root: Path
    metrics: dict[str, list[MetricPoint]] = field(default_factory=dict)  # in logging order
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    runs: list[str] = field(default_factory=list)  # "<experiment_id>/<run_id>", oldest first
    models: dict[str, str] = field(default_factory=dict)  # name → "<experiment>/models/<id>"
    run_name: str = ""  # start_run(run_name=): "" when mlflow made the name up
    description: str = ""  # start_run(description=)
    notes: list[str] = field(default_factory=list)  # what was skipped, for the run's log

    def artifacts(self, *, note=None) -> Iterator[tuple[str, BinaryIO]]:
        """(path under the run's artifacts/, open file) for each regular file the runs logged,
        as collected_files yields them, so the caller stores them like the run's own artifacts:
        e.g. `_upload(record.artifacts(note=log.platform))`. Logged models come first, under
        MODELS/<name>/ (model_files); then a path two runs share comes from the later run.
        Links, special files and paths that aren't UTF-8 (or would make a file and a folder of
        one name) are skipped with a `note(text)` (default: self.notes)."""
        sources = [
            (f"{run}/artifacts", "", f"the artifacts of run {shown(run)}")
            for run in reversed(self.runs)
        ]
        return self._files_of([*self._model_sources(), *sources], note or self.notes.append)

    def model_files(self, *, note=None) -> Iterator[tuple[str, BinaryIO]]:
        """(MODELS/<name>/<path>, open file) for each file of each logged model."""
        return self._files_of(self._model_sources(), note or self.notes.append)

    def _model_sources(self):
        return [
            (
                f"{folder}/artifacts",
                f"{MODELS}/{name}/",
                f"the files of logged model {shown(name)}",
            )
            for name, folder in self.models.items()
        ]

    def _files_of(self, sources, note) -> Iterator[tuple[str, BinaryIO]]:
        files, folders = set(), set()

        def skipped(text):  # collected_files names what it skips as it found it
            note(f"mlflow store: {printable(text)}")

        for relative, prefix, what in sources:
            try:
                for path, opened in collected_files(self.root, relative, note=skipped):
                    path = prefix + path
                    parents = _parents(path)
                    if path in files or path in folders or any(p in files for p in parents):
                        if path not in files:
                            note(
                                f"mlflow store: skipped artifact {shown(path)}: a file and a "
                                "folder of one name in two runs"
                            )
                        continue
                    files.add(path)
                    folders.update(parents)
                    yield path, opened
            except UnsafeOutput:
                note(f"mlflow store: {what} are behind a symbolic link: not collected")
            except (OSError, RecursionError) as error:  # a tree too deep for os.fwalk
                note(f"mlflow store: {what} were not all collected ({type(error).__name__})")


def shown(name: str) -> str:
    """A name from the store as a note can show it: quoted, control characters escaped."""
    return repr(name if len(name) <= 100 else name[:100] + "…")


def printable(text: str) -> str:
    """`text` with what a log line can't hold (newlines, bytes that aren't UTF-8) escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _parents(path: str) -> list[str]:
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]

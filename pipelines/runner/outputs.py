"""What a run leaves: its files stored as manifests."""

import itertools

from core.manifests import manifest_from_files
from pipelines.parameters import DIRECTORIES
from pipelines.runner.mlflow_record import MODELS
from sandbox.workspace import collected_files


def upload(files):
    """(path, open file) pairs → a new manifest (None when there are none)."""
    files = iter(files)
    first = next(files, None)
    if first is None:
        return None
    return manifest_from_files(itertools.chain([first], files))


def artifact_files(workspace, variables, mlflow, *, note):
    """The artifacts_directory's files, then those the run logged with MLflow (`mlflow`: its
    record, or None); a path both have is the artifacts_directory's."""
    seen = set()
    for path, opened in collected_files(
        workspace.package, variables["artifacts_directory"], note=note
    ):
        seen.add(path)
        yield path, opened
    for path, opened in mlflow.artifacts(note=note) if mlflow else ():
        if path in seen:
            note(f"mlflow artifact {path}: the artifacts directory has one: skipped")
            continue
        yield path, opened


def trained_version_files(workspace, variables, mlflow, *, note):
    """A trained version's files: the package folder as the run left it (its data folders
    left out), and the models the run logged with MLflow at mlflow_models/<name>/, so that
    `mlflow.pyfunc.load_model("mlflow_models/<name>")` loads one in the version's code. A
    logged model's folder is this run's whole: a copy the package had there (trained from a
    version that logged one) is left out."""
    models = [f"{MODELS}/{name}" for name in mlflow.models] if mlflow else []
    if models:
        yield from mlflow.model_files(note=note)
    excluded = [variables[name] for name in DIRECTORIES] + models
    yield from collected_files(workspace.package, exclude=excluded, note=note)

"""What a run leaves: its files stored as manifests."""

import itertools

from core.manifests import manifest_from_files
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

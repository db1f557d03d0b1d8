"""A run's files as manifests: the ones it reads, and what it leaves (artifacts, the new
version's files, snapshots of its data), stored when its code has ended."""

import itertools

from core.manifests import manifest_copy, manifest_delete, manifest_from_files
from core.models import Manifest
from pipelines.models import PipelineRun
from pipelines.parameters import DIRECTORIES
from pipelines.runner.mlflow_record import MODELS
from sandbox.workspace import UnsafeOutput, collected_files


def manifest_by_id(manifest_id: int) -> Manifest:
    """A manifest known by its id alone: its entries are all a run reads of it, so its row
    is not read (nor joined to the run's on every run)."""
    return Manifest(pk=manifest_id)


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


def run_outputs(run, workspace, variables, outcome, *, mlflow, note) -> dict:
    """Store what the run produced; return how it ends (the arguments of Runner._end)."""
    artifacts = version_files = test_split = None
    collected = outcome.succeeded and not outcome.stopped
    try:
        if outcome.stopped != "files":  # else collecting them is what must not happen
            artifacts = upload(artifact_files(workspace, variables, mlflow, note=note))
        if collected and run.type != PipelineRun.EVALUATE:
            version_files = upload(trained_version_files(workspace, variables, mlflow, note=note))
        if collected and keeps_test_split(run, variables):
            test_split = upload(
                collected_files(workspace.package, variables["test_data_directory"], note=note)
            )
    except UnsafeOutput as error:
        for manifest in (artifacts, version_files):
            if manifest:
                manifest_delete(manifest)
        return {"status": PipelineRun.FAILED, "reason": error.reason}
    if not outcome.succeeded or outcome.stopped or outcome.out_of_memory:
        for manifest in (version_files, test_split):
            if manifest:
                manifest_delete(manifest)
        return {
            "status": PipelineRun.KILLED if outcome.killed else PipelineRun.FAILED,
            "reason": outcome.failure_reason(time_limit=run.max_run_seconds),
            "artifacts": artifacts,
        }
    snapshot, evaluation_snapshot = None, test_split
    if run.dataset and variables["save_training_data"] == "true":
        snapshot = manifest_copy(manifest_by_id(run.dataset.manifest_id), prefix=run.dataset_folder)
    if run.evaluation_dataset and variables["save_test_data"] == "true":
        evaluation_snapshot = manifest_copy(
            manifest_by_id(run.evaluation_dataset.manifest_id), prefix=run.evaluation_folder
        )
    return {
        "status": PipelineRun.SUCCESSFUL,
        "version_files": version_files,
        "artifacts": artifacts,
        "snapshot": snapshot,
        "evaluation_snapshot": evaluation_snapshot,
        "score": outcome.score,
    }


def keeps_test_split(run, variables) -> bool:
    """A full run without an evaluation dataset evaluates the test split process_data wrote at
    test_data_directory: that folder, as the run left it, is its evaluation snapshot when
    save_test_data is true. (With an evaluation dataset, that dataset is.)"""
    return (
        run.type == PipelineRun.FULL
        and not run.evaluation_dataset
        and variables["save_test_data"] == "true"
    )

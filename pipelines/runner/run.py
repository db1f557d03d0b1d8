"""The seed's four steps, made real, for one pipeline run on this worker."""

import json
import logging
import os
import socket
import time
import traceback
from contextlib import contextmanager

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from aicenter.manifests import manifest_copy, manifest_from_files
from packages.services import package_version_create_trained
from pipelines.logs import RunLog
from pipelines.models import PipelineRun
from pipelines.parameters import run_variables
from pipelines.results import results_json
from pipelines.runner.process import run_user_code
from pipelines.runner.workspace import Workspace, collect_files

logger = logging.getLogger(__name__)


def _plan(run, variables) -> list[list]:
    """The calls on train.Main, in SPEC's order for the run's type."""
    here = {
        name: f"./{variables[name]}"
        for name in ("data_directory", "training_data_directory", "test_data_directory")
    }
    if run.type == PipelineRun.TRAIN:
        return [["train", here["data_directory"]], ["save", None]]
    if run.type == PipelineRun.EVALUATE:
        return [["evaluate", here["data_directory"]]]
    return [
        ["process_data", here["data_directory"]],
        ["train", here["training_data_directory"]],
        ["evaluate", here["test_data_directory"]],
        ["save", None],
    ]


def _claim(run) -> bool:
    """Queued → Running, unless someone killed or deleted it meanwhile."""
    now = timezone.now()
    worker = f"{socket.gethostname()}:{os.getpid()}"
    claimed = PipelineRun.objects.filter(pk=run.pk, status=PipelineRun.QUEUED).update(
        status=PipelineRun.RUNNING, started_at=now, worker=worker
    )
    run.status, run.started_at, run.worker = PipelineRun.RUNNING, now, worker
    return bool(claimed)


class Runner:
    def __init__(self, run):
        self.run = run
        self.log = RunLog(run)
        self.phases = []

    @contextmanager
    def phase(self, name):
        start = time.time()
        yield
        self.phases.append({"name": name, "start": start, "end": time.time()})

    def handle(self):
        run = self.run
        workspace = None
        try:
            with self.phase("workspace"):
                workspace = Workspace.create(run.pk)
                variables = run_variables(run)
                count = workspace.materialise(run.version.manifest, workspace.package)
                self.log.platform(f"package {run.package.name} {run.version.number}: {count} files")
                self._materialise_data(workspace, variables)
            self.log.flush()
            outcome = run_user_code(
                python=settings.PIPELINE_PYTHON,
                workspace=workspace,
                variables=variables,
                plan=_plan(run, variables),
                log=self.log,
            )
            self.phases += outcome.calls
            self._finish(workspace, variables, outcome)
        except Exception as error:  # a platform failure, not the user's: say so and end the run
            logger.exception("pipeline run %s failed in the platform", run.pk)
            self.log.write(traceback.format_exc())
            self._end(status=PipelineRun.FAILED, reason=f"platform error: {error}")
        finally:
            self.log.flush()
            if workspace:
                workspace.remove()

    def _materialise_data(self, workspace, variables):
        run = self.run
        placements = []
        if run.dataset:
            placements.append((run.dataset, run.dataset_folder, variables["data_directory"]))
        if run.evaluation_dataset:
            # evaluation runs read it as their input; full runs find it at test_data_directory
            target = "data_directory" if run.type == PipelineRun.EVALUATE else "test_data_directory"
            placements.append((run.evaluation_dataset, run.evaluation_folder, variables[target]))
        for dataset, folder, target in placements:
            count = workspace.materialise(
                dataset.manifest, workspace.package / target, prefix=folder
            )
            where = f"{dataset.name}/{folder}" if folder else dataset.name
            self.log.platform(f"dataset {where}: {count} files at ./{target}")

    def _finish(self, workspace, variables, outcome):
        run = self.run
        with self.phase("upload"):
            artifacts = self._upload(
                collect_files(workspace.package / variables["artifacts_directory"], exclude=[])
            )
            version = snapshot = evaluation_snapshot = None
            if outcome.succeeded:
                if run.type in (PipelineRun.TRAIN, PipelineRun.FULL):
                    files = collect_files(
                        workspace.package,
                        exclude=[
                            variables[name]
                            for name in (
                                "data_directory",
                                "artifacts_directory",
                                "training_data_directory",
                                "test_data_directory",
                            )
                        ],
                    )
                    version = package_version_create_trained(run=run, files=files)
                    self.log.platform(f"new version {run.package.name} {version.number}")
                if run.dataset and variables["save_training_data"] == "true":
                    snapshot = manifest_copy(run.dataset.manifest, prefix=run.dataset_folder)
                if run.evaluation_dataset and variables["save_test_data"] == "true":
                    evaluation_snapshot = manifest_copy(
                        run.evaluation_dataset.manifest, prefix=run.evaluation_folder
                    )
        if outcome.succeeded:
            self._end(
                status=PipelineRun.SUCCESSFUL,
                output_version=version,
                artifacts=artifacts,
                snapshot=snapshot,
                evaluation_snapshot=evaluation_snapshot,
                score=outcome.score,
            )
        else:
            self._end(
                status=PipelineRun.FAILED, reason=_failure_reason(outcome), artifacts=artifacts
            )

    def _upload(self, files):
        if not files:
            return None

        def opened():
            for path, absolute in files:
                with open(absolute, "rb") as fileobj:
                    yield path, fileobj

        return manifest_from_files(opened())

    def _end(self, *, status, reason="", **outputs):
        run = self.run
        for name, value in outputs.items():
            setattr(run, name, value)
        run.status, run.failure_reason, run.finished_at = status, reason, timezone.now()
        run.phases = self.phases
        run.results_text = json.dumps(results_json(run), indent=2, ensure_ascii=False)
        if reason:
            self.log.platform(f"{run.get_status_display()}: {reason}")
        else:
            self.log.platform(run.get_status_display())
        self.log.flush()
        with transaction.atomic():
            # Only a running run ends here: a kill that came first keeps its word.
            PipelineRun.objects.filter(pk=run.pk, status=PipelineRun.RUNNING).update(
                status=status,
                failure_reason=reason,
                finished_at=run.finished_at,
                phases=run.phases,
                results_text=run.results_text,
                output_version=run.output_version,
                artifacts=run.artifacts,
                snapshot=run.snapshot,
                evaluation_snapshot=run.evaluation_snapshot,
                score=run.score,
            )


def _failure_reason(outcome) -> str:
    if outcome.error:
        return outcome.error
    if outcome.exit_code is not None and outcome.exit_code < 0:
        return f"the package's process was killed by signal {-outcome.exit_code}"
    return f"the package's process exited with code {outcome.exit_code}"


def run_pipeline(run) -> None:
    """Execute a queued run here and now, start to end. Never raises for a failing package."""
    run = PipelineRun.objects.select_related(
        "project",
        "package",
        "version__manifest",
        "dataset__manifest",
        "evaluation_dataset__manifest",
        "created_by",
    ).get(pk=run.pk if isinstance(run, PipelineRun) else run)
    if not _claim(run):
        logger.info("pipeline run %s is %s, not queued: skipped", run.pk, run.status)
        return
    Runner(run).handle()

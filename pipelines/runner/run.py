"""One pipeline run on this worker, start to end: its environment, its files, its package's
code in a sandbox, what it leaves, and how it ended."""

import logging
import os
import time
import traceback
from contextlib import ExitStack, contextmanager

from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone

from core.log_marks import PLATFORM_MARK
from core.manifests import manifest_delete
from environments.builds import BuildStopped, EnvironmentUnavailable
from environments.environments import environment_ready, using_environment
from environments.records import (
    failed_build_output,
    prepare_environment_ahead,
    version_environment,
    version_requirements,
    version_requirements_blob,
)
from packages.services import package_version_create_trained
from pipelines import transitions
from pipelines.logs import WorkerLog
from pipelines.models import PipelineRun
from pipelines.outages import DatabaseUnreachable, during_outage
from pipelines.parameters import run_variables
from pipelines.runner import ahead
from pipelines.runner.metrics_file import metrics_file
from pipelines.runner.outputs import manifest_by_id, run_outputs
from pipelines.runner.plan import call_plan
from pipelines.runner.watch import RunWatch
from sandbox import isolation, sandbox, sandbox_uids
from sandbox.process import Supervision, UserCode, run_user_code
from sandbox.sandbox import python_prefixes
from sandbox.workspace import OverLimit, Workspace

logger = logging.getLogger(__name__)
# A build done elsewhere that overlapped this run's wait by less than this is no phase of its
# own on the timeline (it would be a sliver).
SHORTEST_BUILD_PHASE_SECONDS = 0.05


class Runner:
    def __init__(self, run, requirements="", build=None, *, go_ahead=False):
        self.run = run
        # A pipeline worker's runner takes the sandbox started ahead for it, and starts one
        # for the next run when done (runner/ahead.py); runs in any other process don't.
        self.go_ahead = go_ahead and ahead.possible()
        self.ahead = None  # the sandbox started ahead this run took, until its code starts
        self.lease = None  # the uid its code runs as (sandbox/sandbox_uids.py)
        self.environment = None  # the run's, once ready
        self.requirements = requirements
        self.build = build  # its environment's record (EnvironmentBuild), as of the claim
        self.environment_from = None  # when another job began building its environment
        self.installer_logged = False  # the build's output is in the run's log
        self.log = WorkerLog(run, new=True)  # waits out a database outage
        self.phases = []
        self.mlflow = None  # what the run logged with MLflow, once its code has ended
        self.watch = RunWatch(run.pk)

    @contextmanager
    def phase(self, name, start=None):
        start = start or time.time()
        try:
            yield
        finally:  # a phase that failed took its time too
            self.phases.append({"name": name, "start": start, "end": time.time()})

    def handle(self):
        run = self.run
        workspace = None
        self.watch.start()
        self.phases += self._waiting()
        try:
            with ExitStack() as stack:
                with self.phase("environment", start=self.environment_from):
                    environment = stack.enter_context(
                        using_environment(
                            python_version=run.package.language,
                            requirements=self.requirements,
                            log=self._installer_output,
                            on_build=self._packaging,
                            should_stop=self.watch.killed.is_set,
                            recorded_ready=bool(self.build)
                            and self.build.status == self.build.READY,
                        )
                    )
                    self._running()
                self.environment = environment
                with self.phase("materialise"):
                    variables = run_variables(run)
                    if self.go_ahead and not run.gpu_devices:
                        self.ahead = ahead.take(
                            environment=environment, network=run.project.allow_network
                        )
                    workspace = self.ahead.workspace if self.ahead else Workspace.create(run.pk)
                    package = manifest_by_id(run.version.manifest_id)
                    count = workspace.materialise(package, workspace.package)
                    self.log.platform(
                        f"package {run.package.name} {run.version.number}: {count} files"
                    )
                    self._materialise_data(workspace, variables)
                self.log.flush_if_due()  # a short run's log is written once, at its end
                ending = self._execute(environment, workspace, variables)
            workspace.remove()  # before the status is final: a finished run left nothing behind
            workspace = None
            self._end(**ending)
        except BuildStopped:
            self._end(status=PipelineRun.KILLED)
        except EnvironmentUnavailable as error:
            # a build that failed before this run came: its output goes here too, where the
            # author looks first
            if not self.installer_logged and (output := failed_build_output(self.run.version_id)):
                self.log.platform("its environment's last build failed; the installer said:")
                self._copy_build_output(output)
            self._end(status=PipelineRun.FAILED, reason=error.reason)
        except DatabaseUnreachable as error:
            self._end(status=PipelineRun.FAILED, reason=error.reason)
        except OverLimit as error:  # its package and data don't fit its limits
            self._end(status=PipelineRun.FAILED, reason=error.reason)
        except Exception as error:  # a platform failure, not the user's: say so and end the run
            logger.exception("pipeline run %s failed in the platform", run.pk)
            self.log.write(traceback.format_exc())
            self._end(status=PipelineRun.FAILED, reason=f"platform error: {error}")
        finally:
            self.watch.stop()
            if self.ahead:  # taken, but its run ended before its code started
                self.ahead.discard()
            if workspace:
                workspace.remove()
            if self.lease:  # once nothing of the run is left
                try:
                    self.lease.release()
                except DatabaseError:  # away: the sweeper gives it back (release_left)
                    logger.warning("sandbox uid %s not given back yet", self.lease.uid)
            self.log.flush()  # last: it may wait for the database

    def start_ahead(self):
        """Start the sandbox of this worker's next run (runner/ahead.py), like this run's."""
        if self.go_ahead and self.environment and not self.run.gpu_devices:
            ahead.start(environment=self.environment, network=self.run.project.allow_network)

    def _waiting(self) -> list[dict]:
        """From enqueued to claimed: queued, but an environment built meanwhile by another job
        (the build ahead at upload, another run's) shows as the environment phase it was, and
        its installer output goes into this run's log."""
        run, build = self.run, self.build
        start, end = (
            (run.scheduled_for or run.enqueued_at or run.created_at).timestamp(),
            (run.started_at.timestamp()),
        )
        built = build and build.started_at and build.finished_at
        if built:
            began = max(start, build.started_at.timestamp())
            ended = min(build.finished_at.timestamp(), end)
        if not built or ended - began < SHORTEST_BUILD_PHASE_SECONDS:
            return [{"name": "queued", "start": start, "end": end}]
        self.log.platform(
            f"its environment was built by another job while this run waited ({ended - began:.1f}"
            " s); the installer said:"
        )
        self._copy_build_output(build.output)
        self.environment_from = began  # the environment phase starts with that build
        return [{"name": "queued", "start": start, "end": began}]

    def _copy_build_output(self, output: str):
        for line in output.splitlines(keepends=True):  # stored with the installer's escaped
            self._installer_output(line, platform=line.startswith(PLATFORM_MARK))

    def _installer_output(self, text, *, platform=False):
        """The build's output into the run's log; its own lines ("[aicenter] …") as the
        platform's, the installer's (which may be a package's build code) as output."""
        if platform:
            self.log.platform(text.removeprefix(PLATFORM_MARK).rstrip("\n"))
        else:
            self.log.write(text)
            self.installer_logged = True
        self.log.flush_if_due()

    def _packaging(self):
        """The environment must be built first: the run shows Packaging meanwhile."""
        during_outage(lambda: transitions.packaging(self.run.pk))
        self.run.status = PipelineRun.PACKAGING
        self.log.flush()

    def _running(self):
        if self.run.status == PipelineRun.PACKAGING:  # claimed as Running: nothing to move
            during_outage(lambda: transitions.running(self.run.pk))
            self.run.status = PipelineRun.RUNNING

    def _execute(self, environment, workspace, variables) -> dict:
        run = self.run
        if self.watch.killed.is_set():  # killed while its environment was being built
            return {"status": PipelineRun.KILLED}
        box, user_ids = self._sandbox(environment, workspace)
        with ExitStack() as stack:
            if box:
                stack.callback(box.close)
            metrics = stack.enter_context(metrics_file(run.pk, workspace, self.log.platform))
            started_ahead, self.ahead = self.ahead, None  # run_user_code's from here on
            code = UserCode(
                python=environment.python,
                workspace=workspace,
                variables=variables,
                plan=call_plan(run, variables),
                extra_env={"CUDA_VISIBLE_DEVICES": run.gpu_devices} if run.gpu_devices else None,
            )
            supervision = Supervision(
                log=self.log,
                should_stop=self._should_stop,
                on_start=self._record_process_group,
                tick=metrics.read_if_due,
            )
            outcome = run_user_code(
                code, supervision, sandbox=box, user_ids=user_ids, ahead=started_ahead
            )
            if outcome.stopped == "database":  # nothing of it can be stored: it fails, saying why
                raise self.watch.database_lost
            self.mlflow = metrics.finish(score=outcome.score, mlflow_store=workspace.mlflow_store)
        if outcome.started_at:
            self.phases.append(
                {"name": "python", "start": outcome.spawned_at, "end": outcome.started_at}
            )
        self.phases += outcome.calls
        return self._finish(workspace, variables, outcome)

    def _sandbox(self, environment, workspace):
        """The run's sandbox (or, with AICENTER_SANDBOX=off, None and the ids of the user to run
        as), recorded on the run and said in its log."""
        run = self.run
        if problem := sandbox.refusal():  # never unsandboxed unless the operator said so
            raise EnvironmentUnavailable(f"this worker can't sandbox package code: {problem}")
        ahead_lease = self.ahead.lease if self.ahead else None  # the run gives it back
        self.lease = ahead_lease or sandbox_uids.lease(sandbox_uids.RUN, workspace.root.name)
        uid = self.lease.uid
        root = os.geteuid() == 0
        if root:
            # started ahead: its process owns the other folders already, and may be changing
            # them; walking them now would follow what it put there
            folders = [workspace.package] if self.ahead else None
            isolation.hand_over(workspace, uid, folders=folders)
        run.sandbox = sandbox.describe(  # stored as it starts
            network=run.project.allow_network, disk=workspace.limits_enforced_by
        )
        if not run.sandbox["enabled"]:
            ids = (uid, uid) if root else None
            if root:
                isolation.protect_directories()
                if not isolation.can_run(environment.python, ids):  # never as root
                    raise EnvironmentUnavailable(
                        f"not sandboxed (AICENTER_SANDBOX=off) and uid {uid} can't start "
                        f"{environment.python} (is its Python in a folder only root reads?)"
                    )
            self.log.platform(
                "warning: not sandboxed (AICENTER_SANDBOX=off): the package's code runs with "
                + ("the worker's own uid" if ids is None else f"uid {uid}")
                + ", may reach the network, and what it starts may outlive the run"
            )
            return None, ids
        if self.ahead:
            self.log.platform(f"sandbox: {run.sandbox_summary} (started ahead)")
            return self.ahead.box, None
        self.log.platform(f"sandbox: {run.sandbox_summary}")
        box = sandbox.Sandbox(
            workspace.root.name,  # run-<id>-<random>: unique on this machine
            uid=uid,
            writable=[workspace.root, *settings.SANDBOX_SHARED_DIRS],
            readable=[environment.path, *python_prefixes(environment.python)],
            network=run.project.allow_network,
            memory=settings.PIPELINE_MEMORY_LIMIT_MB * 1024 * 1024,
            processes=settings.PIPELINE_PROCESSES_LIMIT,
            gpu=bool(run.gpu_devices),
            home=str(workspace.home),
        )
        return box, None

    def _should_stop(self) -> str:
        if self.watch.killed.is_set():
            return "killed"
        if self.watch.database_lost:
            return "database"
        if (timezone.now() - self.run.started_at).total_seconds() > self.run.max_run_seconds:
            return "timeout"
        return ""

    def _record_process_group(self, pid):
        """The package's process started: its process group (the sweeper ends it if this
        worker is lost) and what its sandbox gives, in one write."""
        during_outage(
            lambda: PipelineRun.objects.filter(pk=self.run.pk).update(
                process_group=pid, sandbox=self.run.sandbox
            )
        )

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
                manifest_by_id(dataset.manifest_id), workspace.package / target, prefix=folder
            )
            where = f"{dataset.name}/{folder}" if folder else dataset.name
            self.log.platform(f"dataset {where}: {count} files at ./{target}")

    def _finish(self, workspace, variables, outcome) -> dict:
        """Upload what the run produced; return how it ends (the arguments of _end)."""
        with self.phase("upload"):
            return run_outputs(
                self.run, workspace, variables, outcome, mlflow=self.mlflow, note=self.log.platform
            )

    def _end(self, *, status, reason="", version_files=None, **outputs):
        """Record how it ended (transitions.finish: a kill that came first wins, and then
        nothing becomes a version), then say so in the log."""
        run = self.run
        for name, value in outputs.items():
            setattr(run, name, value)
        run.phases = self.phases
        made = []

        def new_version():  # in the transaction that ends the run
            version = package_version_create_trained(run=run, manifest=version_files)
            self._environment_of(version)
            made.append(version)
            return version

        def finish():  # tried again whole while the database is away
            made.clear()
            return transitions.finish(
                run,
                status=status,
                reason=reason,
                new_version=new_version if version_files is not None else None,
            )

        ended = during_outage(finish)
        # Successful already: an earlier try committed, but its answer was lost with the
        # connection; the version it made holds the files
        committed = ended is not None and ended[0] == PipelineRun.SUCCESSFUL
        if version_files is not None and not made and not committed:
            manifest_delete(version_files)  # killed at the last moment: no version
        if ended is None:  # deleted meanwhile
            return
        status, reason = ended
        for version in made:
            self.log.platform(f"new version {run.package.name} {version.number}")
        self.log.platform(f"{run.get_status_display()}" + (f": {reason}" if reason else ""))
        self.log.flush()

    def _environment_of(self, version):
        """A trained version with its parent's requirements.txt runs in the environment this
        run just used: recorded as its own, no build job. Other requirements: built ahead."""
        mine, _ = version.manifest.written.get("requirements.txt", (None, None))
        if mine == version_requirements_blob(self.run.version) and self.build is not None:
            self.build.versions.add(version)  # a new version: no link to look for first
        else:
            version.package = self.run.package  # the same row: not read again
            prepare_environment_ahead(version)


def run_pipeline(run, *, go_ahead=False) -> None:
    """Execute a queued run here and now, start to end. Never raises for a failing package.
    `go_ahead`: a pipeline worker's run, which may take the sandbox started ahead for it and
    starts the next one when done. A database away when it starts is waited for
    (outages.py): the job is kept, not dropped."""
    claimed = during_outage(lambda: _claim(run.pk if isinstance(run, PipelineRun) else run))
    if claimed is None:
        return
    runner = Runner(*claimed, go_ahead=go_ahead)
    runner.handle()
    runner.start_ahead()


def _claim(run_id: int):
    """Load the run and claim it: (run, requirements, its environment's record), or None when
    it is not queued any more."""
    run = PipelineRun.objects.select_related(
        "project", "package", "version", "dataset", "evaluation_dataset"
    ).get(pk=run_id)
    run.version.package = run.package  # the same row: not read twice
    requirements = version_requirements(run.version)
    build = version_environment(run.version, requirements)
    # Packaging first when its environment must be built: statuses never go backwards
    ready = environment_ready(python_version=run.package.language, requirements=requirements)
    if not transitions.claim(run, status=PipelineRun.RUNNING if ready else PipelineRun.PACKAGING):
        logger.info("pipeline run %s is %s, not queued: skipped", run.pk, run.status)
        return None
    return run, requirements, build

"""A workspace that could not be removed after its run is removed by a later sweep, on the
machine that ran it; a running run's workspace never is."""

import os
import socket
import subprocess

import pytest
from django.utils import timezone

from pipelines.models import PipelineRun
from pipelines.sweeper import sweep
from sandbox.workspace import Workspace, workspace_folders
from tests.conftest import classifier_and_invoices, classifier_run, requires, wait_until

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("runs_stay_here"),
]
HERE = f"{socket.gethostname()}:4242"


@pytest.fixture
def new_run(project, bob):
    classifier_and_invoices(project, bob)

    def new_run(status, worker=HERE):
        run = classifier_run(project, bob)
        # as a worker leaves it: claimed by this machine, alive (or finished) just now
        PipelineRun.objects.filter(pk=run.pk).update(
            status=status, worker=worker, started_at=timezone.now(), heartbeat_at=timezone.now()
        )
        return run

    return new_run


def leftover(run) -> Workspace:
    """A workspace of `run` as a run leaves it: files, a read-only folder, a file of its own."""
    workspace = Workspace.create(run.pk)
    (workspace.package / "model").mkdir()
    (workspace.package / "model" / "weights.bin").write_bytes(b"w" * 1000)
    (workspace.package / "model").chmod(0o500)
    (workspace.home / ".cache").write_text("x")
    return workspace


def _sweep_until(check, message):
    # sweep() does nothing while another process sweeps (it holds the lock): try until done
    def swept():
        sweep()
        return check()

    wait_until(swept, 10, message)


def test_a_later_sweep_removes_a_finished_runs_leftover_workspace(new_run):
    finished = leftover(new_run(PipelineRun.SUCCESSFUL))
    failed = leftover(new_run(PipelineRun.FAILED))
    running = leftover(new_run(PipelineRun.RUNNING))
    packaging = leftover(new_run(PipelineRun.PACKAGING))
    elsewhere = leftover(new_run(PipelineRun.SUCCESSFUL, worker="another-machine:1"))

    _sweep_until(
        lambda: not finished.root.exists() and not failed.root.exists(),
        "the finished runs' workspaces are still there",
    )
    # a run still running keeps its workspace, sweep after sweep
    for _ in range(3):
        sweep()
    assert (running.package / "model" / "weights.bin").is_file()
    assert packaging.root.is_dir()
    # another machine's run: its workspace, if any, is that machine's to remove
    assert elsewhere.root.is_dir()


def test_a_workspace_that_cannot_be_removed_is_left_for_the_sweeper_without_an_error(
    new_run, caplog
):
    requires(os.geteuid() == 0, "mounting a file system inside a workspace needs root")
    run = new_run(PipelineRun.RUNNING)
    workspace = leftover(run)
    busy = workspace.tmp / "busy"
    busy.mkdir()
    # a mount point cannot be removed (EBUSY), whoever asks
    subprocess.run(["mount", "-t", "tmpfs", "none", str(busy)], check=True)
    try:
        assert workspace.remove() is False  # said, not raised: the run's outcome stands
        assert workspace.root.is_dir()
        assert f"could not remove the workspace {workspace.root}" in caplog.text
        PipelineRun.objects.filter(pk=run.pk).update(status=PipelineRun.SUCCESSFUL)
        sweep()
        assert workspace.root.is_dir()  # still busy: tried again at the next sweep
    finally:
        subprocess.run(["umount", str(busy)], check=False)
    _sweep_until(lambda: not workspace.root.exists(), "the sweeper did not remove it")
    assert not list(workspace_folders(f"run-{run.pk}-*"))

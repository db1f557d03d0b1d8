"""What the sandbox's status changes: a worker or the runner without bubblewrap refuses, a run with
the sandbox off says so, and a run's page says what the sandbox gave.

The sandbox tests' helpers are in tests/pipelines/sandboxing.py, their fixtures in
tests/pipelines/conftest.py."""

import os

import pytest

from sandbox import sandbox, sandbox_uids
from sandbox.bubblewrap import bubblewrap
from tests.pipelines.sandboxing import files_of, log_of, run_here

# Committed rows: the runner's watch thread reads the run on a connection of its own; the runs
# are executed here, never by a worker.
pytestmark = [
    pytest.mark.usefixtures("sandbox_available"),
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("runs_stay_here"),
]


# Where there is no sandbox.


def test_a_worker_without_bubblewrap_refuses_to_start(db, tmp_path):
    from tests.conftest import start_worker

    bin_dir = tmp_path / "bin"  # the machine's tools, less bwrap
    bin_dir.mkdir()
    for tool in ("sh", "setpriv"):
        os.symlink(f"/usr/bin/{tool}" if tool != "sh" else "/bin/sh", bin_dir / tool)
    # only the machine's (the wheel's bwrap is not taken: test_sandbox_bubblewrap.py)
    env = {"PATH": str(bin_dir), "AICENTER_BWRAP": "system"}
    process = start_worker("gpu", env=env)
    assert process.wait(timeout=60) != 0
    log = process.log_path.read_text()
    assert "AI Center worker not started: bubblewrap (bwrap) is not installed" in log
    assert "apt-get install bubblewrap" in log
    assert "AICENTER_SANDBOX=off" in log


def test_with_the_sandbox_off_every_run_says_so(db, project, bob, settings, pages_as, tmp_path):
    from environments.environments import find_python

    settings.SANDBOX = "off"
    settings.ENVIRONMENTS_DIR = tmp_path  # built anew, on a Python the run's uid can start
    sandbox.status.cache_clear()
    find_python.cache_clear()
    try:
        run = run_here(project, bob, "(OUT / 'uid.txt').write_text(str(os.getuid()))")
    finally:
        sandbox.status.cache_clear()
        find_python.cache_clear()
    assert run.status == "successful", run.failure_reason
    assert int(files_of(run.artifacts)["uid.txt"]) in sandbox_uids.part(sandbox_uids.RUN)
    assert run.sandbox == {"enabled": False}
    assert "warning: not sandboxed (AICENTER_SANDBOX=off)" in log_of(run)
    assert run.results["run_summary"]["sandbox"] == {"enabled": False}
    page = pages_as(bob).get(f"/p/alpha/pipelines/{run.pk}/").content.decode()
    assert "Not sandboxed" in page


def test_the_runs_page_says_what_the_sandbox_gave(db, project, bob, pages_as):
    run = run_here(project, bob, "pass")
    page = pages_as(bob).get(f"/p/alpha/pipelines/{run.pk}/").content.decode()
    assert "Sandboxed" in page
    assert "no network, memory ≤ 2,048 MB (cgroup v1)" in page
    assert f"bubblewrap {bubblewrap().version} ({bubblewrap().source})" in page
    assert run.results["run_summary"]["sandbox"]["bubblewrap"] == {
        "version": bubblewrap().version,
        "source": bubblewrap().source,
    }
    assert "disk ≤ 51,200 MB, files ≤ 200,000 (filesystem)" in page


@pytest.mark.parametrize("own_disks", [True, False], ids=["filesystem", "check"])
def test_a_workers_start_log_says_what_holds_runs_disk_limits(db, own_disks):
    from tests.conftest import start_worker, stop, wait_for_workers

    env = {"AICENTER_SANDBOX_DISKS": str(own_disks).lower()}
    process = start_worker("gpu", env=env)
    try:
        wait_for_workers(1, queue="gpu", process=process)
    finally:
        stop(process)
    log = process.log_path.read_text()
    limits = "disk ≤ 51,200 MB (AICENTER_RUN_DISK_MB), files ≤ 200,000 (AICENTER_RUN_FILES)"
    if own_disks:
        assert f"run workspaces: {limits}, held by the kernel" in log
    else:
        assert f"run workspaces: {limits}, checked by walking the workspace" in log
        assert "(AICENTER_SANDBOX_DISKS=false); a file deleted while still open escapes" in log


def test_a_worker_that_isnt_root_says_its_runs_limits_are_only_checked(monkeypatch):
    from sandbox import disks

    monkeypatch.setattr(os, "geteuid", lambda: 1000)  # a worker that can't mount
    assert disks.enforcement() == "check"
    assert disks.take("run-1-") is None
    assert "this worker isn't root and can't mount one" in disks.described()


def test_without_a_sandbox_the_runner_itself_refuses_to_run_package_code(
    db, project, bob, monkeypatch, settings, tmp_path
):
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap on it
    settings.BWRAP = "system"  # and not the wheel's
    bubblewrap.cache_clear()
    sandbox.status.cache_clear()
    try:
        run = run_here(project, bob, "(OUT / 'ran.txt').write_text('yes')")
    finally:
        monkeypatch.undo()
        bubblewrap.cache_clear()
        sandbox.status.cache_clear()
    assert run.status == "failed"
    assert "can't sandbox" in run.failure_reason
    assert "bubblewrap (bwrap) is not installed" in run.failure_reason
    assert run.artifacts is None

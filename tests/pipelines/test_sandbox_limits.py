"""The sandbox's limits: one memory limit for all the run's processes (by a cgroup or a watchdog),
and disk and file limits on the workspace (by a file system of its own, or a check).

The sandbox tests' helpers are in tests/pipelines/sandboxing.py, their fixtures in
tests/pipelines/conftest.py."""

import time

import pytest

from sandbox import sandbox
from tests.conftest import requires
from tests.pipelines.sandboxing import log_of, run_here

# Committed rows: the runner's watch thread reads the run on a connection of its own; the runs
# are executed here, never by a worker.
pytestmark = [
    pytest.mark.usefixtures("sandbox_available"),
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("runs_stay_here"),
]


# 6. One memory limit for all the run's processes.

HOGS = """
children = [
    subprocess.Popen([sys.executable, "-c",
        "import time; hog = b'x' * (300 * 1024 * 1024); time.sleep(5)"])
    for _ in range(4)
]
codes = [child.wait() for child in children]
if any(codes):
    raise RuntimeError(f"children ended with {codes}")
"""


@pytest.mark.parametrize("cgroups", [True, False], ids=["cgroup", "watchdog"])
def test_four_children_together_over_the_memory_limit_fail_the_run(
    db, project, bob, settings, cgroups
):
    settings.PIPELINE_MEMORY_LIMIT_MB = 512
    settings.SANDBOX_CGROUPS = cgroups
    sandbox.status.cache_clear()
    try:
        requires(not cgroups or sandbox.status().cgroups, "this machine lets root make no cgroups")
        started = time.monotonic()
        run = run_here(project, bob, HOGS)
    finally:
        sandbox.status.cache_clear()
    assert run.status == "failed"
    assert run.failure_reason == (
        "the run went over its memory limit of 512 MB (all its processes together)"
    )
    assert time.monotonic() - started < 30
    enforcement = "cgroup" if cgroups else "watchdog"
    assert run.sandbox["memory_enforced_by"].startswith(enforcement)
    assert f"memory ≤ 512 MB ({enforcement}" in log_of(run)


@pytest.mark.parametrize("disks", [True, False], ids=["filesystem", "check"])
def test_the_workspace_has_a_disk_limit(db, project, bob, settings, disks):
    """Held by the kernel where the worker can give the run a file system of its own
    (test_sandbox_disks.py has the attacks only that stops); checked by a walk elsewhere."""
    settings.PIPELINE_DISK_LIMIT_MB = 20
    settings.SANDBOX_DISKS = disks
    run = run_here(
        project,
        bob,
        """
for i in range(100):
    Path(f"chunk_{i}.bin").write_bytes(b"x" * 1024 * 1024)
    time.sleep(0.05)
""",
    )
    assert run.status == "failed"
    assert run.failure_reason == "the run went over its disk limit of 20 MB (AICENTER_RUN_DISK_MB)"
    assert run.output_version is None
    assert run.sandbox["disk_enforced_by"] == ("filesystem" if disks else "check")


@pytest.mark.parametrize("disks", [True, False], ids=["filesystem", "check"])
def test_the_workspace_has_a_file_limit(db, project, bob, settings, disks):
    settings.PIPELINE_FILES_LIMIT = 500
    settings.SANDBOX_DISKS = disks
    run = run_here(
        project,
        bob,
        """
for i in range(3000):
    try:
        Path(f"empty_{i}").touch()
    except OSError:
        pass
    if i % 100 == 0:
        time.sleep(0.1)
""",
    )
    assert run.status == "failed"
    assert run.failure_reason == (
        "the run went over its file limit of 500 files and folders (AICENTER_RUN_FILES)"
    )
    assert run.output_version is None

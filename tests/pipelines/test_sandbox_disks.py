"""A run's disk and file limits are the kernel's: its workspace is a file system of its own
(sandbox/disks.py). Each test is a way package code got past a walk of the workspace,
and what stops it now; a run that reached a limit fails saying which, even when its code
swallowed the error. The leftovers of a killed worker (mounts, images, loop devices) are
reclaimed by the sweep.

Helpers in tests/pipelines/sandboxing.py; fixtures in tests/pipelines/conftest.py."""

import io
import os
import signal
import subprocess

import pytest
from django.conf import settings

from core.models import ManifestEntry
from datasets.models import Dataset
from datasets.services import dataset_file_put
from packages.models import PackageVersion
from pipelines.models import PipelineRun
from pipelines.sweeper import sweep
from tests.conftest import start_worker, stop, wait_for, wait_for_workers, wait_until
from tests.pipelines.sandboxing import log_of, run_here
from tests.pipelines.training import start, train_py

pytestmark = [
    pytest.mark.usefixtures("sandbox_available"),
    pytest.mark.django_db(transaction=True),
]
MB = 1024 * 1024
# What the kernel lets a run write past its disk limit, at most: enough to tell it went over.
SLACK_MB = 8

# Files deleted while open, written on and on, every error swallowed. A walk of the workspace
# never sees them: with a 20 MB limit, this wrote 120 MB and ended Successful.
UNLINKED = """
notes = Path(ENV["notes"])
chunk, held, written = b"x" * (1024 * 1024), [], 0
for n in range(3):  # three files: each stays under the file size limit
    opened = open(f"hidden_{n}.bin", "wb")
    os.unlink(f"hidden_{n}.bin")
    held.append(opened)
    for _ in range(40):
        try:
            opened.write(chunk)
            opened.flush()
            written += 1
            (notes / "written").write_text(str(written))
        except OSError:
            pass
deadline = time.time() + 3
while time.time() < deadline:  # still at it, holding them all
    for opened in held:
        try:
            opened.write(chunk)
            opened.flush()
        except OSError:
            pass
    time.sleep(0.05)
"""


@pytest.mark.usefixtures("runs_stay_here")
def test_files_deleted_while_open_count_and_the_kernel_stops_them(
    db, project, bob, settings, tmp_path
):
    settings.PIPELINE_DISK_LIMIT_MB = 20
    run = run_here(project, bob, UNLINKED, parameters={"notes": str(tmp_path)}, name="hidden")
    assert run.status == "failed"
    assert run.failure_reason == "the run went over its disk limit of 20 MB (AICENTER_RUN_DISK_MB)"
    # the kernel refused what went past the limit, at once: a check, however often it looked,
    # would have let this writer (a gigabyte a second) far past it first
    written = int((tmp_path / "written").read_text())
    assert written <= 20 + SLACK_MB
    assert run.sandbox["disk_enforced_by"] == "filesystem"
    assert "disk ≤ 20 MB, files ≤ 200,000 (filesystem)" in log_of(run)
    assert run.output_version is None


# Names: 100,000 hard links to one file take one inode and a few MB of folders; collected,
# they became a 100,000-entry version. Many empty files take no room at all.
MANY_NAMES = {
    "hard links": """
Path("one.bin").write_bytes(b"1")
for i in range(100_000):
    try:
        os.link("one.bin", f"link_{i}.bin")
    except OSError:
        pass
""",
    "empty files": """
for i in range(5_000):
    try:
        open(f"empty_{i}", "w").close()
    except OSError:
        pass
""",
}


@pytest.mark.usefixtures("runs_stay_here")
@pytest.mark.parametrize("attack", MANY_NAMES)
def test_more_names_than_the_file_limit_fail_the_run_and_store_nothing(
    db, project, bob, settings, attack
):
    settings.PIPELINE_FILES_LIMIT = 1000
    run = run_here(project, bob, MANY_NAMES[attack])
    assert run.status == "failed"
    assert run.failure_reason == (
        "the run went over its file limit of 1,000 files and folders (AICENTER_RUN_FILES)"
    )
    assert run.output_version is None and run.artifacts is None
    assert not PackageVersion.objects.filter(minor__gt=0).exists()
    assert ManifestEntry.objects.count() < 100  # the package's and the dataset's, no more


@pytest.mark.usefixtures("runs_stay_here")
def test_a_dataset_bigger_than_the_disk_limit_fails_the_run_saying_so(db, project, bob, settings):
    settings.PIPELINE_DISK_LIMIT_MB = 20
    run_here(project, bob, "pass", name="first")  # the dataset "d", then a file too big
    dataset = Dataset.objects.get(name="d")
    big = io.BytesIO(os.urandom(30 * MB))
    dataset_file_put(user=bob, dataset=dataset, path="big.bin", fileobj=big)
    run = run_here(project, bob, "pass", name="second")
    assert run.status == "failed"
    assert run.failure_reason == "the run went over its disk limit of 20 MB (AICENTER_RUN_DISK_MB)"


def _disks_of(pid: int):
    return sorted((settings.WORKSPACES_DIR / "disks").glob(f"disk-{pid}-*.img"))


def _mounted(path) -> bool:
    with open("/proc/self/mountinfo") as mounts:
        return any(line.split()[4] == str(path) for line in mounts)


def _loop_devices(image) -> list[str]:
    listing = subprocess.run(
        ["losetup", "--list", "--noheadings", "--output", "NAME,BACK-FILE"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [line.split()[0] for line in listing.splitlines() if str(image) in line]


def test_a_killed_workers_disks_are_reclaimed_by_the_sweep(api, package, dataset):
    package(train_py(extra="        time.sleep(60)"))
    dataset()
    doomed = start_worker("gpu", new_session=True)
    try:
        wait_for_workers(1, queue="gpu", process=doomed)
        run = start(api, gpu=True)
        wait_for(run, statuses=[PipelineRun.RUNNING])
        wait_until(lambda: _disks_of(doomed.pid), 30, "its run has no disk")
        images = _disks_of(doomed.pid)
        mounts = [image.with_suffix("") for image in images]
        assert all(_mounted(mount) for mount in mounts)
        assert all(_loop_devices(image) for image in images)
        wait_until(
            lambda: any(mount.glob(f"run-{run.pk}-*") for mount in mounts), 30, "no workspace"
        )
        os.killpg(doomed.pid, signal.SIGKILL)  # the worker and all it started, as in a crash
        doomed.wait()
    finally:
        stop(doomed)

    def reclaimed():
        sweep()
        return not any(image.exists() or _mounted(image.with_suffix("")) for image in images)

    wait_until(reclaimed, 20, "the dead worker's disks are still there")
    wait_until(
        lambda: not any(_loop_devices(image) for image in images), 10, "a loop device leaked"
    )
    assert not any(mount.exists() for mount in mounts)

    def ended():  # found lost by a later sweep
        sweep()
        run.refresh_from_db()
        return run.is_finished

    wait_until(ended, 40, "the run is not ended")
    assert run.failure_reason.startswith("worker lost")

"""The sandbox, attacked through a run's outputs: links, special files, and a daemon left behind
to swap the new version's files for links after the run.

The sandbox tests' helpers are in tests/pipelines/sandboxing.py, their fixtures in
tests/pipelines/conftest.py."""

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from django.conf import settings

from sandbox.trees import remove_tree
from sandbox.workspace import workspace_folders
from tests.conftest import requires
from tests.pipelines.sandboxing import SECRET, files_of, log_of, no_blob_holds, run_here

# Committed rows: the runner's watch thread reads the run on a connection of its own; the runs
# are executed here, never by a worker.
NOBODY = 65534
pytestmark = [
    pytest.mark.usefixtures("sandbox_available"),
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("runs_stay_here"),
]


# 1. The artifacts folder replaced by a link to the data dir.


def test_a_symlinked_artifacts_folder_is_refused(db, project, bob, secret_file):
    run = run_here(
        project,
        bob,
        """
import shutil
shutil.rmtree(OUT)
os.symlink(str(ENV["target"]), str(OUT))
""",
        parameters={"target": str(settings.DATA_DIR)},
    )
    assert run.status == "failed"
    assert run.failure_reason == (
        "'artifacts' is a symbolic link: outputs are never collected through links"
    )
    assert run.artifacts is None and run.output_version is None
    assert no_blob_holds(SECRET)


def test_links_and_special_files_among_the_outputs_are_skipped_with_a_note(
    db, project, bob, secret_file
):
    run = run_here(
        project,
        bob,
        """
(OUT / "report.txt").write_text("mine")
os.symlink(ENV["target"], str(OUT / "stolen.txt"))
os.symlink(str(Path(ENV["target"]).parent), str(OUT / "stolen_folder"))
os.mkfifo(str(OUT / "pipe"))
""",
        save="""
Path("model.txt").write_text("weights")
os.symlink(ENV["target"], "stolen_model.txt")
""",
        parameters={"target": str(secret_file)},
    )
    assert run.status == "successful", run.failure_reason
    assert files_of(run.artifacts) == {"report.txt": b"mine"}
    version = files_of(run.output_version.manifest)
    assert "model.txt" in version and "stolen_model.txt" not in version
    log = log_of(run)
    assert "skipped artifacts/stolen.txt: a symbolic link" in log
    assert "skipped artifacts/stolen_folder: a symbolic link" in log
    assert "skipped artifacts/pipe: not a regular file" in log
    assert no_blob_holds(SECRET)


def test_outputs_whose_names_are_not_utf8_are_skipped_with_a_note(db, project, bob):
    """The attack: names no database column can hold, to fail the run in the platform."""
    run = run_here(
        project,
        bob,
        """
(OUT / "report.txt").write_text("mine")
open(os.fsencode(OUT) + b"/\\xff\\xfe.txt", "w").write("bytes")
os.mkdir(os.fsencode(OUT) + b"/caf\\xe9")
open(os.fsencode(OUT) + b"/caf\\xe9/inside.txt", "w").write("bytes")
""",
        save="""
Path("model.txt").write_text("weights")
open(b"\\x80model.bin", "w").write("bytes")
""",
    )
    assert run.status == "successful", run.failure_reason
    assert files_of(run.artifacts) == {"report.txt": b"mine"}
    version = files_of(run.output_version.manifest)
    assert version["model.txt"] == b"weights" and not [p for p in version if "model.bin" in p]
    log = log_of(run)
    assert "skipped artifacts/\\xff\\xfe.txt: its name is not UTF-8" in log, log
    assert "skipped artifacts/caf\\xe9/: its name is not UTF-8" in log, log
    assert "skipped \\x80model.bin: its name is not UTF-8" in log, log


# 2. and 5. A daemon left behind swaps the new version's files for links after the run.


DAEMON = """
main = os.getpid()
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:  # double-forked, in a session of its own: a daemon
        shared = Path(ENV["shared"])

        def stamp(name):  # whole or not at all: it may be killed mid-write
            (shared / "stamp").write_text(str(time.time()))
            os.replace(shared / "stamp", shared / name)

        while Path(f"/proc/{main}").exists():  # wait for the run's end
            stamp("heartbeat")
            time.sleep(0.01)
        stamp("outlived")
        while True:  # then swap the new version's files for links to a server file
            for path in Path(".").glob("model_*.txt"):
                attempt(lambda: path.unlink())
                attempt(lambda: os.symlink(ENV["target"], str(path)))
            stamp("heartbeat")
    os._exit(0)
while not Path(ENV["shared"], "heartbeat").exists():
    time.sleep(0.01)
"""


def test_a_daemon_dies_with_its_run_and_swaps_nothing_into_the_new_version(
    db, project, bob, secret_file, tmp_path
):
    run = run_here(
        project,
        bob,
        DAEMON,
        save="""
for i in range(200):
    Path(f"model_{i}.txt").write_text("clean")
""",
        parameters={"target": str(secret_file), "shared": str(tmp_path)},
    )
    ended = time.time()
    assert run.status == "successful", run.failure_reason
    time.sleep(1.0)
    # The daemon may see the main process gone a few milliseconds before the sandbox's
    # namespace is torn down (bwrap reaps it first), and write one file then; it must be dead
    # before the run ends: nothing it wrote comes later.
    outlived = tmp_path / "outlived"
    assert not outlived.exists() or float(outlived.read_text()) < ended, "it outlived its run"
    assert float((tmp_path / "heartbeat").read_text()) < ended
    version = files_of(run.output_version.manifest)
    models = {path: content for path, content in version.items() if path.startswith("model_")}
    # In that moment it may have unlinked files of its own run, or swapped one for a link
    # (never followed: left out): a handful usually, 35 once with the machine under load.
    # What counts: every file that is there is the run's own, clean.
    assert len(models) >= 100 and set(models.values()) == {b"clean"}
    assert no_blob_holds(SECRET)


DEEP_TREE = """
fd = os.open(".", os.O_RDONLY)
for _ in range(3000):  # deeper than Python 3.11's shutil.rmtree can recurse
    os.mkdir("d", dir_fd=fd)
    fd, parent = os.open("d", os.O_RDONLY, dir_fd=fd), fd
    os.close(parent)
os.close(fd)
os.chmod("d", 0o500)  # and a folder locked as it goes
"""


def test_a_tree_too_deep_to_recurse_into_is_skipped_and_removed(db, project, bob):
    """The attack: a tree deeper than Python's stack, which os.fwalk and shutil.rmtree (3.11)
    recurse into, to fail the run in the platform and leave a workspace no sweep can delete."""
    run = run_here(project, bob, DEEP_TREE, save='Path("model.txt").write_text("kept")')
    assert run.status == "successful", run.failure_reason
    assert "skipped d/d/d/" in log_of(run) and "its path is longer than 1000 bytes" in log_of(run)
    assert files_of(run.output_version.manifest)["model.txt"] == b"kept"
    assert not list(workspace_folders(f"run-{run.pk}-*")), "its workspace stayed"


def test_a_deep_tree_with_a_locked_folder_and_links_is_removed_without_following(tmp_path):
    root = tmp_path / "workspace"
    root.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    fd = os.open(root, os.O_RDONLY)
    for _ in range(3000):  # deeper than a path can be named: made level by level
        os.symlink(str(outside), "link", dir_fd=fd)
        os.close(os.open("f.txt", os.O_CREAT | os.O_WRONLY, dir_fd=fd))
        os.mkdir("d", dir_fd=fd)
        fd, parent = os.open("d", os.O_RDONLY, dir_fd=fd), fd
        os.close(parent)
    os.close(fd)
    (root / "d").chmod(0o000)
    remove_tree(root)
    assert not root.exists()
    assert os.listdir(outside) == ["keep.txt"]


def test_a_worker_without_root_removes_the_folders_a_package_locked(tmp_path):
    """Not root, the worker and the package share a uid: what the package chmods 000 or 500,
    remove_tree makes writable again as it goes (root needs no such step)."""
    requires(os.geteuid() == 0, "root, to remove a tree as another, unprivileged user")
    base = Path(tempfile.mkdtemp(prefix="aicenter-locked-"))
    try:
        base.chmod(0o755)
        root = base / "workspace"
        (root / "model" / "deep").mkdir(parents=True)
        (root / "model" / "deep" / "weights.bin").write_bytes(b"w")
        (root / "readonly").mkdir()
        (root / "readonly" / "f.txt").write_text("x")
        for path in [base, root, *root.rglob("*")]:  # the workspaces folder is the worker's
            os.chown(path, NOBODY, NOBODY)
        (root / "model" / "deep").chmod(0o000)
        (root / "readonly").chmod(0o500)
        trees = Path(remove_tree.__code__.co_filename)  # standard library only: run on its own
        code = "import runpy, sys; runpy.run_path(sys.argv[1])['remove_tree'](sys.argv[2])"
        removal = subprocess.run(
            ["/usr/bin/python3", "-c", code, str(trees), str(root)],
            user=NOBODY,
            group=NOBODY,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert removal.returncode == 0, removal.stderr
        assert not root.exists()
    finally:
        shutil.rmtree(base, ignore_errors=True)

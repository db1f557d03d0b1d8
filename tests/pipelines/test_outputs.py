"""Collecting a run's outputs from its workspace never follows a link: the collector itself,
attacked with links at every level (the runs that do this for real are in test_sandbox.py)."""

import os

import pytest

from sandbox.workspace import UnsafeOutput, collected_files


def collect(root, relative="", **options):
    notes = []
    files = {
        path: f.read() for path, f in collected_files(root, relative, note=notes.append, **options)
    }
    return files, notes


@pytest.fixture
def outside(tmp_path):
    secret = tmp_path / "server"
    secret.mkdir()
    (secret / "key.txt").write_text("SECRET")
    return secret


def test_regular_files_are_collected_with_their_paths(tmp_path):
    package = tmp_path / "package"
    (package / "artifacts" / "plots").mkdir(parents=True)
    (package / "model.txt").write_text("w")
    (package / "artifacts" / "plots" / "loss.png").write_bytes(b"png")
    (package / "__pycache__").mkdir()
    (package / "__pycache__" / "x.pyc").write_bytes(b"")
    files, notes = collect(package, exclude=["artifacts"])
    assert files == {"model.txt": b"w"} and notes == []
    assert collect(package, "artifacts")[0] == {"plots/loss.png": b"png"}


def test_a_linked_package_folder_is_refused(tmp_path, outside):
    os.symlink(outside, tmp_path / "package")
    with pytest.raises(UnsafeOutput, match="replaced by a link"):
        collect(tmp_path / "package")


def test_a_link_anywhere_on_the_way_to_the_artifacts_is_refused(tmp_path, outside):
    package = tmp_path / "package"
    package.mkdir()
    os.symlink(outside, package / "out")  # artifacts_directory = out/artifacts
    (outside / "artifacts").mkdir()
    (outside / "artifacts" / "stolen.txt").write_text("SECRET")
    with pytest.raises(UnsafeOutput, match="'out/artifacts' is a symbolic link"):
        collect(package, "out/artifacts")


def test_missing_artifacts_or_a_file_in_their_place_give_nothing(tmp_path):
    package = tmp_path / "package"
    package.mkdir()
    assert collect(package, "artifacts") == ({}, [])
    (package / "artifacts").write_text("not a folder")
    assert collect(package, "artifacts") == ({}, [])


def test_links_and_special_files_inside_are_skipped_with_a_note(tmp_path, outside):
    package = tmp_path / "package"
    (package / "deep").mkdir(parents=True)
    (package / "ok.txt").write_text("ok")
    os.symlink(outside / "key.txt", package / "deep" / "key.txt")
    os.symlink(outside, package / "server")
    os.symlink("/nonexistent", package / "dangling")
    os.mkfifo(package / "fifo")
    files, notes = collect(package)
    assert files == {"ok.txt": b"ok"}
    assert sorted(notes) == [
        "skipped dangling: a symbolic link (outputs are never collected through links)",
        "skipped deep/key.txt: a symbolic link (outputs are never collected through links)",
        "skipped fifo: not a regular file",
        "skipped server: a symbolic link (outputs are never collected through links)",
    ]

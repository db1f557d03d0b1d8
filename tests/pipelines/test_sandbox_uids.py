"""Sandbox uids (sandbox/sandbox_uids.py) attacked: a uid shared by two holders at
once, or handed to a new holder while something of the last one is left, lets one project's
code use up the other's process limit, signal its processes or read what it left (the kernel's
keyrings are the uid's). Runs, sandboxes started ahead, builds and skill replicas each lease
from their own part of AICENTER_SANDBOX_UIDS, from the database, never from Redis.

The sandbox tests' helpers are in tests/pipelines/sandboxing.py, their fixtures in
tests/pipelines/conftest.py."""

import contextlib
import os
import subprocess
import sys
import threading

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection

from aicenter.setting_values import uid_range
from core import queue
from environments.builds import EnvironmentUnavailable
from environments.environments import environment_for
from environments.records import environment_key
from pipelines.runner import ahead
from sandbox import sandbox_uids
from sandbox.models import SandboxUid
from sandbox.sandbox_uids import AHEAD, BUILD, REPLICA, RUN
from tests.conftest import stop, upload, wait_until
from tests.factories import package_zip
from tests.package_index import sdist
from tests.pipelines.sandboxing import files_of, log_of, run_here

pytestmark = [
    pytest.mark.usefixtures("sandbox_available"),
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("runs_stay_here"),
]

UID = '(OUT / "uid.txt").write_text(str(os.getuid()))'
SMALLEST = 65  # AICENTER_SANDBOX_UIDS's least: 8 uids for builds, 8 for replicas


@pytest.fixture(autouse=True)
def nothing_ahead():
    ahead.discard()
    yield
    ahead.discard()


@pytest.fixture
def processes_as():
    """Start a process as each of these uids (as anything on the machine could); all ended
    and reaped after the test."""
    started = []

    def start(*uids):
        for uid in uids:
            ids = [f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
            started.append(subprocess.Popen(["setpriv", *ids, "sleep", "300"]))
        wait_until(lambda: all(map(sandbox_uids.in_use, uids)), 10, "not started")
        return {uid: process for uid, process in zip(uids, started[-len(uids) :], strict=True)}

    yield start
    for process in started:
        process.kill()
        process.wait()


def uid_of(run) -> int:
    assert run.status == "successful", (run.failure_reason, log_of(run))
    return int(files_of(run.artifacts)["uid.txt"])


def written(path) -> bool:
    """Has a process written its uid there yet? (It makes the file, then writes.)"""
    return path.exists() and path.read_text().strip().isdigit()


def workspace(name: str):
    folder = settings.WORKSPACES_DIR / name
    folder.mkdir(parents=True)
    return folder


def test_after_redis_comes_back_empty_a_sandbox_started_ahead_gets_a_uid_never_used(
    db, project, bob
):
    redis = queue.connection("pipelines")
    redis.flushdb()  # from an empty Redis, as it is after a restart without its data
    used = {uid_of(run_here(project, bob, UID, go_ahead=True))}
    used.add(ahead._ahead.uid)
    taken = run_here(project, bob, UID, name="b", go_ahead=True)
    assert "(started ahead)" in log_of(taken) and uid_of(taken) in used
    used.add(ahead._ahead.uid)
    ahead.discard()
    redis.flushdb()  # and again
    used.add(uid_of(run_here(project, bob, UID, name="c", go_ahead=True)))
    assert ahead._ahead.uid not in used


def test_a_run_never_gets_a_uid_that_a_process_still_has(db, project, bob, settings, processes_as):
    uid_of(run_here(project, bob, UID, name="warm"))  # its environment is built
    first = settings.SANDBOX_UIDS[0]
    settings.SANDBOX_UIDS = (first, first + SMALLEST - 1)
    alive = processes_as(*range(first, first + SMALLEST))  # every uid a sandbox could have
    run = run_here(project, bob, UID)
    assert run.status == "failed", f"it ran as {files_of(run.artifacts).get('uid.txt')}"
    assert "every uid for runs in AICENTER_SANDBOX_UIDS" in run.failure_reason
    assert "held or has a process" in run.failure_reason
    free = sandbox_uids.part(RUN)[3]
    alive[free].kill()
    alive[free].wait()
    assert uid_of(run_here(project, bob, UID, name="b")) == free


def test_four_kinds_at_once_lease_four_uids_each_from_its_own_part(db):
    leases = {kind: sandbox_uids.lease(kind, f"{kind}-1-test") for kind in (RUN, AHEAD, BUILD)}
    leases[REPLICA] = sandbox_uids.lease(REPLICA, "skill-1-test")
    assert len({lease.uid for lease in leases.values()}) == 4
    for kind, lease in leases.items():
        assert lease.uid in sandbox_uids.part(kind)
    assert sandbox_uids.probe_uid() not in [lease.uid for lease in leases.values()]
    parts = [set(sandbox_uids.part(kind)) for kind in leases]
    assert (
        sum(map(len, parts))
        == len(set().union(*parts))
        == settings.SANDBOX_UIDS[1] - (settings.SANDBOX_UIDS[0])
    )


def test_a_held_uid_is_not_leased_again_and_a_given_back_one_only_after_a_round(db, settings):
    first = settings.SANDBOX_UIDS[0]
    settings.SANDBOX_UIDS = (first, first + SMALLEST - 1)
    size = len(sandbox_uids.part(BUILD))
    held = sandbox_uids.lease(BUILD, "build-held")
    given_back = sandbox_uids.lease(BUILD, "build-back")
    assert given_back.release()
    seen = [sandbox_uids.lease(BUILD, f"build-{n}").uid for n in range(size - 2)]
    assert held.uid not in seen and given_back.uid not in seen
    assert len(set(seen)) == size - 2
    # the round is over: the one given back is the only uid free
    assert sandbox_uids.lease(BUILD, "build-one-more").uid == given_back.uid
    with pytest.raises(sandbox_uids.UidsExhausted, match="every uid for builds"):
        sandbox_uids.lease(BUILD, "build-two-more")


def test_a_uid_is_not_given_back_while_its_workspace_or_a_process_of_it_is_left(db, processes_as):
    folder = workspace("run-1-left")
    lease = sandbox_uids.lease(RUN, folder.name)
    assert not lease.release()  # its workspace is there
    folder.rmdir()
    alive = processes_as(lease.uid)[lease.uid]  # say, a daemon of a run without sandbox
    assert not lease.release(wait=0.1)
    assert SandboxUid.objects.get(uid=lease.uid).held
    sandbox_uids.release_left()  # the sweeper: still there
    assert SandboxUid.objects.get(uid=lease.uid).held
    alive.kill()
    alive.wait()
    sandbox_uids.release_left()
    assert not SandboxUid.objects.get(uid=lease.uid).held


def test_the_sweeper_gives_back_a_builds_uid_only_once_its_process_is_gone(db):
    lease = sandbox_uids.lease(BUILD, "build-abc-1")  # this process leased it: still building
    sandbox_uids.release_left()
    assert SandboxUid.objects.get(uid=lease.uid).held
    gone = subprocess.Popen(["true"])
    gone.wait()
    SandboxUid.objects.filter(uid=lease.uid).update(pid=gone.pid)  # its worker was killed
    sandbox_uids.release_left()
    assert not SandboxUid.objects.get(uid=lease.uid).held


def test_the_sweeper_leaves_other_machines_uids_alone(db):
    lease = sandbox_uids.lease(AHEAD, "ahead-1-elsewhere")
    SandboxUid.objects.filter(uid=lease.uid).update(host="another-machine")
    sandbox_uids.release_left()
    assert SandboxUid.objects.get(uid=lease.uid).held
    assert sandbox_uids.lease(AHEAD, "ahead-2-here").uid != lease.uid


def test_workers_leasing_at_once_never_share_a_uid(db):
    got, errors = [], []

    def worker(n):
        try:
            for i in range(10):
                got.append(sandbox_uids.lease(RUN, f"run-{n}-{i}").uid)
        except Exception as error:  # noqa: BLE001 - the test reports it
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(got) == len(set(got)) == 40
    assert SandboxUid.objects.filter(held=True).count() == 40


@pytest.mark.parametrize("uids", ["200000-200063", "0-99999", "300-200", "x", "200000"])
def test_a_range_too_small_for_the_four_parts_is_refused(uids):
    with pytest.raises(ImproperlyConfigured, match="is not a range of at least 65 uids"):
        uid_range(uids)
    assert uid_range("200000-200064") == (200000, 200064)


def test_a_range_too_small_is_refused_at_start():
    started = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=settings.BASE_DIR,
        env={
            **os.environ,
            "AICENTER_SANDBOX_UIDS": "200000-200010",
            "DJANGO_SETTINGS_MODULE": "aicenter.settings",
        },
        capture_output=True,
        text=True,
    )
    assert started.returncode != 0
    assert "AICENTER_SANDBOX_UIDS='200000-200010' is not a range of at least 65 uids" in (
        started.stderr
    )


def test_a_worker_that_is_not_root_leases_nothing(db, monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1234)
    lease = sandbox_uids.lease(RUN, "run-1-mine")
    assert lease.uid == 1234 and lease.release()
    assert not SandboxUid.objects.exists()


def test_the_uid_a_run_held_is_given_back_when_it_ends(db, project, bob):
    run = run_here(project, bob, UID)
    row = SandboxUid.objects.get(uid=uid_of(run))
    assert row.kind == RUN and not row.held and row.holder.startswith(f"run-{run.pk}-")


BLOCKING_SETUP_PY = """\
import os, time
from pathlib import Path
from setuptools import setup

here = Path(FOLDER)  # the environment it builds: all it may write
(here / "uid").write_text(str(os.getuid()))
deadline = time.time() + 60
while not (here / "go").exists() and time.time() < deadline:
    time.sleep(0.05)
setup(name="uidpkg", version="1.0")
"""
BLOCKING_TRAIN = """
shared = Path(ENV["shared"])
(shared / "uid").write_text(str(os.getuid()))
deadline = time.time() + 60
while not (shared / "go").exists() and time.time() < deadline:
    time.sleep(0.05)
"""


def test_a_run_an_ahead_sandbox_a_build_and_a_replica_alive_at_once_have_four_uids(
    db, project, bob, api_as, settings, tmp_path, package_index
):
    from tests.skills.conftest import ECHO, deploy, predict, start_skill_host, wait_available

    api = api_as(bob)
    uid_of(run_here(project, bob, UID, go_ahead=True))
    waiting = ahead._ahead  # a sandbox started ahead, waiting for its run
    host = start_skill_host()
    settings.ENVIRONMENT_SOURCE_BUILDS = True
    source = settings.ENVIRONMENTS_DIR / environment_key("3.11", "uidpkg==1.0")
    setup_py = BLOCKING_SETUP_PY.replace("FOLDER", repr(str(source)))
    shared = tmp_path  # where the long run writes its uid and waits

    def build():
        try:
            environment_for(python_version="3.11", requirements="uidpkg==1.0")
        except EnvironmentUnavailable:
            pass  # whether it installs does not matter: its uid does
        finally:
            connection.close()

    def train():
        try:
            run_here(project, bob, BLOCKING_TRAIN, name="long", parameters={"shared": str(shared)})
        finally:
            connection.close()

    threads = [threading.Thread(target=build), threading.Thread(target=train)]
    with package_index.serving("uidpkg", sdist("uidpkg", "1.0", setup_py)):
        try:
            package = package_zip(**{"main.py": ECHO})
            answer = api.post(
                "/api/v1/projects/alpha/packages",
                {"name": "echo", "file": upload(content=package), "input_type": "json"},
            )
            assert answer.status_code == 201, answer.content
            deploy(api)
            wait_available(api)
            for thread in threads:
                thread.start()
            wait_until(lambda: written(source / "uid") and written(shared / "uid"), 60, "not up")
            uids = {
                RUN: int((shared / "uid").read_text()),
                AHEAD: waiting.uid,
                BUILD: int((source / "uid").read_text()),
                REPLICA: predict(api, body="whoami").json()["uid"],
            }
            assert waiting.process.poll() is None  # still there
            assert len(set(uids.values())) == 4, uids
            for kind, uid in uids.items():
                assert uid in sandbox_uids.part(kind), (kind, uid)
        finally:
            with contextlib.suppress(FileNotFoundError):  # a build that failed is gone
                (source / "go").touch()
            (shared / "go").touch()
            for thread in threads:
                if thread.is_alive() or thread.ident:
                    thread.join(timeout=120)
            stop(host)

"""A skill's life on real skill hosts: replicas restarted after a crash, two replicas both
used, an auto-update after a training run with calls running throughout (none fails), a
version that fails to load leaving the old one serving, undeploy and deploy, a lost host."""

import os
import signal
import threading
import time
from pathlib import Path

import pytest
from django.db import connection

from pipelines.models import PipelineRun
from skills.models import SkillHost
from tests.conftest import stop, upload, wait_for, wait_until
from tests.factories import package_zip
from tests.skills.conftest import (
    API,
    ECHO,
    deploy,
    predict,
    skill_of,
    start_skill_host,
    wait_available,
)

pytestmark = pytest.mark.django_db(transaction=True)

# Training writes version.txt into the package: the trained version's replicas say "trained".
TRAIN = """\
class Main:
    def __init__(self):
        pass

    def train(self, data_directory):
        pass

    def evaluate(self, evaluation_directory):
        return 0.9

    def save(self):
        open("version.txt", "w").write("trained")
"""


def replica_pids() -> list[int]:
    """Host pids of this test process's replicas' Python processes (their argv names them;
    another test process may run skills of its own at the same time)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if any(a.startswith(b"aicenter-replica-") for a in argv) and b"-c" in argv:
                if not argv[0].endswith(b"bwrap") and b"/bin/sh" not in argv[0]:
                    if _descends_from_us(int(entry.name)):
                        found.append(int(entry.name))
    return found


def _descends_from_us(pid: int) -> bool:
    while pid > 1:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return False
        pid = int(status.split("\nPPid:\t", 1)[1].split("\n", 1)[0])
        if pid == os.getpid():
            return True
    return False


def calling(api, errors, answers, stop_event, body="whoami"):
    """Call the skill in a loop until `stop_event`; every non-200 is an error. The thread's
    database connection is closed after (the test client keeps it open, and a connection left
    would hold the test database when it is dropped)."""
    try:
        while not stop_event.is_set():
            response = predict(api, body=body)
            if response.status_code != 200:
                errors.append((response.status_code, response.content[:300]))
            else:
                answers.append(response.json())
    finally:
        connection.close()


def test_a_killed_replica_is_restarted_and_serves_again(api, skill_host, echo, sandboxed):
    echo()
    deploy(api)
    wait_available(api)
    first = predict(api, body="whoami").json()["pid"]
    (pid,) = replica_pids()
    os.kill(pid, signal.SIGKILL)
    killed_at = time.monotonic()
    wait_until(
        lambda: predict(api, body="x").status_code == 200 and replica_pids() != [pid],
        10,
        "the killed replica was not restarted",
    )
    assert time.monotonic() - killed_at < 5
    assert predict(api, body="whoami").status_code == 200 and first
    assert skill_of().replica_rows.get().restarts == 1


def test_predict_ending_the_process_fails_that_call_only(api, skill_host, echo, sandboxed):
    echo()
    deploy(api)
    wait_available(api)
    response = predict(api, body="crash")
    assert response.status_code == 502 and "ended" in response.json()["detail"]
    wait_until(lambda: predict(api, body="x").status_code == 200, 10, "not restarted")


def test_two_replicas_both_answer(api, skill_host, echo, sandboxed):
    echo()
    deploy(api, replicas=2)
    wait_until(lambda: api.get(f"{API}/skills/echo-skill").json()["replicas_up"] == 2, 60,
               "two replicas never came up")  # fmt: skip
    answers, errors, done = [], [], threading.Event()
    threads = [
        threading.Thread(target=calling, args=(api, errors, answers, done)) for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    time.sleep(2)
    done.set()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(replica_pids()) == 2
    assert len({(a["pid"], a["uid"]) for a in answers}) == 2  # both took calls


def test_auto_update_after_training_fails_no_call(api, worker, skill_host, echo, sandboxed):
    echo(**{"train.py": TRAIN})
    api.post_json(f"{API}/datasets", {"name": "invoices"})
    api.put(f"{API}/datasets/invoices/files/a.csv", b"1\n", content_type="text/csv")
    deploy(api, auto_update=True)
    wait_available(api)
    answers, errors, done = [], [], threading.Event()
    threads = [
        threading.Thread(target=calling, args=(api, errors, answers, done)) for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    try:
        response = api.post_json(
            f"{API}/pipelines",
            {"type": "train", "package": "echo", "version": "1.0", "dataset": "invoices"},
        )
        run = wait_for(PipelineRun.objects.get(pk=response.json()["id"]))
        assert run.status == "successful", run.failure_reason
        wait_until(lambda: answers and answers[-1]["version"] == "trained", 60,
                   "the skill never served the trained version")  # fmt: skip
        time.sleep(1.5)  # the old replica stops meanwhile
    finally:
        done.set()
        for thread in threads:
            thread.join()
    assert not errors, errors[:3]
    skill = api.get(f"{API}/skills/echo-skill").json()
    assert (skill["version"], skill["serving_version"], skill["status"]) == (
        "1.1",
        "1.1",
        "available",
    )
    assert len(replica_pids()) == 1  # the old one stopped
    assert {a["version"] for a in answers} == {"?", "trained"}


BROKEN = ECHO.replace(
    "    def __init__(self):\n", "    def __init__(self):\n        import nothing_here\n"
)


def test_a_version_that_fails_to_load_leaves_the_old_one_serving(api, skill_host, echo, sandboxed):
    echo()
    deploy(api)
    wait_available(api)
    content = package_zip(**{"main.py": BROKEN})
    response = api.post(f"{API}/packages/echo/versions", {"file": upload(content=content)})
    assert response.status_code == 201, response.content
    answers, errors, done = [], [], threading.Event()
    caller = threading.Thread(target=calling, args=(api, errors, answers, done))
    caller.start()
    try:
        changed = api.patch_json(f"{API}/skills/echo-skill", {"version": "2.0"}).json()
        assert changed["status"] == "updating"

        def settled():
            skill = api.get(f"{API}/skills/echo-skill").json()
            return skill["status"] == "available" and skill["reason"]

        wait_until(settled, 60, "the failed update never settled")
    finally:
        done.set()
        caller.join()
    skill = api.get(f"{API}/skills/echo-skill").json()
    assert (skill["version"], skill["serving_version"]) == ("1.0", "1.0")
    assert "Version 2.0 failed to load" in skill["reason"]
    assert "ModuleNotFoundError: No module named 'nothing_here'" in skill["reason"]
    assert not errors and answers


def test_a_first_deployment_that_fails_is_failed_and_can_be_deployed_again(
    api, skill_host, echo, sandboxed
):
    echo(main=BROKEN)
    deploy(api)
    skill = wait_available(api, status="failed")
    assert "No module named 'nothing_here'" in skill["reason"]
    response = predict(api)
    assert response.status_code == 503
    assert "failed to deploy: Version 1.0 failed to load" in response.json()["detail"]
    assert api.post_json(f"{API}/skills/echo-skill/deploy", {}).json()["status"] == "deploying"


def test_undeploy_then_deploy(api, skill_host, echo, sandboxed):
    echo()
    deploy(api)
    wait_available(api)
    assert api.post_json(f"{API}/skills/echo-skill/undeploy", {}).json()["status"] == "undeployed"
    response = predict(api)
    assert response.status_code == 503 and "undeployed" in response.json()["detail"]
    wait_until(lambda: not replica_pids(), 10, "undeploy left a replica running")
    api.post_json(f"{API}/skills/echo-skill/deploy", {})
    wait_available(api)
    assert predict(api, body="back").content == b"back"


def test_a_lost_host_has_its_replicas_started_on_another(api, echo, sandboxed, transactional_db):
    env = {"AICENTER_SKILL_HOST_LOST_AFTER": "3"}
    first = start_skill_host(env=env)
    try:
        echo()
        deploy(api)
        wait_available(api)
        second = start_skill_host(env=env)
        try:
            os.killpg(first.pid, signal.SIGKILL)  # the host and its replicas, at once
            first.wait()
            lost_at = time.monotonic()
            wait_until(
                lambda: (
                    predict(api, body="x").status_code == 200 and SkillHost.objects.count() == 1
                ),
                30,
                "the replica was not started on the other host",
            )
            assert time.monotonic() - lost_at < 15
        finally:
            stop(second)
    finally:
        stop(first)


def test_a_starting_host_removes_the_workspaces_of_replicas_that_are_gone(
    api, skill_host, echo, sandboxed, settings
):
    echo()
    deploy(api)
    wait_available(api)
    (live,) = settings.WORKSPACES_DIR.glob(f"skill-{skill_of().replica_rows.get().pk}-*")
    orphan = settings.WORKSPACES_DIR / "skill-999999-left"  # a killed host's replica
    (orphan / "package").mkdir(parents=True)
    (orphan / "package" / "model.bin").write_bytes(b"weights")
    second = start_skill_host()
    try:
        wait_until(lambda: not orphan.exists(), 10, "the orphan workspace was left")
        assert live.exists() and predict(api, body="still").content == b"still"
    finally:
        stop(second)


def test_a_running_host_removes_the_workspaces_of_replicas_that_are_gone_too(
    api, skill_host, echo, sandboxed, settings
):
    """Another host of this machine killed while this one runs: its replicas' workspaces go
    on the running host's next sweep, not at its next start."""
    echo()
    deploy(api)
    wait_available(api)
    (live,) = settings.WORKSPACES_DIR.glob(f"skill-{skill_of().replica_rows.get().pk}-*")
    orphan = settings.WORKSPACES_DIR / "skill-999998-left"
    (orphan / "package").mkdir(parents=True)
    (orphan / "package" / "model.bin").write_bytes(b"weights")
    wait_until(lambda: not orphan.exists(), 10, "the running host left the orphan workspace")
    assert live.exists() and predict(api, body="still").content == b"still"

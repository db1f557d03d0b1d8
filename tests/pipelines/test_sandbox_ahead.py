"""The next run's sandbox, started ahead (pipelines/runner/ahead.py), attacked: a run that takes
it sees what a cold start would, nothing of the run before, and its process never had a
moment as root or with a folder the worker writes into.

Runs go through the runner in this process as a worker's would (go_ahead), so the test holds
the sandbox started ahead."""

import json
import os
import subprocess
import sys

import pytest
from django.conf import settings
from rq import Worker

from core import queue
from pipelines import sweeper
from pipelines.models import PipelineRun
from pipelines.runner import ahead
from sandbox import sandbox, sandbox_uids
from sandbox.workspace import workspace_folders
from tests.conftest import (
    log_tail,
    start_worker,
    stop,
    wait_for,
    wait_for_workers,
    wait_until,
    worker_alive,
)
from tests.pipelines.sandboxing import files_of, log_of, run_here

pytestmark = [
    pytest.mark.usefixtures("sandbox_available"),
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("runs_stay_here"),
]

STARTED_AHEAD = "(started ahead)"
WHO = """
import sys
print("hello from", os.getuid(), flush=True)
(OUT / "who.json").write_text(json.dumps({
    "uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(), "env": dict(ENV),
    "argv": sys.argv, "stdin": sys.stdin.read(), "cwd": os.getcwd(), "path": sys.path,
    "tmp": sorted(os.listdir("/tmp")), "shm": sorted(os.listdir("/dev/shm")),
    "home": sorted(os.listdir(ENV["HOME"])),
    "processes": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
}))
"""


@pytest.fixture(autouse=True)
def nothing_ahead():
    ahead.discard()
    yield
    ahead.discard()


def who(run) -> dict:
    assert run.status == "successful", (run.failure_reason, log_of(run))
    return json.loads(files_of(run.artifacts)["who.json"])


def test_the_next_run_takes_the_sandbox_started_ahead_and_sees_only_its_own(db, project, bob):
    first = run_here(project, bob, WHO, parameters={"colour": "red"}, name="a", go_ahead=True)
    assert STARTED_AHEAD not in log_of(first)
    second = run_here(project, bob, WHO, parameters={"shape": "round"}, name="b", go_ahead=True)
    assert STARTED_AHEAD in log_of(second)
    assert "hello from" in log_of(second)  # its output is its log, as a cold start's
    cold, warm = who(first), who(second)
    # its own uid, never root, of the part kept for sandboxes started ahead
    assert warm["uid"] == warm["gid"] != 0 and warm["groups"] == []
    assert warm["uid"] in sandbox_uids.part(sandbox_uids.AHEAD)
    assert warm["uid"] != cold["uid"]
    # exactly a cold start's variables: its own parameters, none of the run before
    assert warm["env"]["shape"] == "round" and "colour" not in warm["env"]
    assert set(warm["env"]) - {"shape"} == set(cold["env"]) - {"colour"}
    assert warm["env"]["HOME"].startswith(str(settings.WORKSPACES_DIR))
    assert os.path.dirname(warm["cwd"]) == os.path.dirname(warm["env"]["HOME"])
    assert warm["argv"] == cold["argv"] == ["-c"]
    assert warm["stdin"] == cold["stdin"] == ""  # the plan is not left for the package to read
    assert warm["path"][0] == cold["path"][0] == ""
    # and a third run takes the one this run started
    assert STARTED_AHEAD in log_of(run_here(project, bob, WHO, name="c", go_ahead=True))


def test_nothing_of_the_run_before_is_left_for_the_run_that_takes_the_next_sandbox(
    db, project, bob
):
    run_here(
        project,
        bob,
        """
for folder in ("/tmp", "/dev/shm", ENV["HOME"]):
    Path(folder, "leftover").write_text("x")
# a daemon that tries to outlive the run, to meet the next one
subprocess.Popen(["sleep", "300"], start_new_session=True)
""",
        name="leaver",
        go_ahead=True,
    )
    nxt = who(run_here(project, bob, WHO, name="next", go_ahead=True))
    assert "leftover" not in nxt["tmp"] + nxt["shm"] + nxt["home"]
    assert nxt["processes"] == [1, 2]  # bwrap's init and itself: no sleep of the run before
    assert STARTED_AHEAD in log_of(project.pipeline_runs.latest("pk"))


def test_the_process_started_ahead_is_never_root_and_cant_touch_the_folder_it_will_run_in(
    db, project, bob
):
    run_here(project, bob, WHO, go_ahead=True)
    started = ahead._ahead
    assert started is not None and started.process.poll() is None
    # every process in it runs as its uid, from the start
    wait_until(
        lambda: sandbox.sandbox_processes(started.process.pid), 10, "its Python never started"
    )
    pids = sandbox.sandbox_processes(started.process.pid)
    for pid in pids:
        status = dict(
            line.split(":", 1) for line in open(f"/proc/{pid}/status").read().splitlines()
        )
        assert set(status["Uid"].split()) == {str(started.uid)}
        assert status["CapEff"].strip() == "0" * 16
    # its package folder is the worker's until the run's files are in it: code run at the
    # interpreter's start (an environment's .pth) can't plant a link there for the worker
    package = started.workspace.package
    assert package.stat().st_uid == 0
    attempt = subprocess.run(
        [
            "setpriv",
            f"--reuid={started.uid}",
            f"--regid={started.uid}",
            "--clear-groups",
            "ln",
            "-s",
            "/etc",
            str(package / "data"),
        ],
        capture_output=True,
    )
    assert attempt.returncode != 0 and not (package / "data").exists()


def test_another_network_setting_gets_a_cold_start(db, project, bob):
    run_here(project, bob, WHO, go_ahead=True)
    waiting = ahead._ahead.process
    project.allow_network = True
    project.save()
    run = run_here(project, bob, WHO, name="b", go_ahead=True)
    assert STARTED_AHEAD not in log_of(run)
    assert who(run)["uid"] != 0
    assert waiting.poll() is not None  # the one started ahead was ended, not left waiting


def test_the_sweeper_removes_what_the_sandboxes_of_gone_workers_left(db, project, bob):
    gone = subprocess.Popen(["true"])
    gone.wait()  # a pid no process has now
    settings.WORKSPACES_DIR.mkdir(parents=True, exist_ok=True)
    left = settings.WORKSPACES_DIR / f"{ahead.KIND}-{gone.pid}-x1"
    mine = settings.WORKSPACES_DIR / f"{ahead.KIND}-{os.getpid()}-x2"
    for folder in (left, mine):
        (folder / "package").mkdir(parents=True)
    sweeper.remove_ahead_leftovers()
    assert not left.exists()
    assert mine.exists()  # its worker (here, this process) is alive
    mine.joinpath("package").rmdir()
    mine.rmdir()


def test_a_worker_that_stops_leaves_no_sandbox_started_ahead(db, project, bob, api_as, monkeypatch):
    run_here(project, bob, WHO, go_ahead=False)  # the package "attack" and the dataset "d"
    monkeypatch.undo()  # runs_stay_here: this test's runs go to a worker
    others = [w for w in Worker.all(connection=queue.connection("pipelines")) if worker_alive(w)]
    process = start_worker("pipelines")
    try:
        wait_for_workers(len(others) + 1, process=process)
        for _ in range(10):  # until it, not another test's worker, ran one
            response = api_as(bob).post_json(
                "/api/v1/projects/alpha/pipelines",
                {"type": "train", "package": "attack", "version": "1.0", "dataset": "d"},
            )
            run = wait_for(PipelineRun.objects.get(pk=response.json()["id"]))
            if run.worker.endswith(f":{process.pid}"):
                break
        assert run.worker.endswith(f":{process.pid}")
        mine = f"{ahead.KIND}-{process.pid}-*"
        wait_until(lambda: list(workspace_folders(mine)), 10, "nothing started ahead")
    finally:
        stop(process)
    assert process.returncode == 0, log_tail(process)
    assert list(workspace_folders(mine)) == []


def test_the_worker_walks_nothing_the_process_started_ahead_could_have_changed(db, project, bob):
    """Its home, tmp and metrics folders are its own from the start: walking them again to hand
    them over, as its code changes them, could follow a folder swapped for a link. Only the
    package folder, the worker's till then, is handed over when the run takes it."""
    run_here(project, bob, WHO, go_ahead=True)
    started = ahead._ahead
    planted = started.workspace.home / "planted"
    planted.write_text("x")
    os.chown(planted, 4321, 4321)  # stands for anything there the worker must not touch
    run = run_here(
        project,
        bob,
        """
(OUT / "owners.json").write_text(json.dumps({
    "planted": os.lstat(Path(ENV["HOME"], "planted")).st_uid,
    "package": os.stat(".").st_uid, "train.py": os.stat("train.py").st_uid,
    "uid": os.getuid(),
}))
""",
        name="b",
        go_ahead=True,
    )
    assert STARTED_AHEAD in log_of(run)
    owners = json.loads(files_of(run.artifacts)["owners.json"])
    assert owners["planted"] == 4321
    assert owners["package"] == owners["train.py"] == owners["uid"] == started.uid


def test_a_cgroup_never_kills_a_process_group_for_a_process_it_cant_see():
    """cgroup v2 lists a process of another PID namespace as 0, and kill(0) is the caller's
    whole process group: a worker removing such a cgroup would kill itself."""
    code = (
        "import signal; from sandbox.cgroups import kill; "
        "kill(0, signal.SIGKILL); kill(-1, signal.SIGKILL); print('alive')"
    )
    child = subprocess.run(
        [sys.executable, "-c", code],
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        start_new_session=True,  # its own group: kill(0) would end it alone
        timeout=30,
    )
    assert (child.returncode, child.stdout) == (0, "alive\n"), child.stderr

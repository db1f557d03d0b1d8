"""The sandbox, attacked from within: what a run can see of the runs before it, of the other runs
and of the server.

The sandbox tests' helpers are in tests/pipelines/sandboxing.py, their fixtures in
tests/pipelines/conftest.py."""

import json
import os
from pathlib import Path

import pytest
from django.conf import settings

from pipelines.models import PipelineRun
from sandbox import sandbox_uids
from tests.conftest import upload, wait_for, wait_until
from tests.factories import package_zip
from tests.pipelines.sandboxing import API, files_of, run_here, train_py

# Committed rows: the runner's watch thread reads the run on a connection of its own; the runs
# are executed here, never by a worker.
pytestmark = [
    pytest.mark.usefixtures("sandbox_available"),
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("runs_stay_here"),
]


# 2. Nothing of a run is left for the next one.


def test_nothing_of_the_run_is_left_in_tmp_and_shm(db, project, bob):
    first = run_here(
        project,
        bob,
        """
for folder in ("/tmp", "/var/tmp", "/dev/shm"):
    Path(folder, "leftover-aicenter").write_text("x")
""",
        name="leaver",
    )
    assert first.status == "successful", first.failure_reason
    assert not Path("/tmp/leftover-aicenter").exists()
    second = run_here(
        project,
        bob,
        """
found = [f for f in ("/tmp", "/var/tmp", "/dev/shm") if Path(f, "leftover-aicenter").exists()]
(OUT / "found.json").write_text(json.dumps(found))
""",
        name="finder",
    )
    assert json.loads(files_of(second.artifacts)["found.json"]) == []


# 5. Another run's processes, through /proc.


def test_a_run_sees_no_other_run_and_not_its_environ(
    api_as, bob, worker, second_worker, tmp_path, monkeypatch
):
    monkeypatch.undo()  # these runs go through the workers
    api = api_as(bob)
    train = train_py(
        """
if ENV.get("mode") == "victim":
    Path(ENV["shared"], "victim-started").write_text("1")
    while not Path(ENV["shared"], "release").exists():
        time.sleep(0.05)
    return
found, seen = [], []
for entry in Path("/proc").iterdir():
    if entry.name.isdigit() and int(entry.name) != os.getpid():  # its own holds the secret
        seen.append(entry.name)
        for part in ("environ", "cmdline"):
            text = attempt(lambda: (entry / part).read_bytes().decode(errors="replace"))
            if ENV["secret_to_find"] in text:
                found.append(str(entry))
(OUT / "proc.json").write_text(json.dumps({"found": found, "seen": seen}))
"""
    )
    assert (
        api.post(
            f"{API}/packages",
            {"name": "snoop", "file": upload(content=package_zip(**{"train.py": train}))},
        ).status_code
        == 201
    )
    api.post_json(f"{API}/datasets", {"name": "d"})
    api.put(f"{API}/datasets/d/files/a.csv", b"1", content_type="text/csv")
    secret = "s3cret-" + os.urandom(8).hex()
    start = {"type": "train", "package": "snoop", "version": "1.0", "dataset": "d"}
    parameters = {"shared": str(tmp_path), "secret_to_find": "s3cret-"}
    victim = api.post_json(
        f"{API}/pipelines",
        {**start, "parameters": {**parameters, "mode": "victim", "password": secret}},
    ).json()["id"]
    wait_until(lambda: (tmp_path / "victim-started").exists(), 60, "the victim never started")
    snoop = api.post_json(
        f"{API}/pipelines", {**start, "parameters": {**parameters, "secret_to_find": secret}}
    ).json()["id"]
    snoop = wait_for(PipelineRun.objects.get(pk=snoop), timeout=60)
    (tmp_path / "release").write_text("1")
    assert snoop.status == "successful", snoop.failure_reason
    proc = json.loads(
        b"".join(api.get(f"{API}/pipelines/{snoop.pk}/artifacts/proc.json").streaming_content)
    )
    assert proc["found"] == []
    assert proc["seen"] == ["1"]  # bwrap's PID 1 besides its own process: nothing else
    victim = wait_for(PipelineRun.objects.get(pk=victim), timeout=60)
    assert victim.status == "successful"
    assert victim.sandbox["enabled"] and snoop.sandbox["enabled"]


def test_each_run_has_a_uid_of_its_own_and_no_server_file_in_reach(db, project, bob, secret_file):
    run = run_here(
        project,
        bob,
        """
results = {"uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups()}
results["data_dir"] = attempt(lambda: os.listdir(ENV["data_dir"]))
results["secret"] = attempt(lambda: open(ENV["secret"]).read())
results["storage"] = attempt(lambda: os.listdir(ENV["storage"]))
results["own_workspace"] = attempt(lambda: Path("mine.txt").write_text("ok") and None)
results["own_data_copy"] = attempt(
    lambda: next(Path(data_directory).rglob("*.csv")).write_text("changed") and None)
results["environment"] = attempt(lambda: open(sys.executable, "ab").close())
results["environ"] = sorted(ENV)
(OUT / "results.json").write_text(json.dumps(results))
""",
        parameters={
            "data_dir": str(settings.DATA_DIR),
            "secret": str(secret_file),
            "storage": str(settings.DATA_DIR / "storage"),
        },
    )
    assert run.status == "successful", run.failure_reason
    results = json.loads(files_of(run.artifacts)["results.json"])
    uid = results["uid"]
    assert uid in sandbox_uids.part(sandbox_uids.RUN) and results["gid"] == uid
    assert results["groups"] == []
    # only the empty folders the sandbox's mounts need: no database, no storage, no secret
    assert set(results["data_dir"]) <= {"workspaces", "environments", "shared"}
    assert results["secret"] == "FileNotFoundError"
    assert results["storage"] == "FileNotFoundError"
    assert results["own_workspace"] == "done"
    assert results["own_data_copy"] == "done"  # its private copy
    assert results["environment"] in ("OSError", "PermissionError")  # read-only
    assert "SECRET_KEY" not in results["environ"]
    stored = next(iter(files_of(project.datasets.get(name="d").manifest).values()))
    assert stored == b"1,2\n"

"""Training runs end to end: the API, a real RQ worker on the real Redis, user code in a real
subprocess."""

import io
import json
import threading
import zipfile

import pytest
from django.conf import settings

from packages.models import PackageVersion
from pipelines.models import PipelineRun
from tests.conftest import upload, wait_for
from tests.factories import package_zip

pytestmark = pytest.mark.django_db(transaction=True)

API = "/api/v1/projects/alpha"

TRAIN = """\
import json, os, sys, time
from pathlib import Path


class Main:
    def __init__(self):
        self.artifacts = Path(os.environ["artifacts_directory"])

    def train(self, data_directory):
        print("training on", data_directory, flush=True)
        files = sorted(str(p.relative_to(data_directory)) for p in Path(data_directory).rglob("*")
                       if p.is_file())
        self.artifacts.mkdir(exist_ok=True)
        (self.artifacts / "files.json").write_text(json.dumps(files))
        (self.artifacts / "env.json").write_text(json.dumps(dict(os.environ)))
        (self.artifacts / "cwd.txt").write_text(os.getcwd())
        sub = self.artifacts / "résultats"
        sub.mkdir(exist_ok=True)
        (sub / "sortie.txt").write_text("ok ✓")
        print("error stream works", file=sys.stderr)
%(extra)s

    def evaluate(self, evaluation_directory):
        return 0.5

    def save(self):
        Path("model.txt").write_text("weights")
"""


def train_py(extra=""):
    return TRAIN % {"extra": extra}


@pytest.fixture
def api(api_as, bob):
    return api_as(bob)


@pytest.fixture
def package(api):
    def make(train=None, name="classifier"):
        content = package_zip(**{"train.py": train or train_py()})
        response = api.post(f"{API}/packages", {"name": name, "file": upload(content=content)})
        assert response.status_code == 201, response.content
        return name

    return make


@pytest.fixture
def dataset(api):
    def make(files=None, name="invoices"):
        api.post_json(f"{API}/datasets", {"name": name})
        files = files or {"train/a.csv": b"1,2\n", "train/b.csv": b"3,4\n", "test/c.csv": b"5\n"}
        for path, content in files.items():
            response = api.put(
                f"{API}/datasets/{name}/files/{path}",
                content,
                content_type="application/octet-stream",
            )
            assert response.status_code == 201
        return name

    return make


def start(api, **fields):
    payload = {"type": "train", "package": "classifier", "version": "1.0", "dataset": "invoices"}
    response = api.post_json(f"{API}/pipelines", {**payload, **fields})
    assert response.status_code == 201, response.content
    assert response.json()["status"] == "queued"
    return PipelineRun.objects.get(pk=response.json()["id"])


def artifact(api, run, path):
    response = api.get(f"{API}/pipelines/{run.pk}/artifacts/{path}")
    assert response.status_code == 200, response.content
    return b"".join(response.streaming_content)


def test_a_training_run_makes_version_1_1_with_artifacts_and_results(api, worker, package, dataset):
    package(), dataset()
    run = wait_for(start(api, parameters={"learning_rate": 0.1}))
    assert run.status == "successful", run.failure_reason
    body = api.get(f"{API}/pipelines/{run.pk}").json()
    assert body["output_version"] == "1.1"
    assert body["parameters"]["learning_rate"] == "0.1"
    assert body["started_at"] and body["finished_at"] and body["duration"] > 0

    results = api.get(f"{API}/pipelines/{run.pk}/results").json()
    assert list(results) == ["parameters", "run_summary"]
    assert list(results["parameters"]) == ["pipeline", "inputs", "env"]
    assert results["parameters"]["pipeline"] == run.name
    inputs = results["parameters"]["inputs"]
    assert inputs["package"] == "classifier"
    assert inputs["version"] == "1.0"
    assert inputs["train_data"] == "alpha/datasets/invoices"
    assert inputs["gpu"] == "False"
    env = results["parameters"]["env"]
    assert env["artifacts_directory"] == "artifacts"
    assert env["save_training_data"] == "false"
    assert env["learning_rate"] == "0.1"
    summary = results["run_summary"]
    assert set(summary) >= {"execution_time", "start_at", "end_at", "outputs"}
    assert isinstance(summary["execution_time"], float)
    assert isinstance(summary["start_at"], int) and isinstance(summary["end_at"], int)
    assert summary["start_at"] <= summary["end_at"]
    assert summary["outputs"] == {
        "train_data": None,
        "evaluation_data": None,
        "artifacts_data": f"alpha/pipelines/{run.pk}/artifacts",
        "package": "classifier",
        "version": "1.1",
    }

    files = api.get(f"{API}/pipelines/{run.pk}/artifacts").json()["files"]
    assert {f["path"] for f in files} >= {"files.json", "env.json", "résultats/sortie.txt"}
    assert artifact(api, run, "résultats/sortie.txt").decode() == "ok ✓"
    assert json.loads(artifact(api, run, "files.json")) == [
        "test/c.csv",
        "train/a.csv",
        "train/b.csv",
    ]

    download = api.get(f"{API}/packages/classifier/versions/1.1/download")
    names = zipfile.ZipFile(io.BytesIO(b"".join(download.streaming_content))).namelist()
    assert sorted(names) == [
        "classifier/main.py",
        "classifier/model.txt",
        "classifier/requirements.txt",
        "classifier/train.py",
    ]

    logs = api.get(f"{API}/pipelines/{run.pk}/logs")
    assert logs["Content-Type"].startswith("text/plain")
    assert "training on ./data" in logs.content.decode()
    assert "error stream works" in logs.content.decode()
    assert api.get(f"{API}/pipelines/{run.pk}/snapshot").status_code == 404

    version = PackageVersion.objects.get(minor=1)
    assert version.parent.number == "1.0"
    assert version.pipeline_run == run
    package_page = api.get(f"{API}/packages/classifier").json()
    assert package_page["versions"][0]["source"] == "trained"


def test_save_training_data_keeps_a_snapshot_of_a_sub_folder_without_copying_bytes(
    api, worker, package, dataset
):
    from aicenter.models import Blob

    package(), dataset()
    blobs = Blob.objects.count()
    run = wait_for(start(api, dataset_folder="train", parameters={"save_training_data": True}))
    assert run.status == "successful", run.failure_reason
    assert json.loads(artifact(api, run, "files.json")) == ["a.csv", "b.csv"]
    snapshot = api.get(f"{API}/pipelines/{run.pk}/snapshot").json()["files"]
    assert snapshot == [{"path": "a.csv", "size": 4}, {"path": "b.csv", "size": 4}]
    response = api.get(f"{API}/pipelines/{run.pk}/snapshot/a.csv")
    assert b"".join(response.streaming_content) == b"1,2\n"
    results = api.get(f"{API}/pipelines/{run.pk}/results").json()
    assert results["parameters"]["inputs"]["train_data"] == "alpha/datasets/invoices/train"
    assert results["run_summary"]["outputs"]["train_data"] == f"alpha/pipelines/{run.pk}/snapshot"
    # new blobs: the artifacts and model.txt only; the snapshot reuses the dataset's
    new = Blob.objects.count() - blobs
    artifacts = len(api.get(f"{API}/pipelines/{run.pk}/artifacts").json()["files"])
    assert new <= artifacts + 1


def test_utf8_names_go_in_and_out(api, worker, package, dataset):
    package()
    dataset({"données/résumé.txt": "é".encode(), "日本語/ファイル.csv": b"1"})
    run = wait_for(start(api))
    assert run.status == "successful", run.failure_reason
    assert json.loads(artifact(api, run, "files.json")) == [
        "données/résumé.txt",
        "日本語/ファイル.csv",
    ]


def test_a_package_that_raises_fails_with_its_reason_and_keeps_its_artifacts(
    api, worker, package, dataset
):
    package(train_py(extra="        raise ValueError('bad data in row 3')")), dataset()
    run = wait_for(start(api))
    assert run.status == "failed"
    assert run.failure_reason == "ValueError: bad data in row 3"
    logs = api.get(f"{API}/pipelines/{run.pk}/logs").content.decode()
    assert "Traceback (most recent call last)" in logs
    assert 'train.py", line 21, in train' in logs
    assert artifact(api, run, "résultats/sortie.txt").decode() == "ok ✓"
    results = api.get(f"{API}/pipelines/{run.pk}/results").json()
    outputs = results["run_summary"]["outputs"]
    assert outputs["version"] is None and outputs["package"] is None
    assert outputs["train_data"] is None
    assert not PackageVersion.objects.filter(minor__gt=0).exists()
    assert api.get(f"{API}/pipelines/{run.pk}").json()["output_version"] is None


def test_user_code_sees_only_specs_variables(api, worker, package, dataset):
    package(), dataset()
    run = wait_for(start(api, parameters={"epochs": "3"}))
    env = json.loads(artifact(api, run, "env.json"))
    spec = {
        "artifacts_directory",
        "save_training_data",
        "save_test_data",
        "data_directory",
        "training_data_directory",
        "test_data_directory",
    }
    # PWD: bubblewrap says where it started the process
    assert set(env) == spec | {"epochs", "PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "PWD"}
    assert env["HOME"] != env["TMPDIR"]
    for secret in (
        "SECRET_KEY",
        "DATABASE_URL",
        "REDIS_URL",
        "AICENTER_DATA_DIR",
        "DJANGO_SETTINGS_MODULE",
        "AWS_SECRET_ACCESS_KEY",
    ):
        assert secret not in env


def test_the_workspace_is_removed_after_every_run(api, worker, package, dataset):
    package(train_py(extra="        raise RuntimeError('boom')")), dataset()
    failed = wait_for(start(api))
    cwd = artifact(api, failed, "cwd.txt").decode()
    assert cwd.startswith(str(settings.WORKSPACES_DIR))
    from pathlib import Path

    assert not Path(cwd).exists()
    assert not Path(cwd).parent.exists()
    assert list(settings.WORKSPACES_DIR.glob(f"run-{failed.pk}-*")) == []


HOSTILE = """
        for path in Path(data_directory).rglob("*"):
            if path.is_file():
                path.write_bytes(b"overwritten")
        for path in list(Path(data_directory).rglob("*.csv"))[:1]:
            path.unlink()
        Path("main.py").write_text("# destroyed")
"""


def test_a_hostile_train_cannot_change_stored_data(api, worker, package, dataset):
    package(train_py(extra=HOSTILE)), dataset()
    first = wait_for(start(api, parameters={"save_training_data": "true"}))
    assert first.status == "successful", first.failure_reason
    second = wait_for(start(api, parameters={"save_training_data": "true"}))
    assert second.status == "successful"
    # the second run saw the original data: the first one's writes never reached storage
    assert json.loads(artifact(api, second, "files.json")) == [
        "test/c.csv",
        "train/a.csv",
        "train/b.csv",
    ]
    response = api.get(f"{API}/datasets/invoices/files/train/a.csv")
    assert b"".join(response.streaming_content) == b"1,2\n"
    response = api.get(f"{API}/pipelines/{first.pk}/snapshot/train/b.csv")
    assert b"".join(response.streaming_content) == b"3,4\n"
    original = api.get(f"{API}/packages/classifier/versions/1.0/download")
    archive = zipfile.ZipFile(io.BytesIO(b"".join(original.streaming_content)))
    assert b"class Main" in archive.read("classifier/main.py")


def test_logs_are_readable_while_the_run_runs(api, worker, package, dataset, tmp_path):
    gate = tmp_path / "go"
    (
        package(
            train_py(
                extra=f"""
        print("halfway there", flush=True)
        while not Path({str(gate)!r}).exists():
            time.sleep(0.05)
"""
            )
        ),
        dataset(),
    )
    run = start(api)
    wait_for(run, statuses=[PipelineRun.RUNNING])
    for _ in range(100):
        logs = api.get(f"{API}/pipelines/{run.pk}/logs").content.decode()
        if "halfway there" in logs:
            break
        import time

        time.sleep(0.05)
    assert "halfway there" in logs
    assert api.get(f"{API}/pipelines/{run.pk}").json()["status"] == "running"
    gate.touch()
    assert wait_for(run).status == "successful"


def test_two_trainings_of_1_0_finishing_together_get_1_1_and_1_2(
    api, worker, second_worker, package, dataset, tmp_path
):
    barrier = tmp_path / "barrier"
    barrier.mkdir(mode=0o777)
    barrier.chmod(0o777)  # package code may run as another user
    (
        package(
            train_py(
                extra=f"""
        Path({str(barrier)!r}, os.urandom(8).hex()).touch()  # pids repeat across sandboxes
        while len(list(Path({str(barrier)!r}).iterdir())) < 2:
            time.sleep(0.01)
"""
            )
        ),
        dataset(),
    )
    runs = [start(api), start(api)]
    finished = [wait_for(run) for run in runs]
    assert [run.status for run in finished] == ["successful", "successful"]
    numbers = sorted(run.output_version.number for run in finished)
    assert numbers == ["1.1", "1.2"]


def test_concurrent_version_allocation_is_decided_by_the_database(bob, project, tmp_path):
    """The same race without workers: eight threads allocate versions of 1.0 at once."""
    from django.db import connection

    from aicenter.manifests import manifest_from_files
    from packages.services import package_create, package_version_create_trained

    package = package_create(project=project, user=bob, name="p", file=upload())
    parent = package.versions.get()
    source = tmp_path / "model.txt"
    source.write_text("w")
    run = PipelineRun.objects.create(
        project=project, package=package, version=parent, created_by=bob
    )
    start_line = threading.Barrier(8)
    made, errors = [], []

    def allocate():
        try:
            start_line.wait()
            manifest = manifest_from_files([("model.txt", io.BytesIO(b"w"))])
            made.append(package_version_create_trained(run=run, manifest=manifest))
        except Exception as error:  # noqa: BLE001
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=allocate) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(v.minor for v in made) == list(range(1, 9))


def test_a_deleted_version_number_is_never_given_again(
    api, pages_as, bob, worker, package, dataset
):
    package(), dataset()
    first = wait_for(start(api))
    assert first.status == "successful", first.failure_reason
    assert first.output_version.number == "1.1"
    pages = pages_as(bob)
    assert pages.post("/p/alpha/packages/classifier/1.1/delete/").status_code == 302
    assert pages.get("/p/alpha/packages/classifier/1.1/").status_code == 404
    listed = api.get(f"{API}/packages/classifier").json()["versions"]
    assert [v["version"] for v in listed] == ["1.0"]

    second = wait_for(start(api))
    assert second.status == "successful", second.failure_reason
    assert api.get(f"{API}/pipelines/{second.pk}").json()["output_version"] == "1.2"

    # the earlier run still names the number it made, and says it is gone
    assert api.get(f"{API}/pipelines/{first.pk}").json()["output_version"] == "1.1"
    results = api.get(f"{API}/pipelines/{first.pk}/results").json()
    assert results["run_summary"]["outputs"]["version"] == "1.1"
    page = pages.get(f"/p/alpha/pipelines/{first.pk}/").content.decode()
    assert "version 1.1 (deleted)" in page
    assert "/packages/classifier/1.1/" not in page  # no link to a version that is gone
    runs = pages.get("/p/alpha/pipelines/").content.decode()
    assert "1.1 (deleted)" in runs and "/packages/classifier/1.1/" not in runs


def test_a_version_trained_from_a_deleted_one_says_so(bob, project, pages_as):
    """1.2 was trained from 1.1; the run is deleted, then 1.1: 1.2's lineage keeps the number."""
    from aicenter.manifests import manifest_from_files
    from packages.services import (
        package_create,
        package_version_create_trained,
        package_version_delete,
    )
    from pipelines.services import pipeline_run_delete

    package = package_create(project=project, user=bob, name="p", file=upload())

    def train(version):
        run = PipelineRun.objects.create(
            project=project, package=package, version=version, created_by=bob, status="successful"
        )
        manifest = manifest_from_files([("model.txt", io.BytesIO(b"w"))])
        return run, package_version_create_trained(run=run, manifest=manifest)

    _, one_one = train(package.versions.get())
    run, one_two = train(one_one)
    pipeline_run_delete(run=run)
    package_version_delete(version=one_one)
    page = pages_as(bob).get("/p/alpha/packages/p/").content.decode()
    assert "from version 1.1 (deleted)" in page
    assert "/packages/p/1.1/" not in page
    _, one_three = train(one_two)
    assert one_three.number == "1.3"

"""A training run's outputs: the new version, its results, artifacts and logs, a data snapshot,
UTF-8 names, and a package that raises.

Training runs end to end: the API, a real RQ worker on the real Redis, user code in a real
subprocess. The helpers are in tests/pipelines/training.py, the api, package and dataset fixtures
in tests/pipelines/conftest.py."""

import io
import json
import socket
import zipfile

import django_rq
import pytest
from rq.job import Job
from rq.registry import FailedJobRegistry, FinishedJobRegistry, StartedJobRegistry

from packages.models import PackageVersion
from pipelines.models import PipelineRun
from tests.conftest import wait_for, wait_until
from tests.pipelines.training import API, artifact, start, train_py

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_training_run_makes_version_1_1_with_artifacts_and_results(api, worker, package, dataset):
    package(), dataset()
    run = wait_for(start(api, parameters={"learning_rate": 0.1}))
    assert run.status == "successful", run.failure_reason
    body = api.get(f"{API}/pipelines/{run.pk}").json()
    assert body["output_version"] == "1.1"
    assert body["parameters"]["learning_rate"] == "0.1"
    assert body["started_at"] and body["finished_at"] and body["duration"] > 0
    # the worker that ran it: this machine, the worker's own process (jobs aren't forked)
    assert body["worker"] == f"{socket.gethostname()}:{worker.pid}"

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
    from core.models import Blob

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


def test_finished_runs_leave_nothing_in_redis(api, worker, package, dataset):
    # at 80,000 runs an hour, an hour of finished jobs kept would be 80,000 hashes: Redis must
    # hold the queue, not the history (the run rows are the record)
    package(), dataset()
    runs = [start(api) for _ in range(3)]
    for run in runs:
        assert wait_for(run).status == "successful"
    queue = django_rq.get_queue("pipelines")
    job_ids = {run.job_id for run in PipelineRun.objects.filter(pk__in=[r.pk for r in runs])}
    assert all(job_ids)
    # RQ ends a job just after the run's row says Successful: give it that moment
    wait_until(
        lambda: not any(queue.connection.exists(Job.key_for(job_id)) for job_id in job_ids),
        10,
        "finished jobs are still in Redis",
    )
    registries = (FinishedJobRegistry, StartedJobRegistry, FailedJobRegistry)
    assert not job_ids & {i for r in registries for i in r(queue=queue).get_job_ids()}

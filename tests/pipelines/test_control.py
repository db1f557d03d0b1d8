"""Evaluation and full runs, kill, time limits, lost workers, vanished jobs, schedules and GPU
routing: real workers, real Redis, real processes (killed for real)."""

import json
import os
import signal
import time
from datetime import timedelta

import django_rq
import pytest
from django.utils import timezone
from rq.job import Job

from packages.models import PackageVersion
from pipelines.models import PipelineRun, Schedule
from sandbox.sandbox import sandbox_processes
from sandbox.workspace import workspace_folders
from tests.conftest import (
    alive,
    start_worker,
    stop,
    upload,
    wait_for,
    wait_for_workers,
    wait_until,
)
from tests.factories import package_zip

pytestmark = pytest.mark.django_db(transaction=True)
API = "/api/v1/projects/alpha"

TRAIN = """\
import json, os, subprocess, sys, time
from pathlib import Path

ENV = os.environ


def note(name, value):
    if ENV.get("pid_dir"):
        Path(ENV["pid_dir"], name).write_text(str(value))


class Main:
    def __init__(self):
        self.out = Path(ENV["artifacts_directory"])
        self.out.mkdir(exist_ok=True)
        (self.out / "env.json").write_text(json.dumps(dict(ENV)))

    def process_data(self, data_directory):
        evaluation = Path(ENV["test_data_directory"])
        (self.out / "saw_evaluation_data.txt").write_text(str(sorted(
            p.name for p in evaluation.iterdir())) if evaluation.exists() else "none")
        train = Path(ENV["training_data_directory"])
        train.mkdir(parents=True)
        for path in Path(data_directory).iterdir():
            (train / path.name).write_bytes(path.read_bytes())
        if ENV.get("split") == "yes":
            test = Path(ENV["test_data_directory"])
            test.mkdir(parents=True, exist_ok=True)
            (test / "split.csv").write_text("5,6\\n")

    def train(self, data_directory):
        note("user", os.getpid())
        mode = ENV.get("mode", "fast")
        if mode == "child":
            child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
            note("child", child.pid)
        if mode == "memory":
            hog = bytearray(4 * 1024**3)
        if mode == "big_file":
            (self.out / "huge.bin").write_bytes(b"x" * 60 * 1024 * 1024)
        if mode in ("sleep", "child"):
            print("sleeping", flush=True)
            time.sleep(120)
        (self.out / "trained_on.txt").write_text(str(sorted(os.listdir(data_directory))))

    def evaluate(self, evaluation_directory):
        if ENV.get("mode") == "bad_score":
            return "excellent"
        return float(ENV.get("score", "0.75"))

    def save(self):
        Path("model.txt").write_text("weights")
        note("saved", 1)
"""


@pytest.fixture
def api(api_as, bob, worker):
    api = api_as(bob)
    content = package_zip(**{"train.py": TRAIN})
    assert (
        api.post(
            f"{API}/packages", {"name": "classifier", "file": upload(content=content)}
        ).status_code
        == 201
    )
    for name, files in {"invoices": ["a.csv", "b.csv"], "holdout": ["h.csv"]}.items():
        api.post_json(f"{API}/datasets", {"name": name})
        for file in files:
            api.put(
                f"{API}/datasets/{name}/files/{file}",
                b"1,2\n",
                content_type="application/octet-stream",
            )
    return api


def start(api, **fields):
    payload = {"type": "train", "package": "classifier", "version": "1.0", "dataset": "invoices"}
    payload.update(fields)
    response = api.post_json(
        f"{API}/pipelines", {k: v for k, v in payload.items() if v is not None}
    )
    assert response.status_code == 201, response.content
    return PipelineRun.objects.get(pk=response.json()["id"])


def artifact(api, run, path):
    response = api.get(f"{API}/pipelines/{run.pk}/artifacts/{path}")
    assert response.status_code == 200, response.content
    return b"".join(response.streaming_content).decode()


def test_an_evaluation_run_scores_the_version(api, pages_as, bob):
    run = wait_for(
        start(
            api,
            type="evaluate",
            dataset=None,
            evaluation_dataset="holdout",
            parameters={"score": "0.8125", "save_test_data": "true"},
        )
    )
    assert run.status == "successful", run.failure_reason
    body = api.get(f"{API}/pipelines/{run.pk}").json()
    assert body["score"] == 0.8125
    assert body["output_version"] is None
    results = api.get(f"{API}/pipelines/{run.pk}/results").json()
    assert results["run_summary"]["score"] == 0.8125
    assert results["parameters"]["inputs"]["evaluation_data"] == "alpha/datasets/holdout"
    assert results["parameters"]["inputs"]["train_data"] is None
    outputs = results["run_summary"]["outputs"]
    assert outputs["evaluation_data"] == f"alpha/pipelines/{run.pk}/evaluation-snapshot"
    assert outputs["version"] is None and outputs["package"] is None
    assert "0.8125" in pages_as(bob).get("/p/alpha/pipelines/").content.decode()
    assert not PackageVersion.objects.filter(minor__gt=0).exists()


def test_a_score_that_is_not_a_number_fails_the_run(api):
    run = wait_for(
        start(
            api,
            type="evaluate",
            dataset=None,
            evaluation_dataset="holdout",
            parameters={"mode": "bad_score"},
        )
    )
    assert run.status == "failed"
    assert run.failure_reason == "evaluate() must return a number (the score), not str: 'excellent'"


def test_a_full_pipeline_processes_trains_evaluates_and_saves(api):
    run = wait_for(
        start(api, type="full", evaluation_dataset="holdout", parameters={"score": "0.5"})
    )
    assert run.status == "successful", run.failure_reason
    assert run.output_version.number == "1.1"
    assert run.score == 0.5
    assert [p["name"] for p in run.phases] == [
        "queued",
        "environment",
        "materialise",
        "python",
        "import",
        "__init__",
        "process_data",
        "train",
        "evaluate",
        "save",
        "upload",
    ]
    starts = [p["start"] for p in run.phases]
    assert starts == sorted(starts)
    assert all(p["end"] >= p["start"] for p in run.phases)
    # the evaluation dataset was at test_data_directory before process_data ran
    assert artifact(api, run, "saw_evaluation_data.txt") == "['h.csv']"
    assert artifact(api, run, "trained_on.txt") == "['a.csv', 'b.csv']"
    version_files = set(run.output_version.manifest.entries.values_list("path", flat=True))
    assert "model.txt" in version_files
    assert not any(path.startswith(("dataset/", "data/", "artifacts/")) for path in version_files)


def snapshot_files(manifest):
    return sorted(manifest.entries.values_list("path", flat=True)) if manifest else None


def test_a_full_run_snapshots_its_test_split_and_never_mixes_it_with_an_evaluation_dataset(api):
    # no evaluation dataset: process_data's test split is evaluated and, asked to, kept
    split = start(api, type="full", parameters={"split": "yes", "save_test_data": "true"})
    # an evaluation dataset: it is kept as given, and process_data may not write beside it
    given = start(
        api, type="full", evaluation_dataset="holdout", parameters={"save_test_data": "true"}
    )
    mixed = start(
        api,
        type="full",
        evaluation_dataset="holdout",
        parameters={"split": "yes", "save_test_data": "true"},
    )
    split, given, mixed = wait_for(split), wait_for(given), wait_for(mixed)
    assert split.status == "successful", split.failure_reason
    assert snapshot_files(split.evaluation_snapshot) == ["split.csv"]
    results = json.loads(split.results_text)
    assert results["parameters"]["inputs"]["evaluation_data"] is None
    assert results["run_summary"]["outputs"]["evaluation_data"] == (
        f"alpha/pipelines/{split.pk}/evaluation-snapshot"
    )
    assert given.status == "successful", given.failure_reason
    assert snapshot_files(given.evaluation_snapshot) == ["h.csv"]
    assert mixed.status == "failed"
    assert mixed.failure_reason.startswith(
        "process_data wrote into test_data_directory (dataset/test), where the evaluation "
        "dataset is"
    )
    assert mixed.output_version is None and mixed.evaluation_snapshot is None
    phases = [p["name"] for p in mixed.phases]
    assert "process_data" in phases and "train" not in phases  # stopped before training


def test_kill_ends_the_whole_process_tree_within_5_seconds(api, tmp_path):
    run = start(api, parameters={"mode": "child", "pid_dir": str(tmp_path)})
    wait_until(lambda: (tmp_path / "child").exists(), 30, "train() never started its child")
    run.refresh_from_db()
    processes = sandbox_processes(run.process_group)  # train()'s process and its child
    assert len(processes) == 2 and all(alive(pid) for pid in processes)
    killed_at = time.monotonic()
    response = api.post(f"{API}/pipelines/{run.pk}/kill")
    assert response.json()["status"] == "killed"
    gone = wait_until(
        lambda: not any(alive(pid) for pid in [run.process_group, *processes]),
        10,
        "the user's processes outlived the kill",
    )
    assert gone - killed_at < 5
    run = wait_for(run)
    assert run.status == "killed"
    assert run.failure_reason == "killed by bob"
    wait_until(lambda: PipelineRun.objects.get(pk=run.pk).results_text, 10, "no results")
    assert not (tmp_path / "saved").exists()
    assert not PackageVersion.objects.filter(minor__gt=0).exists()


def test_a_time_limited_run_fails_and_save_is_not_called(api, tmp_path):
    run = wait_for(
        start(api, max_run_seconds=2, parameters={"mode": "sleep", "pid_dir": str(tmp_path)})
    )
    assert run.status == "failed"
    assert run.failure_reason == "timed out after 2.0 s"
    assert run.duration < 10
    assert not (tmp_path / "saved").exists()
    assert not PackageVersion.objects.filter(minor__gt=0).exists()


def test_a_worker_killed_mid_run_is_noticed_and_the_queue_carries_on(api, tmp_path):
    doomed = start_worker("gpu", new_session=True)
    try:
        wait_for_workers(1, queue="gpu", process=doomed)
        run = start(api, gpu=True, parameters={"mode": "sleep", "pid_dir": str(tmp_path)})
        wait_for(run, statuses=[PipelineRun.RUNNING])
        wait_until(lambda: (tmp_path / "user").exists(), 30, "train() never started")
        run.refresh_from_db()
        (user,) = sandbox_processes(run.process_group)
        os.killpg(doomed.pid, signal.SIGKILL)  # the worker and its work horse, as in a crash
        doomed.wait()
        killed_at = time.monotonic()
        run = wait_for(run, timeout=40)
        assert time.monotonic() - killed_at < 30
        assert run.status == "failed"
        assert run.failure_reason.startswith("worker lost")
        wait_until(lambda: not alive(user), 10, "the user's process outlived its worker")
        assert list(workspace_folders(f"run-{run.pk}-*")) == []
    finally:
        if doomed.poll() is None:
            os.killpg(doomed.pid, signal.SIGKILL)
    successor = start_worker("gpu")
    try:
        wait_for_workers(1, queue="gpu", process=successor)
        assert wait_for(start(api, gpu=True)).status == "successful"
    finally:
        stop(successor)


def test_a_queued_run_whose_job_vanished_from_redis_is_enqueued_again(api):
    run = start(api, gpu=True)  # no gpu worker yet: it waits in Redis
    wait_until(lambda: PipelineRun.objects.get(pk=run.pk).job_id, 10, "never enqueued")
    run.refresh_from_db()
    connection = django_rq.get_connection("gpu")
    Job.fetch(run.job_id, connection=connection).delete()  # as if Redis restarted empty
    django_rq.get_queue("gpu").empty()
    wait_until(
        lambda: PipelineRun.objects.get(pk=run.pk).enqueue_count == 2,
        30,
        "the sweeper did not enqueue the run again",
    )
    gpu = start_worker("gpu")
    try:
        assert wait_for(run).status == "successful"
    finally:
        stop(gpu)


def test_a_run_at_a_given_moment_waits_until_then(api):
    at = timezone.now() + timedelta(seconds=3)
    run = start(api, schedule={"at": at.isoformat()})
    assert run.status == "scheduled"
    run = wait_for(run, timeout=40)
    assert run.status == "successful", run.failure_reason
    assert run.started_at >= at


def test_a_recurring_pipeline_fires_and_is_rearmed_if_redis_forgets(api):
    starts = timezone.now() + timedelta(seconds=2)
    response = api.post_json(
        f"{API}/pipelines",
        {
            "type": "train",
            "package": "classifier",
            "version": "1.0",
            "dataset": "invoices",
            "name": "hourly",
            "schedule": {"every": 1, "unit": "hours", "starts_at": starts.isoformat()},
        },
    )
    schedule = Schedule.objects.get(pk=response.json()["id"])
    wait_until(lambda: schedule.runs.exists(), 40, "the schedule never fired")
    run = wait_for(schedule.runs.get())
    assert run.status == "successful"
    assert run.name == "hourly"
    schedule.refresh_from_db()
    assert abs((schedule.next_run_at - starts).total_seconds() - 3600) < 2
    # Redis forgets the wake-up (restarted empty): the sweeper arms it again
    wait_until(lambda: Schedule.objects.get(pk=schedule.pk).job_id, 10, "not armed")
    schedule.refresh_from_db()
    connection = django_rq.get_connection("pipelines")
    Job.fetch(schedule.job_id, connection=connection).delete()
    wait_until(
        lambda: Job.exists(schedule.job_id, connection=connection),
        20,
        "the sweeper did not re-arm the schedule",
    )


def test_gpu_runs_get_the_gpu_workers_devices_and_say_so(api):
    gpu = start_worker("gpu", env={"AICENTER_CUDA_VISIBLE_DEVICES": "0"})
    try:
        wait_for_workers(1, queue="gpu", process=gpu)
        run = wait_for(start(api, gpu=True))
        assert run.status == "successful", run.failure_reason
        assert json.loads(artifact(api, run, "env.json"))["CUDA_VISIBLE_DEVICES"] == "0"
        results = api.get(f"{API}/pipelines/{run.pk}/results").json()
        assert results["parameters"]["inputs"]["gpu"] == "True"
    finally:
        stop(gpu)
    cpu = wait_for(start(api))
    assert "CUDA_VISIBLE_DEVICES" not in json.loads(artifact(api, cpu, "env.json"))
    assert (
        api.get(f"{API}/pipelines/{cpu.pk}/results").json()["parameters"]["inputs"]["gpu"]
        == "False"
    )


@pytest.mark.parametrize(
    "mode, reason",
    [
        ("memory", "MemoryError: the run went over its memory limit of 2,048 MB"),
        ("big_file", "(a file went over the size limit of 50 MB)"),
    ],
)
def test_resource_limits_fail_the_run_with_a_clear_reason(api, mode, reason):
    run = wait_for(start(api, parameters={"mode": mode}))
    assert run.status == "failed"
    assert reason in run.failure_reason
    assert not PackageVersion.objects.filter(minor__gt=0).exists()

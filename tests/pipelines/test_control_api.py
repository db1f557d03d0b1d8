"""Kill, retry, schedules through the API, without workers (runs stay queued)."""

import io
from datetime import timedelta

import pytest
from django.utils import timezone

from pipelines.models import PipelineRun, Schedule
from tests.conftest import classifier_and_invoices

API = "/api/v1/projects/alpha"
RUN = {"type": "train", "package": "classifier", "version": "1.0", "dataset": "invoices"}


@pytest.fixture
def api(api_as, bob, project):
    classifier_and_invoices(project, bob)
    return api_as(bob)


def test_a_queued_run_is_killed_at_once(api):
    run_id = api.post_json(f"{API}/pipelines", RUN).json()["id"]
    response = api.post(f"{API}/pipelines/{run_id}/kill")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "killed"
    assert body["failure_reason"] == "killed by bob"
    assert body["finished_at"]
    results = api.get(f"{API}/pipelines/{run_id}/results").json()
    assert results["run_summary"]["outputs"]["version"] is None
    again = api.post(f"{API}/pipelines/{run_id}/kill")
    assert again.status_code == 409
    assert "already killed" in again.json()["detail"]


def test_a_killed_run_is_never_claimed_by_a_worker(api):
    from pipelines.runner.run import run_pipeline

    run_id = api.post_json(f"{API}/pipelines", RUN).json()["id"]
    api.post(f"{API}/pipelines/{run_id}/kill")
    run_pipeline(run_id)  # what a worker does with a job that was still in Redis
    run = PipelineRun.objects.get(pk=run_id)
    assert run.status == "killed"
    assert run.started_at is None


def test_retry_makes_a_new_run_with_the_same_inputs(api):
    first = api.post_json(
        f"{API}/pipelines", {**RUN, "parameters": {"epochs": "4"}, "max_run_seconds": 600}
    ).json()
    response = api.post(f"{API}/pipelines/{first['id']}/retry")
    assert response.status_code == 201
    second = response.json()
    assert second["id"] != first["id"]
    assert second["status"] == "queued"
    for field in ("type", "package", "version", "dataset", "parameters", "max_run_seconds"):
        assert second[field] == first[field]


def test_retry_checks_the_inputs_again(api, django_capture_on_commit_callbacks):
    run_id = api.post_json(f"{API}/pipelines", {**RUN, "dataset_folder": ""}).json()["id"]
    PipelineRun.objects.filter(pk=run_id).update(status="failed")
    from datasets.models import Dataset

    dataset = Dataset.objects.get()
    dataset.manifest.entries.all().delete()  # emptied since
    response = api.post(f"{API}/pipelines/{run_id}/retry")
    assert response.status_code == 400
    assert "is empty" in response.json()["detail"]


def test_a_run_at_a_given_moment_is_scheduled(api):
    at = (timezone.now() + timedelta(hours=2)).replace(microsecond=0)
    response = api.post_json(f"{API}/pipelines", {**RUN, "schedule": {"at": at.isoformat()}})
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "scheduled"
    assert body["scheduled_for"].startswith(at.strftime("%Y-%m-%dT%H:%M"))
    assert api.post(f"{API}/pipelines/{body['id']}/kill").json()["status"] == "killed"


def test_a_recurring_pipeline_is_created_paused_resumed_and_deleted(api):
    response = api.post_json(
        f"{API}/pipelines",
        {
            **RUN,
            "name": "nightly",
            "schedule": {"cron": "0 3 * * *", "timezone": "Europe/Paris"},
        },
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "active"
    assert body["rule"] == "cron 0 3 * * *"
    assert body["next_run_at"]
    assert not PipelineRun.objects.exists()
    schedule_id = body["id"]
    assert api.get(f"{API}/schedules").json()[0]["name"] == "nightly"
    paused = api.post(f"{API}/schedules/{schedule_id}/pause").json()
    assert paused["status"] == "paused" and paused["next_run_at"] is None
    resumed = api.post(f"{API}/schedules/{schedule_id}/resume").json()
    assert resumed["status"] == "active" and resumed["next_run_at"]
    assert api.delete(f"{API}/schedules/{schedule_id}").status_code == 204
    assert not Schedule.objects.exists()


@pytest.mark.parametrize(
    "schedule, message",
    [
        ({"cron": "61 * * * *"}, "not a cron expression"),
        ({"every": "often", "unit": "days"}, "whole number"),
        ({"at": "2020-01-01T00:00"}, "has passed"),
        ({"every": 1, "unit": "days", "timezone": "Nowhere/City"}, "not a time zone"),
    ],
)
def test_bad_schedules_are_refused_and_nothing_is_stored(api, schedule, message):
    response = api.post_json(f"{API}/pipelines", {**RUN, "schedule": schedule})
    assert response.status_code == 400
    assert message in response.json()["detail"]
    assert not PipelineRun.objects.exists()
    assert not Schedule.objects.exists()


def test_a_recurring_pipeline_with_bad_inputs_is_refused(api):
    response = api.post_json(
        f"{API}/pipelines", {**RUN, "dataset": "nope", "schedule": {"every": 1, "unit": "days"}}
    )
    assert response.status_code == 400
    assert "There is no dataset 'nope'" in response.json()["detail"]
    assert not Schedule.objects.exists()


@pytest.mark.parametrize("seconds", [0, -5, 10**9])
def test_a_time_limit_out_of_range_is_refused(api, seconds):
    response = api.post_json(f"{API}/pipelines", {**RUN, "max_run_seconds": seconds})
    assert response.status_code == 400
    assert "time limit" in response.json()["detail"]


def test_a_gpu_run_with_no_gpu_worker_says_so(api, pages_as, bob):
    run_id = api.post_json(f"{API}/pipelines", {**RUN, "gpu": True}).json()["id"]
    body = api.get(f"{API}/pipelines/{run_id}").json()
    assert body["queue"] == "gpu"
    assert body["waiting_for"] == "waiting for a GPU worker (none is serving the gpu queue)"
    page = pages_as(bob).get(f"/p/alpha/pipelines/{run_id}/").content.decode()
    assert "Waiting for a GPU worker" in page, page[page.find("status-line") :][:600]


def test_a_viewer_can_neither_kill_nor_retry(api, api_as, vera):
    run_id = api.post_json(f"{API}/pipelines", RUN).json()["id"]
    assert api_as(vera).post(f"{API}/pipelines/{run_id}/kill").status_code == 403
    assert api_as(vera).post(f"{API}/pipelines/{run_id}/retry").status_code == 403


def test_a_recurring_pipeline_is_edited(api):
    created = api.post_json(
        f"{API}/pipelines", {**RUN, "name": "nightly", "schedule": {"every": 1, "unit": "days"}}
    ).json()
    response = api.put(
        f"{API}/schedules/{created['id']}",
        {
            **RUN,
            "name": "weekly",
            "parameters": {"epochs": "3"},
            "schedule": {"cron": "0 3 * * 1", "timezone": "Europe/Paris"},
        },
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["id"], body["name"], body["rule"]) == (created["id"], "weekly", "cron 0 3 * * 1")
    assert body["timezone"] == "Europe/Paris"
    assert body["inputs"]["parameters"] == {"epochs": "3"}
    schedule = Schedule.objects.get()
    assert (schedule.name, schedule.cron, schedule.every) == ("weekly", "0 3 * * 1", None)


@pytest.mark.parametrize(
    "change, field, message",
    [
        ({"schedule": None}, "schedule", "needs 'every' or a cron rule"),
        ({"schedule": {"cron": "61 * * * *"}}, "schedule", "not a cron expression"),
        ({"dataset": "nope"}, "dataset", "There is no dataset 'nope'"),
        ({"max_run_seconds": -5}, "max_run_seconds", "time limit"),
    ],
)
def test_a_bad_edit_is_refused_and_changes_nothing(api, change, field, message):
    created = api.post_json(
        f"{API}/pipelines", {**RUN, "name": "nightly", "schedule": {"every": 1, "unit": "days"}}
    ).json()
    edit = {**RUN, "name": "edited", "schedule": {"every": 2, "unit": "hours"}, **change}
    response = api.put(f"{API}/schedules/{created['id']}", edit, content_type="application/json")
    assert response.status_code == 400, response.content
    assert message in " ".join(response.json()["errors"][field])
    schedule = Schedule.objects.get()
    assert (schedule.name, schedule.every, schedule.unit) == ("nightly", 1, "days")


def test_viewers_and_outsiders_cannot_edit_a_recurring_pipeline(api, api_as, vera, charlie):
    created = api.post_json(
        f"{API}/pipelines", {**RUN, "name": "nightly", "schedule": {"every": 1, "unit": "days"}}
    ).json()
    edit = {**RUN, "name": "mine", "schedule": {"every": 2, "unit": "hours"}}
    url = f"{API}/schedules/{created['id']}"
    assert api_as(vera).put(url, edit, content_type="application/json").status_code == 403
    assert api_as(charlie).put(url, edit, content_type="application/json").status_code == 404
    assert api.put(f"{API}/schedules/999", edit, content_type="application/json").status_code == 404
    assert Schedule.objects.get().name == "nightly"


def test_results_of_an_unfinished_run_are_404_on_the_page_and_in_the_api(api, pages_as, bob):
    run_id = api.post_json(f"{API}/pipelines", RUN).json()["id"]
    response = api.get(f"{API}/pipelines/{run_id}/results")
    assert response.status_code == 404
    assert "has not finished" in response.json()["detail"]
    assert pages_as(bob).get(f"/p/alpha/pipelines/{run_id}/results/").status_code == 404
    api.post(f"{API}/pipelines/{run_id}/kill")
    api_results = api.get(f"{API}/pipelines/{run_id}/results")
    page_results = pages_as(bob).get(f"/p/alpha/pipelines/{run_id}/results/")
    assert api_results.status_code == page_results.status_code == 200
    assert api_results.json() == page_results.json()


def test_the_evaluation_snapshot_is_listed_and_downloaded(api, api_as, vera, charlie):
    from core.manifests import manifest_create, manifest_put_file

    run_id = api.post_json(f"{API}/pipelines", RUN).json()["id"]
    url = f"{API}/pipelines/{run_id}/evaluation-snapshot"
    response = api.get(url)
    assert response.status_code == 404
    assert "no evaluation data snapshot" in response.json()["detail"]
    snapshot = manifest_create()
    manifest_put_file(snapshot, "test/é.csv", io.BytesIO(b"a,b\n"))
    PipelineRun.objects.filter(pk=run_id).update(evaluation_snapshot=snapshot)
    assert api.get(url).json() == {"files": [{"path": "test/é.csv", "size": 4}]}
    assert api_as(vera).get(url, {"prefix": "test"}).json()["files"][0]["path"] == "test/é.csv"
    download = api_as(vera).get(f"{url}/test/é.csv")
    assert b"".join(download.streaming_content) == b"a,b\n"
    assert api.get(f"{url}/nope.csv").status_code == 404
    assert api.get(url, {"prefix": "../x"}).status_code == 400
    assert api_as(charlie).get(url).status_code == 404


@pytest.fixture
def pipelines_worker():
    """A live RQ worker registered on the pipelines queue (this process, taking no job), so
    queued runs have a place in line."""
    from rq import Worker

    from core import queue as queues

    worker = Worker(["pipelines"], connection=queues.connection("pipelines"))
    worker.register_birth()
    worker.heartbeat()
    yield worker
    worker.register_death()


@pytest.mark.usefixtures("runs_stay_here")
def test_a_queued_run_says_where_it_stands_in_line(api, pipelines_worker):
    first, second = (api.post_json(f"{API}/pipelines", RUN).json()["id"] for _ in range(2))
    busy = api.post_json(f"{API}/pipelines", RUN).json()["id"]
    PipelineRun.objects.filter(pk=busy).update(
        status=PipelineRun.RUNNING, started_at=timezone.now()
    )
    body = api.get(f"{API}/pipelines/{second}").json()
    assert body["queue_place"] == {"ahead": [first], "others": 0, "busy": 1, "workers": 1}
    listed = {run["id"]: run["queue_place"] for run in api.get(f"{API}/pipelines").json()}
    assert listed[first] == {"ahead": [], "others": 0, "busy": 1, "workers": 1}
    assert listed[second] == body["queue_place"]
    assert listed[busy] is None  # running: no place in line
    api.post(f"{API}/pipelines/{first}/kill")
    assert api.get(f"{API}/pipelines/{first}").json()["queue_place"] is None
    assert api.get(f"{API}/pipelines/{second}").json()["queue_place"]["ahead"] == []

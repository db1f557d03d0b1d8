"""ML Logs of pipeline runs and recurring pipelines.

Runs go through the session's real worker: created (by the token's user), started and
finished (by the system), the version a training made (package/trained, by the system). A
schedule's firing is the system's. Of a kill and the worker's finish of the same run only the
transition that wins logs an end. Package code can't write an event, nor make its run's event
say anything but the real outcome. The three events a run writes cost one INSERT each and
nothing else (the run path is the hot path: 80,000 runs an hour)."""

from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_rq import get_queue
from rq.registry import StartedJobRegistry

from core.manifests import manifest_create
from core.models import Event
from packages.services import package_version_create_trained
from pipelines import transitions
from pipelines.models import PipelineRun, Schedule
from pipelines.sweeper import arm_schedules
from tests.conftest import (
    classifier_and_invoices,
    classifier_run,
    upload,
    wait_for,
    wait_until,
)
from tests.factories import package_zip

API = "/api/v1/projects/alpha"
RUN = {"type": "train", "package": "classifier", "version": "1.0", "dataset": "invoices"}

TRAIN = """\
import json, os, sqlite3, sys, time
from pathlib import Path

ENV = os.environ


def attempt(action):
    try:
        action()
        return "done"
    except Exception as error:
        return type(error).__name__


class Main:
    def __init__(self):
        self.out = Path(ENV["artifacts_directory"])
        self.out.mkdir(exist_ok=True)

    def train(self, data_directory):
        mode = ENV.get("mode", "fast")
        if mode == "sleep":
            print("sleeping", flush=True)
            time.sleep(120)
        if mode == "forge":
            # what a hostile package can reach: its outputs, its log, and a guess at the
            # server's database
            forged = {"status": "successful", "run_summary": {"outputs": {"version": "9.9"}}}
            (self.out / "_results.json").write_text(json.dumps(forged))
            Path("_results.json").write_text(json.dumps(forged))
            print("[aicenter] Successful in 0.1 s", flush=True)
            insert = (
                "INSERT INTO governance_event (time, category, action, actor_name, object_type,"
                " object_key, object_name, url, message, data, project_id) VALUES (datetime(),"
                " 'pipeline', 'finished', 'system', 'pipeline', '1', 'x', '', 'forged', '{}', 1)"
            )
            tried = attempt(lambda: sqlite3.connect(ENV["database"]).execute(insert))
            (self.out / "tried.txt").write_text(tried)
            raise RuntimeError("the real outcome")

    def evaluate(self, evaluation_directory):
        return 0.5

    def save(self):
        Path("model.txt").write_text("weights")
"""


def logged(category="pipeline", **filters):
    """Events oldest first, as (action, actor, key, data)."""
    events = Event.objects.filter(category=category, **filters).order_by("id")
    return [(e.action, e.actor_name, e.object_key, e.data) for e in events]


def ends(run):
    return [
        (action, actor, data["status"])
        for action, actor, _, data in logged(object_key=str(run.pk))
        if action in ("finished", "killed")
    ]


# Through the session's worker.


@pytest.fixture
def ready(api_as, bob, worker):
    """Bob's API, the classifier (with TRAIN) whose environment is built and the invoices."""
    api = api_as(bob)
    files = {"name": "classifier", "file": upload(content=package_zip(**{"train.py": TRAIN}))}
    assert api.post(f"{API}/packages", files).status_code == 201
    api.post_json(f"{API}/datasets", {"name": "invoices"})
    api.put(f"{API}/datasets/invoices/files/a.csv", b"1\n", content_type="text/csv")
    queue = get_queue("pipelines")
    wait_until(
        lambda: queue.count == 0 and StartedJobRegistry(queue=queue).count == 0,
        60,
        "the worker is still busy with the upload's environment build",
    )
    return api


def start(api, **fields):
    response = api.post_json(f"{API}/pipelines", {**RUN, **fields})
    assert response.status_code == 201, response.content
    return PipelineRun.objects.get(pk=response.json()["id"])


@pytest.mark.django_db(transaction=True)
def test_a_run_through_the_api_logs_created_started_trained_finished_once(ready, bob):
    run = wait_for(start(ready))
    assert run.status == "successful"

    key = str(run.pk)
    assert [(a, actor, k) for a, actor, k, _ in logged(object_key=key)] == [
        ("created", "bob", key),
        ("started", "system", key),
        ("finished", "system", key),
    ]
    finished = Event.objects.get(action="finished")
    duration = (run.finished_at - run.started_at).total_seconds()
    assert finished.data == {
        "status": "successful",
        "reason": "",
        "duration_seconds": pytest.approx(duration, abs=0.001),
    }
    assert finished.message.startswith("Successful in ")
    assert finished.url == f"/p/alpha/pipelines/{run.pk}/"
    assert finished.object_name == f"Pipeline {run.pk}"
    assert Event.objects.get(category="pipeline", action="created").actor == bob
    assert logged("package", action="trained") == [
        ("trained", "system", "classifier 1.1", {"version": "1.1", "pipeline": run.pk})
    ]
    trained = Event.objects.get(action="trained")
    assert trained.url == "/p/alpha/packages/classifier/1.1/"
    assert trained.message == f"Trained by pipeline {run.pk} from 1.0 on invoices"


@pytest.mark.django_db(transaction=True)
def test_a_kill_of_a_running_run_logs_one_end_by_its_killer(ready, bob):
    run = start(ready, parameters={"mode": "sleep"})
    wait_until(
        lambda: PipelineRun.objects.get(pk=run.pk).process_group, 30, "train() never started"
    )
    assert ready.post(f"{API}/pipelines/{run.pk}/kill").status_code == 200
    # the worker stops the code and ends the run as well: its finish loses to the kill
    wait_until(lambda: PipelineRun.objects.get(pk=run.pk).results_text, 30, "no results")

    assert ends(run) == [("killed", "bob", "killed")]
    killed = Event.objects.get(action="killed")
    assert killed.actor == bob and killed.message == "Killed by bob"
    assert killed.data["reason"] == "killed by bob"
    assert not Event.objects.filter(category="package", action="trained").exists()


@pytest.mark.django_db(transaction=True)
def test_package_code_can_not_forge_its_runs_event(ready, settings):
    database = connection.settings_dict["NAME"]
    run = wait_for(start(ready, parameters={"mode": "forge", "database": str(database)}))

    assert run.status == "failed"
    assert ends(run) == [("finished", "system", "failed")]
    finished = Event.objects.get(action="finished")
    assert "RuntimeError: the real outcome" in finished.data["reason"]
    assert finished.message.startswith("Failed: ")
    assert not Event.objects.filter(message="forged").exists()
    assert Event.objects.filter(action="finished").count() == 1
    assert not Event.objects.filter(category="package", action="trained").exists()


# Without a worker: what people do to runs and schedules, and the transitions' races.


@pytest.fixture
def classifier(project, bob, runs_stay_here):
    classifier_and_invoices(project, bob)
    Event.objects.all().delete()  # the upload's events: tests/governance/test_events_packages


@pytest.mark.django_db
@pytest.mark.usefixtures("classifier")
def test_kill_retry_and_delete_are_logged_as_who_did_them(pages_as, api_as, bob, alice):
    run = start(api_as(bob))
    pages_as(alice).post(f"/p/alpha/pipelines/{run.pk}/kill/")
    retried = api_as(bob).post(f"{API}/pipelines/{run.pk}/retry")
    assert retried.status_code == 201
    new = retried.json()["id"]
    assert api_as(bob).delete(f"{API}/pipelines/{run.pk}").status_code == 204

    assert [(a, actor, k) for a, actor, k, _ in logged()] == [
        ("created", "bob", str(run.pk)),
        ("killed", "alice", str(run.pk)),
        ("retried", "bob", str(new)),
        ("deleted", "bob", str(run.pk)),
    ]
    assert logged(action="retried")[0][3] == {"from": run.pk}
    killed = logged(action="killed")[0][3]
    assert killed == {"status": "killed", "reason": "killed by alice", "duration_seconds": None}
    assert Event.objects.get(action="deleted").url == ""


def missed(schedule):
    """Its first firing, two hours ago, passed while every process was down (the next one is
    to come: nothing more was missed)."""
    moment = timezone.now() - timedelta(hours=2)
    Schedule.objects.filter(pk=schedule.pk).update(starts_at=moment, next_run_at=moment)


@pytest.mark.django_db
@pytest.mark.usefixtures("classifier")
def test_a_schedule_is_logged_by_its_user_and_its_firing_by_the_system(api_as, bob, project):
    api = api_as(bob)
    every = {"every": 1, "unit": "days"}
    response = api.post_json(f"{API}/pipelines", {**RUN, "schedule": every})
    assert response.status_code == 201, response.content
    schedule = Schedule.objects.get(pk=response.json()["id"])
    base = f"{API}/schedules/{schedule.pk}"
    assert api.post(f"{base}/pause").status_code == 200
    assert api.post(f"{base}/resume").status_code == 200
    weekly = {**RUN, "name": "weekly", "schedule": {"every": 1, "unit": "weeks"}}
    assert api.put(base, weekly, content_type="application/json").status_code == 200
    # its moment passed while every process was down: the first worker's sweep fires it
    missed(schedule)
    arm_schedules()
    run = schedule.runs.get()
    assert api.delete(base).status_code == 204

    key = str(schedule.pk)
    assert logged("schedule") == [
        ("created", "bob", key, {}),
        ("paused", "bob", key, {}),
        ("resumed", "bob", key, {}),
        ("updated", "bob", key, {}),
        ("fired", "system", key, {"pipeline": run.pk}),
        ("deleted", "bob", key, {}),
    ]
    assert logged(object_key=str(run.pk)) == [("created", "system", str(run.pk), {})]
    assert Event.objects.get(action="fired").url == f"/p/alpha/pipelines/recurring/{key}/edit/"
    assert Event.objects.get(category="schedule", action="updated").object_name == "weekly"


@pytest.mark.django_db
@pytest.mark.usefixtures("classifier")
def test_a_firing_that_can_not_start_a_run_says_why(project, bob):
    from pipelines.start import pipeline_start
    from pipelines.when import When

    schedule = pipeline_start(
        project=project, user=bob, when=When(kind="recurring", every=1, unit="days"), **RUN
    )
    project.datasets.get().delete()  # no run uses it yet
    missed(schedule)
    arm_schedules()

    ((action, actor, _, data),) = logged("schedule", action="fired")
    assert (action, actor, data["pipeline"]) == ("fired", "system", None)
    assert "invoices" in data["error"]
    assert not PipelineRun.objects.exists()


@pytest.mark.django_db
@pytest.mark.usefixtures("classifier")
def test_kill_then_finish_logs_the_kill_only(project, bob):
    run = classifier_run(project, bob)
    assert transitions.claim(run, status=PipelineRun.RUNNING)
    transitions.kill(run.pk, by=bob)
    made = []

    ended = transitions.finish(run, status="successful", new_version=lambda: made.append(1))

    assert ended == ("killed", "killed by bob") and made == []
    assert ends(run) == [("killed", "bob", "killed")]


@pytest.mark.django_db
@pytest.mark.usefixtures("classifier")
def test_finish_then_kill_logs_the_finish_only(project, bob):
    run = classifier_run(project, bob)
    assert transitions.claim(run, status=PipelineRun.RUNNING)
    transitions.finish(run, status="failed", reason="ValueError: no")
    with pytest.raises(ValueError, match="already failed"):
        transitions.kill(run.pk, by=bob)

    assert ends(run) == [("finished", "system", "failed")]
    assert Event.objects.get(action="finished").message == "Failed: ValueError: no"


@pytest.mark.django_db
@pytest.mark.usefixtures("classifier")
def test_a_run_found_lost_is_finished_by_the_system_and_its_late_worker_adds_nothing(project, bob):
    run = classifier_run(project, bob)
    transitions.claim(run, status=PipelineRun.RUNNING)
    reason = (
        "worker lost: w:1 stopped sending heartbeats 9 s ago (killed, or its machine went down)"
    )
    assert transitions.lost(PipelineRun.objects.get(pk=run.pk), reason=reason)
    transitions.finish(run, status="successful")

    assert ends(run) == [("finished", "system", "failed")]
    assert Event.objects.get(action="finished").message == f"Failed: {reason}"


@pytest.mark.django_db
@pytest.mark.usefixtures("classifier")
def test_a_rolled_back_creation_leaves_no_event(project, bob):
    class Interrupted(Exception):
        pass

    with pytest.raises(Interrupted), transaction.atomic():
        classifier_run(project, bob)
        raise Interrupted

    assert not Event.objects.exists() and not PipelineRun.objects.exists()


@pytest.mark.django_db
@pytest.mark.usefixtures("classifier")
def test_an_outsider_and_a_viewer_can_not_kill_nor_log(api_as, bob, vera, charlie, project):
    run = classifier_run(project, bob)
    assert api_as(vera).post(f"{API}/pipelines/{run.pk}/kill").status_code == 403
    assert api_as(charlie).post(f"{API}/pipelines/{run.pk}/kill").status_code == 404
    assert [action for action, *_ in logged()] == ["created"]


# The cost on the run path: each event is its INSERT, nothing more.


def _queries(action):
    with CaptureQueriesContext(connection) as captured:
        action()
    return [query["sql"] for query in captured.captured_queries]


@pytest.mark.django_db
@pytest.mark.usefixtures("classifier")
def test_each_event_of_the_run_path_costs_its_insert_only(project, bob, monkeypatch):
    def run_path():
        """What a run costs the platform: its creation, its claim, its finish with the new
        version (the runner's run, as run_pipeline loads it; the files as it uploaded them)."""
        run = classifier_run(project, bob)
        run = PipelineRun.objects.select_related(
            "project", "package", "version__manifest", "dataset__manifest", "created_by"
        ).get(pk=run.pk)
        files = manifest_create()
        transitions.claim(run, status=PipelineRun.RUNNING)
        transitions.finish(
            run,
            status="successful",
            new_version=lambda: package_version_create_trained(run=run, manifest=files),
        )

    with_events = _queries(run_path)
    monkeypatch.setattr(Event.objects, "create", lambda **fields: Event(**fields))
    without = _queries(run_path)

    inserts = [sql for sql in with_events if sql.startswith('INSERT INTO "governance_event"')]
    assert len(inserts) == 4  # created, started, trained, finished
    assert len(with_events) == len(without) + len(inserts)
    assert not [sql for sql in without if "governance_event" in sql]

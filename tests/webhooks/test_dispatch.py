"""event_recorded, on the hot path of every change: which ML Logs events become which webhook
events, what it costs in queries, and that it never raises."""

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from core.events import record
from core.models import Event
from core.queue import connection as queue_connection
from tests.webhooks.conftest import SECRET, finished_event, make_webhook
from webhooks.dispatch import (
    LISTENERS_GENERATION_KEY,
    event_recorded,
    listeners_changed,
    webhook_events,
)
from webhooks.models import Delivery, Webhook
from webhooks.services import run_mail_preference_set, webhook_delete


def _event(category, action, **data):
    return Event(category=category, action=action, data=data)


@pytest.mark.parametrize(
    ("category", "action", "data", "names"),
    [
        ("pipeline", "started", {}, ["pipeline.started"]),
        ("pipeline", "finished", {"status": "successful"}, ["pipeline.finished"]),
        ("pipeline", "finished", {"status": "failed"}, ["pipeline.finished", "pipeline.failed"]),
        ("pipeline", "killed", {"status": "killed"}, ["pipeline.finished", "pipeline.killed"]),
        ("pipeline", "created", {}, []),
        ("package", "uploaded", {"version": "1.0"}, ["version.created"]),
        ("package", "validated", {"version": "2.0"}, ["version.created"]),
        ("package", "trained", {"version": "1.1"}, ["version.created"]),
        ("package", "refused", {}, []),
        ("skill", "updated", {"from": "1.0", "to": "1.1"}, ["skill.updated"]),
        ("skill", "failed", {}, ["skill.failed"]),
        ("skill", "predictions", {"count": 5}, []),
        ("dataset", "files_uploaded", {"count": 1}, ["dataset.changed"]),
        ("dataset", "files_deleted", {"path": "a"}, ["dataset.changed"]),
        ("member", "added", {}, []),
    ],
)
def test_which_webhook_events_an_event_is(category, action, data, names):
    assert webhook_events(_event(category, action, **data)) == names


def _events(project):
    return [
        Event.objects.create(project=project, category="skill", action="updated", object_key="s"),
        Event.objects.create(project=project, category="pipeline", action="started"),
        Event.objects.create(
            project=project, category="pipeline", action="finished", object_key="7"
        ),
    ]


def test_it_costs_no_query_and_no_job_when_nobody_listens(project, monkeypatch, transactional_db):
    monkeypatch.setattr("core.queue.enqueue", _no_job)
    listeners_changed()
    events = _events(project)
    with CaptureQueriesContext(connection) as asked:
        event_recorded(events[0])  # who listens at all: asked once
    assert len(asked) == 2
    with CaptureQueriesContext(connection) as queries:
        for event in events:
            event_recorded(event)
    assert len(queries) == 0


def test_a_project_with_a_webhook_costs_one_query(project, alice, monkeypatch, transactional_db):
    make_webhook(project, alice, "http://127.0.0.1:9/", events=["pipeline.killed"])
    monkeypatch.setattr("core.queue.enqueue", _no_job)
    skill_updated, started, _ = _events(project)
    event_recorded(skill_updated)
    with CaptureQueriesContext(connection) as queries:
        event_recorded(started)
    assert len(queries) == 1
    assert "webhooks_webhook" in queries[0]["sql"]


@pytest.fixture
def deliveries_not_sent(monkeypatch):
    """The session's worker serves the pipelines queue, which carries deliveries too: a job it
    took would write to the database while this test's teardown flushes it (a deadlock)."""
    queued = []
    monkeypatch.setattr(
        "webhooks.delivery.enqueue", lambda queue, function, *args, **kw: queued.append(args)
    )
    return queued


def test_a_change_rolled_back_is_not_kept(project, alice, transactional_db, deliveries_not_sent):
    """A webhook deleted in a transaction that then rolls back: this process must not keep
    "nobody listens" from inside it (no commit bumps the number afterwards)."""
    webhook = make_webhook(project, alice, "http://127.0.0.1:9/", events=["pipeline.started"])
    with pytest.raises(RuntimeError), transaction.atomic():
        webhook_delete(user=alice, webhook=webhook)
        event_recorded(_events(project)[0])  # asked inside: not kept
        raise RuntimeError("the request failed")
    event_recorded(_events(project)[1])
    assert Delivery.objects.get().event == "pipeline.started"
    assert len(deliveries_not_sent) == 1


def test_a_change_committed_by_another_process_is_heard(
    project, alice, transactional_db, deliveries_not_sent
):
    """Another process (a web server) adds a webhook: this one (a worker) hears of it through
    the number in Redis that process's commit bumps, and delivers the next event."""
    listeners_changed()
    event_recorded(_events(project)[0])  # this process now knows nobody listens
    Webhook.objects.create(
        project=project, url="http://127.0.0.1:9/", events=["pipeline.started"], secret=SECRET
    )
    queue_connection("pipelines").incr(LISTENERS_GENERATION_KEY)  # what its commit does
    event_recorded(_events(project)[1])
    assert Delivery.objects.get().event == "pipeline.started"
    assert len(deliveries_not_sent) == 1


def test_it_costs_nothing_for_an_event_no_webhook_can_hear(project, alice):
    make_webhook(project, alice, "http://127.0.0.1:9/", events=["pipeline.finished"])
    event = Event.objects.create(project=project, category="member", action="added")
    with CaptureQueriesContext(connection) as queries:
        event_recorded(event)
    assert len(queries) == 0


def test_a_finished_run_costs_one_more_query_when_someone_wants_e_mail(
    project, alice, monkeypatch, transactional_db
):
    run_mail_preference_set(user=alice, runs="failed")
    monkeypatch.setattr("core.queue.enqueue", _no_job)
    *_, finished = _events(project)
    event_recorded(_events(project)[0])  # who listens: asked
    with CaptureQueriesContext(connection) as queries:
        event_recorded(finished)  # successful (no status: not failed): no e-mail
    assert len(queries) == 1
    assert "webhooks_runmailpreference" in queries[0]["sql"]


def _no_job(*args, **kwargs):
    raise AssertionError("no job should be queued")


def test_it_makes_a_delivery_per_subscribed_webhook_and_event(
    project, alice, deliveries_not_sent, django_capture_on_commit_callbacks
):
    queued = deliveries_not_sent
    both = make_webhook(
        project, alice, "http://127.0.0.1:9/a", ["pipeline.finished", "pipeline.failed"]
    )
    failed_only = make_webhook(project, alice, "http://127.0.0.1:9/b", ["pipeline.failed"])
    make_webhook(project, alice, "http://127.0.0.1:9/c", ["pipeline.started"])
    make_webhook(project, alice, "http://127.0.0.1:9/d", ["pipeline.failed"], active=False)
    with django_capture_on_commit_callbacks(execute=True):
        event = finished_event(project, status="failed")
    made = sorted((d.webhook_id, d.event) for d in Delivery.objects.all())
    assert made == [
        (both.pk, "pipeline.failed"),
        (both.pk, "pipeline.finished"),
        (failed_only.pk, "pipeline.failed"),
    ]
    assert all(d.event_id == event.pk and d.status == "pending" for d in Delivery.objects.all())
    assert sorted(args for args in queued) == sorted((d.pk,) for d in Delivery.objects.all())


def test_a_rolled_back_change_delivers_nothing(project, alice, django_capture_on_commit_callbacks):
    from django.db import transaction

    make_webhook(project, alice, "http://127.0.0.1:9/", events=["pipeline.finished"])
    with django_capture_on_commit_callbacks(execute=True):
        try:
            with transaction.atomic():
                finished_event(project)
                raise RuntimeError("the change failed")
        except RuntimeError:
            pass
    assert not Delivery.objects.exists()


def test_redis_away_leaves_the_delivery_pending_and_the_caller_unharmed(
    project, alice, monkeypatch, django_capture_on_commit_callbacks
):
    def redis_away(*args, **kwargs):
        raise ConnectionError("Error 111 connecting to redis")

    monkeypatch.setattr("webhooks.delivery.enqueue", redis_away)
    make_webhook(project, alice, "http://127.0.0.1:9/", events=["pipeline.finished"])
    with django_capture_on_commit_callbacks(execute=True):
        finished_event(project)  # raises nothing
    delivery = Delivery.objects.get()
    assert delivery.status == "pending"
    assert "Redis unreachable" in delivery.last_error


def test_it_never_raises(project, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("database gone")

    monkeypatch.setattr("webhooks.dispatch.Webhook.objects.filter", broken)
    monkeypatch.setattr("pipelines.models.PipelineRun.objects.filter", broken)
    event = Event.objects.create(
        project=project, category="pipeline", action="finished", object_key="1"
    )
    event_recorded(event)  # logged, not raised


def test_an_event_without_a_project_is_ignored(db):
    event = record(project=None, category="token", action="created")
    with CaptureQueriesContext(connection) as queries:
        event_recorded(event)
    assert len(queries) == 0


def test_a_delivery_whose_job_redis_lost_is_queued_again(
    project, alice, receiver, monkeypatch, settings, django_capture_on_commit_callbacks
):
    from webhooks.delivery import deliveries_requeue_lost

    with monkeypatch.context() as away:
        away.setattr("webhooks.delivery.enqueue", _redis_away)
        make_webhook(project, alice, receiver.url, events=["pipeline.finished"])
        with django_capture_on_commit_callbacks(execute=True):
            finished_event(project)
    assert receiver.requests == []
    settings.PIPELINE_QUEUE_IMMEDIATE = True  # Redis is back; the job runs here, at once
    assert deliveries_requeue_lost(older_than_seconds=60) == 0  # not due for long enough yet
    assert deliveries_requeue_lost(older_than_seconds=0) == 1
    assert Delivery.objects.get().status == "succeeded"
    assert receiver.json()["event"] == "pipeline.finished"


def test_a_delivery_whose_job_is_in_redis_is_left_alone(project, alice):
    from datetime import timedelta

    from django.utils import timezone

    from webhooks.delivery import deliveries_requeue_lost, delivery_enqueue

    webhook = make_webhook(project, alice, "http://127.0.0.1:9/", events=["pipeline.finished"])
    delivery = Delivery.objects.create(webhook=webhook, event="ping")
    delivery_enqueue(delivery, at=timezone.now() + timedelta(hours=1))  # a retry, scheduled
    assert deliveries_requeue_lost(older_than_seconds=0) == 0


def _redis_away(*args, **kwargs):
    raise ConnectionError("Error 111 connecting to redis")


def test_the_sweeper_queues_again_a_delivery_redis_lost(
    project, alice, receiver, monkeypatch, settings, django_capture_on_commit_callbacks
):
    from datetime import timedelta

    from django.utils import timezone

    from pipelines import sweeper

    with monkeypatch.context() as away:
        away.setattr("webhooks.delivery.enqueue", _redis_away)
        make_webhook(project, alice, receiver.url, events=["pipeline.finished"])
        with django_capture_on_commit_callbacks(execute=True):
            finished_event(project)
    Delivery.objects.update(created_at=timezone.now() - timedelta(minutes=5))
    settings.PIPELINE_QUEUE_IMMEDIATE = True  # Redis is back; the job runs here, at once
    sweeper.sweep()
    assert Delivery.objects.get().status == "succeeded"

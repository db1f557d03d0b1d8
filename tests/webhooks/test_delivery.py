"""Deliveries by the real worker (manage.py rqworker, the session's) to a real HTTP receiver
on loopback: signed as docs/api.md says, the object as the API shows it, retried with backoff
(1 s, then 2 s, given up after 4 s in the test settings) and each attempt listed."""

import hashlib
import hmac
import http.client
import json
import re
import time
import types
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from core.events import record
from tests.conftest import classifier_and_invoices, classifier_run, wait_until
from tests.webhooks.conftest import SECRET, finished_event, make_webhook
from webhooks.delivery import retry_wait, signature
from webhooks.models import Delivery

pytestmark = pytest.mark.django_db(transaction=True)


def documented_verify():
    """docs/api.md's signature check, run as a receiver would copy it."""
    guide = Path(django_settings.BASE_DIR, "docs", "api.md").read_text()
    section = guide[guide.index("## Webhooks") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert len(code.strip().splitlines()) <= 14
    namespace = {}
    exec(code, namespace)  # noqa: S102 - our own docs' snippet
    return namespace["verify"]


def verified(got) -> bool:
    """Does the docs' recipe accept this request the receiver got?"""
    headers = got["headers"]
    stamp, signed = headers["X-AICenter-Timestamp"], headers["X-AICenter-Signature"]
    return documented_verify()(SECRET, got["body"], stamp, signed)


def _done(delivery_id):
    return lambda: Delivery.objects.get(pk=delivery_id).status != Delivery.PENDING


def test_a_finished_run_is_delivered_signed_with_the_run_as_the_api_shows_it(
    project, alice, api_as, receiver, worker, runs_stay_here
):
    classifier_and_invoices(project, alice)
    run = classifier_run(project, alice)
    make_webhook(project, alice, receiver.url, events=["pipeline.finished", "version.created"])
    finished_event(project, run_id=run.pk)
    delivery = Delivery.objects.get()
    wait_until(_done(delivery.pk), 30, "the worker did not deliver")

    (got,) = receiver.requests
    headers, body = got["headers"], got["body"]
    assert got["path"] == "/hook?from=aicenter"
    assert headers["Content-Type"] == "application/json"
    assert headers["X-AICenter-Event"] == "pipeline.finished"
    assert headers["X-AICenter-Delivery"] == str(delivery.uuid)
    stamp, signed = headers["X-AICenter-Timestamp"], headers["X-AICenter-Signature"]
    assert abs(int(stamp) - time.time()) < 60
    assert documented_verify()(SECRET, body, stamp, signed)
    assert not documented_verify()("another secret!!", body, stamp, signed)
    assert not documented_verify()(SECRET, body + b" ", stamp, signed)

    payload = json.loads(body)
    assert set(payload) == {"event", "time", "project", "data"}
    assert payload["event"] == "pipeline.finished" and payload["project"] == "alpha"
    assert payload["data"] == api_as(alice).get(f"/api/v1/projects/alpha/pipelines/{run.pk}").json()

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("succeeded", 1, 200)


def test_a_new_version_is_delivered_as_the_api_shows_it(project, alice, api_as, receiver, worker):
    classifier_and_invoices(project, alice)
    make_webhook(project, alice, receiver.url, events=["version.created"])
    record(
        project=project,
        category="package",
        action="uploaded",
        actor=alice,
        object_type="version",
        object_key="classifier 1.0",
        object_name="classifier 1.0",
        data={"version": "1.0"},
    )
    wait_until(_done(Delivery.objects.get().pk), 30, "the worker did not deliver")
    package = api_as(alice).get("/api/v1/projects/alpha/packages/classifier").json()
    assert receiver.json()["data"] == package["versions"][0]
    assert receiver.json()["event"] == "version.created"


def test_a_failing_receiver_is_retried_with_the_same_delivery_and_the_attempts_are_listed(
    project, alice, pages_as, receiver, worker
):
    receiver.statuses = [500]
    webhook = make_webhook(project, alice, receiver.url)
    finished_event(project, run_id=999)  # a run since deleted: the event's own words are sent
    delivery = Delivery.objects.get()
    wait_until(_done(delivery.pk), 30, "the worker did not give up")

    delivery.refresh_from_db()
    # attempts at 0 s, 1 s and 3 s; the next (7 s) would be past the 4 s the tests allow
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("failed", 3, 500)
    assert len(receiver.requests) == 3
    assert len({r["headers"]["X-AICenter-Delivery"] for r in receiver.requests}) == 1
    assert all(verified(r) for r in receiver.requests)  # each attempt signed when sent
    assert len({r["body"] for r in receiver.requests}) == 1
    assert receiver.json()["data"] == {
        "type": "pipeline",
        "key": "999",
        "name": "Pipeline 999",
        "deleted": True,
    }
    times = [a.time for a in delivery.attempt_rows.order_by("id")]
    assert times == sorted(times)
    assert all(len(a.response_snippet) <= 200 for a in delivery.attempt_rows.all())

    page = pages_as(alice).get(f"/p/alpha/webhooks/{webhook.pk}/").content.decode()
    assert page.count("HTTP 500") == 3
    assert str(delivery.uuid) in page and "Failed" in page


def test_a_receiver_that_recovers_gets_it_on_a_retry(project, alice, receiver, worker):
    receiver.statuses = [503, 200]
    make_webhook(project, alice, receiver.url)
    finished_event(project)
    delivery = Delivery.objects.get()
    wait_until(_done(delivery.pk), 30, "the worker did not deliver")
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("succeeded", 2)
    codes = list(delivery.attempt_rows.order_by("id").values_list("status_code", flat=True))
    assert codes == [503, 200]


def test_an_unreachable_receiver_is_an_attempt_with_its_error(project, alice, worker):
    from tests.conftest import free_port

    make_webhook(project, alice, f"http://127.0.0.1:{free_port()}/")
    finished_event(project)
    delivery = Delivery.objects.get()
    wait_until(_done(delivery.pk), 30, "the worker did not give up")
    attempt = delivery.attempt_rows.first()
    assert attempt.status_code is None and "ConnectionRefusedError" in attempt.error


def test_signature_is_hmac_sha256_of_the_timestamp_and_the_body():
    body = b'{"event":"ping"}'
    expected = hmac.new(b"k" * 16, b"1767225600." + body, hashlib.sha256).hexdigest()
    assert signature("k" * 16, 1767225600, body) == f"sha256={expected}"


def test_a_receiver_following_the_docs_refuses_a_replayed_delivery(
    project, alice, receiver, worker
):
    """The attack: someone who saw one delivery (a log, a proxy) sends it again later. The
    receiver runs the recipe of docs/api.md; its clock is moved on to replay the recording."""
    verify = documented_verify()
    clock = {"skew": 0.0}
    verify.__globals__["time"] = types.SimpleNamespace(time=lambda: time.time() + clock["skew"])
    receiver.check = lambda headers, body: verify(
        SECRET, body, headers.get("X-AICenter-Timestamp"), headers.get("X-AICenter-Signature")
    )
    make_webhook(project, alice, receiver.url)
    finished_event(project)
    delivery = Delivery.objects.get()
    wait_until(_done(delivery.pk), 30, "the worker did not deliver")
    delivery.refresh_from_db()
    assert (delivery.status, delivery.last_status_code) == ("succeeded", 200)  # accepted
    (got,) = receiver.requests

    def replay(**changed):
        headers = {k: v for k, v in {**got["headers"], **changed}.items() if v is not None}
        connection = http.client.HTTPConnection("127.0.0.1", receiver.port, timeout=5)
        connection.request("POST", got["path"], body=got["body"], headers=headers)
        return connection.getresponse().status

    assert replay() == 200  # within the 5 minutes: the same delivery (dropped by its id)
    clock["skew"] = 6 * 60
    assert replay() == 401  # six minutes later: too old
    fresh = str(int(time.time() + clock["skew"]))
    assert replay(**{"X-AICenter-Timestamp": fresh}) == 401  # signed with the old time
    assert replay(**{"X-AICenter-Timestamp": None}) == 401


def test_the_backoff_doubles_up_to_4_hours_and_stops_after_a_day(
    project, alice, receiver, settings, django_capture_on_commit_callbacks
):
    """The production schedule, driven in this process: each retry is attempted as soon as it
    is queued (PIPELINE_QUEUE_IMMEDIATE), with the times it was due for recorded."""
    settings.WEBHOOKS_RETRY_FIRST_SECONDS = 30
    settings.WEBHOOKS_RETRY_FOR_SECONDS = 24 * 3600
    settings.PIPELINE_QUEUE_IMMEDIATE = True
    assert [retry_wait(n) for n in (1, 2, 3, 9, 10, 11)] == [30, 60, 120, 7680, 14400, 14400]
    receiver.statuses = [500]
    make_webhook(project, alice, receiver.url)
    with django_capture_on_commit_callbacks(execute=True):
        finished_event(project)
    delivery = Delivery.objects.get()
    # 30 s, 1 min, … 2 h 8 min (9 retries, 4 h 15 min in all), then every 4 h: 4 more by 20 h
    assert (delivery.status, delivery.attempts) == ("failed", 14)
    assert len(receiver.requests) == 14


def test_a_webhook_turned_off_meanwhile_gets_nothing(
    project, alice, receiver, settings, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr("webhooks.delivery.enqueue", lambda *a, **k: None)  # queued, not run
    webhook = make_webhook(project, alice, receiver.url)
    with django_capture_on_commit_callbacks(execute=True):
        finished_event(project)
    webhook.active = False
    webhook.save()
    from webhooks.tasks import deliver

    delivery = Delivery.objects.get()
    deliver(delivery.pk)
    delivery.refresh_from_db()
    assert delivery.status == "failed" and delivery.last_error == "The webhook was turned off."
    assert receiver.requests == []
    webhook.delete()
    deliver(delivery.pk)  # its webhook deleted: nothing to do, nothing raised

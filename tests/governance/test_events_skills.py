"""ML Logs of ML Skills: what people do (page or token), what the system does (auto-update, a
version that fails to load), and the calls, counted: one "predictions" event per skill per
minute that had calls, once the minute is over, however many batches stored it."""

import json
import time
from datetime import UTC, datetime

import pytest

from core.models import Event
from core.signatures import sign
from packages.models import PackageVersion
from skills import channel, stats
from skills.models import Skill, SkillMinute
from skills.transitions import follow_newest
from tests.conftest import upload, wait_for
from tests.factories import package_zip
from tests.skills.conftest import (  # noqa: F401 - fixtures: skill_host, sandboxed, clean Redis
    ECHO,
    _skills_redis_clean,
    deploy,
    predict,
    sandboxed,
    skill_host,
    wait_available,
)

API = "/api/v1/projects/alpha"
BROKEN = ECHO.replace(
    "    def __init__(self):\n", "    def __init__(self):\n        import nothing_here\n"
)


def logged(**filters):
    """The skill events, oldest first, as (action, actor, key, data)."""
    events = Event.objects.filter(category="skill", **filters).order_by("id")
    return [(e.action, e.actor_name, e.object_key, e.data) for e in events]


def serves(*, version):
    number = PackageVersion.objects.get(package__name="echo", major=int(version[0]), minor=0)
    Skill.objects.filter(name="echo-skill").update(serving=number, status=Skill.AVAILABLE)


@pytest.fixture
def api(api_as, bob):
    api = api_as(bob)
    for _ in range(2):  # versions 1.0 and 2.0
        response = api.post(f"{API}/packages", {"name": "echo", "file": upload()})
        if response.status_code == 409:
            response = api.post(f"{API}/packages/echo/versions", {"file": upload()})
        assert response.status_code == 201, response.content
    return api


@pytest.mark.django_db
def test_what_people_do_to_a_skill_is_logged_as_them(api, pages_as, alice):
    deploy(api, replicas=1)
    serves(version="1.0")  # as a skill host makes it once its replica loaded
    api.patch_json(f"{API}/skills/echo-skill", {"version": "2.0"})
    api.patch_json(f"{API}/skills/echo-skill", {"replicas": 2, "auto_update": True})
    api.patch_json(f"{API}/skills/echo-skill", {"replicas": 2})  # no change: no event
    key = api.post(f"{API}/skills/echo-skill/rotate-key").json()["api_key"]
    pages_as(alice).post("/p/alpha/skills/echo-skill/undeploy/")
    api.post(f"{API}/skills/echo-skill/deploy")
    assert api.delete(f"{API}/skills/echo-skill").status_code == 204

    name = "echo-skill"
    assert logged() == [
        ("deployed", "bob", name, {"version": "1.0", "replicas": 1}),
        (
            "update_requested",
            "bob",
            name,
            {"from": "1.0", "to": "2.0", "auto": False, "replicas": 1, "auto_update": False},
        ),
        (
            "changed",
            "bob",
            name,
            {"from": "2.0", "to": "2.0", "auto": False, "replicas": 2, "auto_update": True},
        ),
        ("key_rotated", "bob", name, {}),
        ("undeployed", "alice", name, {}),
        ("deployed", "bob", name, {"version": "2.0", "replicas": 2}),
        ("deleted", "bob", name, {}),
    ]
    messages = list(Event.objects.filter(category="skill").values_list("message", flat=True))
    assert "1.0 → 2.0" in messages and "replicas 1 → 2, auto-update on" in messages
    # the key is a secret: members who read the logs never see it
    assert not Event.objects.filter(message__contains=key).exists()
    assert key not in json.dumps(list(Event.objects.values_list("data", flat=True)))
    urls = list(Event.objects.filter(category="skill").order_by("id").values_list("url", flat=True))
    assert urls == ["/p/alpha/skills/echo-skill/"] * 6 + [""]


@pytest.mark.django_db
def test_a_viewer_and_an_outsider_log_nothing(api, api_as, vera, charlie):
    deploy(api)
    for user in (vera, charlie):
        client = api_as(user)
        assert client.post(f"{API}/skills/echo-skill/rotate-key").status_code in (403, 404)
        assert client.delete(f"{API}/skills/echo-skill").status_code in (403, 404)
    assert [action for action, *_ in logged()] == ["deployed"]


# Predictions: counted per minute, logged once the minute is over.


@pytest.mark.django_db
def test_calls_are_logged_once_per_skill_and_minute_when_it_is_over(api):
    deploy(api, name="a")
    deploy(api, name="b")
    api.post(f"{API}/skills/a/undeploy")
    api.post(f"{API}/skills/b/undeploy")
    a, b = Skill.objects.get(name="a"), Skill.objects.get(name="b")
    for _ in range(3):  # failed calls (503: undeployed), through the API
        assert predict(api, name="a").status_code == 503
    with stats.timed(a) as call:  # a call that answered, as skill_predict counts it
        call.status = 200
    stats.record_calls()  # a first batch: the minute is not over
    assert not logged(action="predictions")
    assert predict(api, name="b").status_code == 503
    with stats.timed(a) as call:
        call.status = 200
    minute = SkillMinute.objects.get(skill=a).minute

    stats.record_calls(now=time.time() + 120)  # a second batch; now the minute is over
    stats.record_calls(now=time.time() + 240)  # and again: nothing new

    expected = {"minute": minute.isoformat(), "count": 5, "errors": 3}
    assert logged(action="predictions", object_key="a") == [
        ("predictions", "system", "a", expected)
    ]
    (event_b,) = logged(action="predictions", object_key="b")
    assert event_b[3]["count"] == 1 and event_b[3]["errors"] == 1
    message = Event.objects.get(action="predictions", object_key="a").message
    assert message == f"5 calls, 3 failed in the minute {minute:%H:%M} UTC"
    assert SkillMinute.objects.filter(skill__in=[a, b], logged=True).count() == 2


@pytest.mark.django_db
def test_a_minute_whose_calls_still_wait_in_the_list_is_not_logged_yet(api):
    deploy(api, name="a")
    a = Skill.objects.get(name="a")
    long_ago = datetime(2026, 1, 1, 12, 0, 30, tzinfo=UTC).timestamp()
    call = {"skill": a.pk, "time": long_ago, "ms": 3.0, "status": 200}
    record = sign(json.dumps(call).encode(), to=stats.CALLS_KEY)  # as a web server pushes it
    channel.connection().rpush(stats.CALLS_KEY, record)
    stats._store_calls()  # a host stored it
    channel.connection().rpush(stats.CALLS_KEY, record)  # one more, not stored yet

    assert stats.log_finished_minutes() == 0  # its minute is long over, but a call of it waits

    stats.record_calls()
    assert logged(action="predictions") == [
        (
            "predictions",
            "system",
            "a",
            {"minute": "2026-01-01T12:00:00+00:00", "count": 2, "errors": 0},
        )
    ]


# What the system does: auto-update (a host's tick) and a version that fails to load.


@pytest.mark.django_db(transaction=True)
def test_auto_update_to_a_trained_version_is_the_systems_and_logged_once(api, worker):
    api.post_json(f"{API}/datasets", {"name": "invoices"})
    api.put(f"{API}/datasets/invoices/files/a.csv", b"1\n", content_type="text/csv")
    deploy(api, auto_update=True)
    serves(version="1.0")
    response = api.post_json(
        f"{API}/pipelines",
        {"type": "train", "package": "echo", "version": "1.0", "dataset": "invoices"},
    )
    from pipelines.models import PipelineRun

    run = wait_for(PipelineRun.objects.get(pk=response.json()["id"]), timeout=120)
    assert run.status == "successful", run.failure_reason
    assert PackageVersion.objects.filter(package__name="echo", major=1, minor=1).exists()

    for _ in range(2):  # two hosts' ticks, with the skill as each read it before
        follow_newest(Skill.objects.get(name="echo-skill"))
    stale = Skill.objects.get(name="echo-skill")
    stale.version = PackageVersion.objects.get(package__name="echo", major=1, minor=0)
    follow_newest(stale)  # a tick that read the skill before the update: moves nothing

    # asked for, not done: no host serves it here (the skills tests watch it happen)
    assert logged(action="update_requested") == [
        ("update_requested", "system", "echo-skill", {"from": "1.0", "to": "1.1", "auto": True})
    ]
    assert Event.objects.get(action="update_requested").message == "1.0 → 1.1 (auto-update)"
    assert not logged(action="updated")


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("skill_host", "sandboxed")
def test_a_version_that_fails_to_load_is_logged_by_the_system(api):
    content = package_zip(**{"main.py": BROKEN})
    assert api.post(f"{API}/packages", {"name": "broken", "file": upload(content=content)})
    deploy(api, package="broken")
    wait_available(api, status="failed")

    ((action, actor, key, data),) = logged(action="failed")
    assert (action, actor, key) == ("failed", "system", "echo-skill")
    assert data["version"] == "1.0" and data["still_serving"] is False
    assert "No module named 'nothing_here'" in data["reason"]
    assert Event.objects.get(action="failed").message.startswith("Version 1.0 failed to load")

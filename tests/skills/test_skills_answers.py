"""A replica's answers, attacked: predict() runs in the replica's own process and can write a
frame of its own to the skill host's pipe, with a header no replica bootstrap writes
({"status": "abc"}). The caller gets a 502, the replica is started again, and the call records
of every skill, with that minute's ML Logs "predictions" events, are kept."""

import json
import time

import pytest

from core.models import Event
from core.signatures import sign
from skills import channel, stats
from skills.models import Skill, SkillCall
from tests.conftest import wait_until
from tests.skills.conftest import API, deploy, predict, wait_available

FORGER = """\
import json, os, struct


class Main:
    def __init__(self):
        pass

    def predict(self, input):
        payload = json.dumps({"status": "abc", "type": ["json"]}).encode() + b"\\n" + b"{}"
        for fd in range(3, 64):
            try:
                os.write(fd, struct.pack(">I", len(payload)) + payload)
            except OSError:
                pass
        return input
"""


def counted(api, name):
    return api.get(f"{API}/skills/{name}").json()["last_hour"]["calls"]


def test_a_forged_answer_is_a_502_and_every_skills_calls_are_counted(
    api, skill_host, echo, sandboxed
):
    echo()
    echo(main=FORGER, name="forger")
    deploy(api)
    deploy(api, name="forger-skill", package="forger")
    wait_available(api)
    wait_available(api, name="forger-skill")
    answers = [predict(api, body=f"call {n}").status_code for n in range(3)]
    forged = predict(api, name="forger-skill")
    answers += [predict(api, body=f"call {n}").status_code for n in range(3, 6)]
    assert answers == [200] * 6
    assert forged.status_code == 502, forged.content
    assert "broke the protocol" in forged.json()["detail"]

    wait_until(lambda: counted(api, "echo-skill") == 6, 10, "the echo calls were lost")
    wait_until(lambda: counted(api, "forger-skill") == 1, 10, "the forged call was lost")
    assert list(SkillCall.objects.filter(skill__name="forger-skill").values_list("status")) == [
        (502,)
    ]
    wait_available(api, name="forger-skill")  # started again
    stats.log_finished_minutes(now=time.time() + 120)
    logged = Event.objects.filter(action="predictions").values_list("object_key", "data")
    assert sum(data["count"] for key, data in logged if key == "echo-skill") == 6


@pytest.mark.django_db
def test_a_bad_record_is_dropped_and_the_others_of_its_batch_are_kept(api, echo, caplog):
    echo()
    deploy(api, name="a")
    deploy(api, name="b")
    a, b = Skill.objects.get(name="a"), Skill.objects.get(name="b")
    now = time.time()
    good = [
        {"skill": a.pk, "time": now, "ms": 3.0, "status": 200},
        {"skill": b.pk, "time": now, "ms": 4.0, "status": 422, "input": "x"},
    ]
    bad = [
        {"skill": a.pk, "time": now, "ms": 3.0, "status": "abc"},
        {"skill": a.pk, "time": now, "ms": 3.0, "status": 99999},
        {"skill": a.pk, "time": 1e300, "ms": 3.0, "status": 200},
        {"skill": a.pk, "time": now, "ms": float("nan"), "status": 200},
        {"skill": str(a.pk), "time": now, "ms": 3.0, "status": 200},
        {"skill": b.pk, "time": now, "ms": 3.0, "status": 200, "input": ["x"]},
        ["not", "a", "record"],
    ]
    client = channel.connection()
    # signed as the web servers sign them: a replica's answer, not Redis, is what went wrong
    items = [b"{not json", *[json.dumps(r).encode() for r in bad[:3] + good + bad[3:]]]
    client.rpush(stats.CALLS_KEY, *[sign(item, to=stats.CALLS_KEY) for item in items])

    assert stats.record_calls(now=now + 120) == 2
    assert sorted(SkillCall.objects.values_list("skill__name", "status", "input")) == [
        ("a", 200, ""),
        ("b", 422, "x"),
    ]
    logged = Event.objects.filter(action="predictions").values_list("object_key", "data")
    assert sorted((key, data["count"]) for key, data in logged) == [("a", 1), ("b", 1)]
    assert "dropped 8 call records" in caplog.text

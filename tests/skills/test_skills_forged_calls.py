"""Redis write access is not a skill's caller's nor its replica's: with nothing but a connection
to Redis, an attacker pushes a call onto a skill's list (its replica's predict would leave a
mark) and an answer onto a caller's list. Neither is taken: a real skill host, a real sandboxed
replica, the real Redis. Nor does a call record pushed onto the list of calls count a call."""

import json
import logging
import threading
import time

import pytest
import redis
from django.conf import settings

from skills import channel, stats
from skills.models import SkillMinute
from tests.skills.conftest import deploy, predict, skill_of, wait_available

pytestmark = pytest.mark.django_db(transaction=True)

MARKING = """\
import time


class Main:
    def __init__(self):
        pass

    def predict(self, input):
        open({folder!r} + "/" + input, "w").close()  # the call reached the replica
        deadline = time.monotonic() + 20
        while input == "slow" and time.monotonic() < deadline:
            try:  # answers only once the attacker's answer is in the caller's list
                open({folder!r} + "/forged-answer-pushed").close()
                break
            except FileNotFoundError:
                time.sleep(0.05)
        return input
"""


@pytest.fixture
def attacker():
    client = redis.Redis.from_url(settings.REDIS_URL)
    yield client
    client.close()


def test_a_call_pushed_into_redis_never_reaches_the_replica(
    api, skill_host, echo, sandboxed, tmp_path, attacker
):
    echo(main=MARKING.format(folder=str(tmp_path)))
    deploy(api)
    wait_available(api)
    header = {"id": "forged-call", "deadline": time.time() + 30}
    message = json.dumps(header).encode() + b"\nforged"  # the channel's format, unsigned
    attacker.rpush(f"aicenter:skill:{skill_of().pk}:requests", message)

    response = predict(api, body="legit")  # after it in the list: the host took it first

    assert response.status_code == 200 and response.content == b"legit"
    assert (tmp_path / "legit").exists()
    assert not (tmp_path / "forged").exists(), "the forged call reached the replica"
    assert attacker.llen("aicenter:skill:reply:forged-call") == 0  # nothing answered
    assert "dropped a call whose signature doesn't verify" in skill_host.log_path.read_text()


def answer_the_next_call(client, listening: threading.Event, done: threading.Event, folder):
    """Watch Redis (MONITOR: what anyone with access to Redis can do) for the next caller
    waiting on its answer list, and push an answer of the attacker's onto it; then tell the
    replica (a file in `folder`) it may answer, so the forged answer is surely first."""
    with client.monitor() as monitor:
        listening.set()
        for command in monitor.listen():
            words = command["command"].split()
            if words[0] == "BLPOP" and words[1].startswith("aicenter:skill:reply:"):
                forged = json.dumps({"status": 200, "type": "text"}).encode() + b"\nforged"
                redis.Redis.from_url(settings.REDIS_URL).rpush(words[1], forged)
                (folder / "forged-answer-pushed").touch()
                done.set()
                return


def test_an_answer_pushed_into_redis_is_not_taken_for_the_replicas(
    api, skill_host, echo, sandboxed, tmp_path, attacker, caplog
):
    echo(main=MARKING.format(folder=str(tmp_path)))
    deploy(api)
    wait_available(api)
    listening, done = threading.Event(), threading.Event()
    watcher = threading.Thread(
        target=answer_the_next_call, args=(attacker, listening, done, tmp_path)
    )
    watcher.start()
    assert listening.wait(10)

    with caplog.at_level(logging.WARNING, logger=channel.__name__):
        response = predict(api, body="slow")  # answered after the attacker's answer

    watcher.join(10)
    assert done.is_set(), "the attacker never saw the call"
    assert response.status_code == 200 and response.content == b"slow", response.content
    assert "not signed, dropped" in caplog.text


def test_a_call_record_pushed_into_redis_counts_no_call(api, echo, attacker):
    echo()
    deploy(api)
    skill = skill_of()
    record = {"skill": skill.pk, "time": time.time(), "ms": 1.0, "status": 200, "input": "x"}
    attacker.rpush("aicenter:skill:calls", json.dumps(record))  # as a web server pushes one

    stats.record_calls()  # what a skill host does every tick

    assert not skill.calls.exists() and not SkillMinute.objects.filter(skill=skill).exists()

"""Messages through Redis are signed for where they go (core.signatures): the jobs RQ
keeps for the workers, skill calls and their answers. What the attackers' tests
(tests/pipelines/test_signed_jobs*.py, tests/skills/test_skills_forged_calls.py) rely on."""

import zlib

import pytest

from core import queue
from core.signatures import BadSignature, sign, verified
from skills import channel


def test_a_message_verifies_only_unchanged_and_where_it_was_signed_for():
    message = sign(b'{"id": 1}', to="here")
    assert verified(message, to="here") == b'{"id": 1}'
    for forged, to in [
        (message.replace(b"1", b"2"), "here"),  # one byte changed
        (message, "there"),  # moved to another list
        (b"0" * 64 + b'{"id": 1}', "here"),  # a signature guessed
        (b"", "here"),
        (None, "here"),
    ]:
        with pytest.raises(BadSignature):
            verified(forged, to=to)


def test_messages_signed_with_a_retired_key_still_verify(settings):
    message = sign(b"queued before the key changed", to="here")
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "a new key " + "n" * 50
    assert verified(message, to="here") == b"queued before the key changed"
    settings.SECRET_KEY_FALLBACKS = []
    with pytest.raises(BadSignature):
        verified(message, to="here")


def test_a_skills_call_is_good_for_its_own_skill_and_an_answer_for_its_own_call():
    call = channel.encode({"id": "c1", "deadline": 0}, b"body", to=channel.requests_key(1))
    header, body = channel.decode(call, to=channel.requests_key(1))
    assert (header, body) == ({"id": "c1", "deadline": 0}, b"body")
    with pytest.raises(BadSignature):
        channel.decode(call, to=channel.requests_key(2))
    answer = channel.encode({"status": 200}, b"ok", to=channel.reply_key("c1"))
    with pytest.raises(BadSignature):
        channel.decode(answer, to=channel.reply_key("c2"))


@pytest.mark.django_db(transaction=True)  # queued once the transaction commits
def test_a_job_the_platform_queues_is_signed_json():
    queue.enqueue("default", "pipelines.tasks.execute_run", 7, job_id="signed")
    stored = zlib.decompress(queue.connection("default").hget("rq:job:signed", "data"))
    assert stored[64:] == b'["pipelines.tasks.execute_run",null,[7],{}]'  # JSON, no pickle
    job = queue.fetch("default", "signed")
    assert (job.func_name, job.args) == ("pipelines.tasks.execute_run", [7])
    assert queue.job_refusal(job) is None

    job.data = stored.replace(b"[7]", b"[8]")  # one byte changed
    assert "signature doesn't verify" in queue.job_refusal(job)
    with pytest.raises(BadSignature):
        queue.JobSerializer.loads(job.data)

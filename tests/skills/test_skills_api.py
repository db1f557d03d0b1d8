"""The skills API's bad input (a clear 4xx, field by field, nothing stored), roles (a viewer
calls but does not deploy), file inputs, and the call time limit."""

import hashlib
import json
import time

import pytest
from django.test import Client

from skills.models import Skill
from tests.conftest import free_port, upload, wait_until
from tests.skills.conftest import API, deploy, predict, wait_available

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize(
    ("payload", "field", "message"),
    [
        ({"name": "has space"}, "name", "letters, digits"),
        ({"name": "-dash-first"}, "name", "starting with a letter or digit"),
        ({"name": "x" * 101}, "name", "1 to 100"),
        ({"name": "new"}, "name", "names a page of the skills list"),
        ({"package": "nope"}, "package", "No package named 'nope'"),
        ({"version": "9.9"}, "version", "has no version '9.9' (it has: 1.0)"),
        ({"version": "one"}, "version", "has no version 'one'"),
        ({"version": None}, "version", "Choose a version of echo, or an alias to follow"),
        ({"replicas": 0}, "replicas", "from 1 to 16"),
        ({"replicas": 17}, "replicas", "from 1 to 16"),
    ],
)
def test_invalid_skills_are_refused_field_by_field(api, echo, payload, field, message):
    echo()
    body = {"name": "echo-skill", "package": "echo", "version": "1.0", **payload}
    response = api.post_json(f"{API}/skills", body)
    assert response.status_code == 400, response.content
    assert message in " ".join(response.json()["errors"][field])
    assert not Skill.objects.exists()


@pytest.mark.parametrize(
    "body",
    [
        {"name": "s", "package": "echo", "version": "1.0", "replicas": "2"},
        {"name": "s", "package": "echo", "version": "1.0", "auto_update": "yes"},
        {"name": 3, "package": "echo", "version": "1.0"},
    ],
)
def test_wrong_types_are_422(api, echo, body):
    echo()
    response = api.post_json(f"{API}/skills", body)
    assert response.status_code == 422 and response.json()["detail"]
    assert not Skill.objects.exists()


def test_a_taken_name_is_409_and_bad_changes_400(api, echo):
    echo()
    deploy(api)
    response = api.post_json(
        f"{API}/skills", {"name": "echo-skill", "package": "echo", "version": "1.0"}
    )
    assert response.status_code == 409 and "already exists" in response.json()["detail"]
    for change, field in (({"version": "7.0"}, "version"), ({"replicas": 0}, "replicas")):
        response = api.patch_json(f"{API}/skills/echo-skill", change)
        assert response.status_code == 400 and field in response.json()["errors"]
    assert api.patch_json(f"{API}/skills/echo-skill", {"replicas": "x"}).status_code == 422
    assert api.get(f"{API}/skills/nope").status_code == 404
    assert Skill.objects.get().replicas == 1


def test_a_served_package_or_version_cant_be_deleted(api, echo):
    echo()
    deploy(api)
    for path in ("packages/echo/versions/1.0", "packages/echo"):
        response = api.delete(f"{API}/{path}")
        assert response.status_code == 409
        assert "ML Skill(s) echo-skill serve it" in response.json()["detail"]
    api.delete(f"{API}/skills/echo-skill")
    assert api.delete(f"{API}/packages/echo").status_code == 204


def test_a_viewer_calls_but_does_not_deploy(
    api, api_as, vera, charlie, skill_host, echo, sandboxed
):
    echo()
    deploy(api)
    wait_available(api)
    viewer = api_as(vera)
    assert predict(viewer, body="hi").content == b"hi"
    assert viewer.get(f"{API}/skills/echo-skill").json()["api_key"] is None  # shown once
    for method, path, body in (
        ("post", "skills", {"name": "mine", "package": "echo", "version": "1.0"}),
        ("patch", "skills/echo-skill", {"replicas": 2}),
        ("post", "skills/echo-skill/undeploy", {}),
        ("post", "skills/echo-skill/rotate-key", {}),
        ("delete", "skills/echo-skill", None),
    ):
        call = getattr(viewer, method)
        response = call(f"{API}/{path}", json.dumps(body), content_type="application/json")
        assert response.status_code == 403, (path, response.content)
    outsider = api_as(charlie)
    assert predict(outsider, body="hi").status_code == 404
    assert outsider.get(f"{API}/skills").status_code == 404
    skill = Skill.objects.get()
    assert (skill.status, skill.replicas) == ("available", 1)


def test_the_key_is_answered_once_and_stored_only_as_a_hash(api, api_as, vera, echo):
    """The attack: whoever reads the database (a backup, a replica, a leaked dump), or a
    Viewer reading the skill's answer, gets every skill's key and calls it as any robot."""
    echo()
    created = deploy(api)
    key = created["api_key"]
    assert key.startswith("sk-") and created["api_key_prefix"] == key[:8]
    stored = Skill.objects.values().get()
    assert key not in json.dumps(stored, default=str)  # no column holds it
    assert stored["api_key_digest"] == hashlib.sha256(key.encode()).hexdigest()
    viewer = api_as(vera)
    for client in (api, viewer):
        shown = client.get(f"{API}/skills/echo-skill").json()
        assert shown["api_key"] is None and shown["api_key_prefix"] == key[:8]
        assert client.get(f"{API}/skills").json()[0]["api_key"] is None
    assert viewer.post(f"{API}/skills/echo-skill/rotate-key").status_code == 403

    robot = Client()
    assert predict(robot, body="hi", key=key).status_code == 503  # let in: no replica is up
    rotated = api.post(f"{API}/skills/echo-skill/rotate-key").json()
    new = rotated["api_key"]
    assert new.startswith("sk-") and new != key and rotated["api_key_prefix"] == new[:8]
    assert api.get(f"{API}/skills/echo-skill").json()["api_key"] is None
    assert predict(robot, body="hi", key=key).status_code == 401  # the old one: at once
    assert predict(robot, body="hi", key=new).status_code == 503
    assert predict(robot, body="hi", key=Skill.objects.get().api_key_digest).status_code == 401


FILES = """\
class Main:
    def __init__(self):
        pass

    def predict(self, input):
        if isinstance(input, list):
            return {"files": [len(f) for f in input], "first": input[0][:3].decode()}
        return {"type": type(input).__name__, "size": len(input), "head": list(input[:2])}
"""


def test_file_and_files_inputs(api, skill_host, echo, sandboxed):
    echo(main=FILES, name="scanner", input_type="file")
    deploy(api, name="scan", package="scanner")
    echo(main=FILES, name="batch", input_type="files")
    deploy(api, name="batch", package="batch")
    wait_available(api, name="scan")
    wait_available(api, name="batch")
    binary = bytes([0, 255, 7]) * 1000
    answer = predict(api, name="scan", body=binary, content_type="application/octet-stream")
    assert answer.json() == {"type": "bytes", "size": 3000, "head": [0, 255]}
    response = api.post(
        f"{API}/skills/batch/predict",
        {"a": upload("a.pdf", content=b"PDF1"), "b": upload("b.pdf", content=b"xy")},
    )
    assert response.json() == {"files": [4, 2], "first": "PDF"}


SLOW = """\
import time


class Main:
    def __init__(self):
        pass

    def predict(self, input):
        time.sleep(float(input))
        return "done"
"""


def test_past_the_call_time_limit_is_504_and_the_skill_still_serves(
    api, skill_host, echo, sandboxed, settings
):
    settings.SKILL_CALL_TIMEOUT_SECONDS = 1
    echo(main=SLOW)
    deploy(api)
    wait_available(api)
    response = predict(api, body="3")
    assert response.status_code == 504 and "within 1 s" in response.json()["detail"]
    settings.SKILL_CALL_TIMEOUT_SECONDS = 30  # the stuck replica was stopped: a new one answers
    wait_until(lambda: predict(api, body="0").content == b"done", 10, "no replica after it")


def test_a_call_slower_than_5_s_waits_for_the_skill_time_limit(
    api, skill_host, echo, sandboxed, settings
):
    """redis-py's reads give up after 5 s by default: a call that takes 6 s, under a 10 s
    limit, must be answered, not cut short by the client library as a 500."""
    settings.SKILL_CALL_TIMEOUT_SECONDS = 10
    echo(main=SLOW)
    deploy(api)
    wait_available(api)
    api.raise_request_exception = False  # a 500 is an answer here, not the test's exception
    began = time.monotonic()
    response = predict(api, body="6")
    assert (response.status_code, response.content) == (200, b"done")
    assert 6 <= time.monotonic() - began < 10


def test_calls_answer_503_while_redis_is_away(api, echo, settings):
    echo()
    key = deploy(api)["api_key"]
    Skill.objects.filter(name="echo-skill").update(status=Skill.AVAILABLE)
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    robot = Client(raise_request_exception=False)
    api.raise_request_exception = False
    for response in (predict(api, body="hi"), predict(robot, body="hi", key=key)):
        assert response.status_code == 503, response.content[:2000]
        assert response["Content-Type"] == "application/json" and response["Retry-After"]
        assert "can't reach Redis" in response.json()["detail"]


def test_an_input_over_the_limit_is_413(api, echo, settings):
    settings.SKILL_MOST_INPUT_BYTES = 100
    echo()
    deploy(api)
    response = predict(api, body="x" * 101)
    assert response.status_code == 413 and "larger than" in response.json()["detail"]


def test_no_key_no_session_no_call(api, echo):
    echo()
    deploy(api)
    response = predict(Client(), body="hi")
    assert response.status_code == 401

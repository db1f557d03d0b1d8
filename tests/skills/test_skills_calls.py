"""Deploy → Available → call: a real skill host, real sandboxed replicas, real Redis."""

import pytest
from django.test import Client

from skills.models import Skill
from tests.conftest import wait_until
from tests.skills.conftest import API, deploy, predict, wait_available

pytestmark = pytest.mark.django_db(transaction=True)


def test_deploy_then_call_with_json(api, skill_host, echo, sandboxed):
    echo()
    created = deploy(api)
    assert created["status"] == "deploying" and created["api_key"].startswith("sk-")
    skill = wait_available(api)
    assert skill["serving_version"] == "1.0" and skill["replicas_up"] == 1
    (version,) = api.get(f"{API}/packages/echo").json()["versions"]
    assert version["environment"]["status"] == "ready"  # its page says what serves it
    response = predict(api, body='{"invoice": 12}')
    assert response.status_code == 200, response.content
    assert response.content == b'{"invoice": 12}'  # the body text, returned as a str
    assert response["Content-Type"].startswith("text/plain")
    whoami = predict(api, body="whoami").json()
    assert whoami["version"] == "?" and whoami["uid"] != 0


def test_predict_raising_is_a_422_and_the_replica_keeps_serving(api, skill_host, echo, sandboxed):
    echo()
    deploy(api)
    wait_available(api)
    response = predict(api, body="raise")
    assert response.status_code == 422
    assert response.json()["detail"] == "ValueError: no such invoice: raise"
    assert predict(api, body="again").content == b"again"


def test_the_api_key_opens_predict_only(api, skill_host, echo, sandboxed):
    echo()
    key = deploy(api)["api_key"]
    wait_available(api)
    robot = Client()
    assert predict(robot, body="hi", key=key).content == b"hi"
    assert predict(robot, body="hi", key="sk-wrong").status_code == 401
    assert predict(robot, body="hi").status_code == 401
    assert robot.get(f"{API}/skills/echo-skill", headers={"X-API-Key": key}).status_code == 401
    rotated = api.post_json(f"{API}/skills/echo-skill/rotate-key", {}).json()["api_key"]
    assert rotated != key
    assert predict(robot, body="hi", key=key).status_code == 401
    assert predict(robot, body="hi", key=rotated).content == b"hi"


def test_undeployed_answers_503(api, skill_host, echo, sandboxed):
    echo()
    deploy(api)
    wait_available(api)
    api.post_json(f"{API}/skills/echo-skill/undeploy", {})
    response = predict(api, body="hi")
    assert response.status_code == 503 and response["Retry-After"]


def test_calls_are_counted_with_their_latency_and_inputs_kept_only_if_asked(
    api, skill_host, echo, sandboxed, project
):
    echo()
    deploy(api)
    wait_available(api)
    for body in ("a", "b", "raise"):
        predict(api, body=body)

    def counted():
        return api.get(f"{API}/skills/echo-skill").json()["last_hour"]["calls"] == 3

    wait_until(counted, 10, "the calls were never counted")
    last_hour = api.get(f"{API}/skills/echo-skill").json()["last_hour"]
    assert last_hour["errors"] == 1 and 0 < last_hour["p50_ms"] <= 1000
    skill = Skill.objects.get()
    assert sorted(skill.calls.values_list("status", "input")) == [(200, ""), (200, ""), (422, "")]
    project.keep_skill_inputs = True
    project.save()
    predict(api, body='{"invoice": 7}')
    wait_until(lambda: skill.calls.count() == 4, 10, "the fourth call was never recorded")
    assert skill.calls.order_by("-time").first().input == '{"invoice": 7}'

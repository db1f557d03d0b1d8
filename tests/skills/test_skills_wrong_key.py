"""A call with a wrong X-API-Key answers 401 saying so, not 403 about CSRF: robots and apps
send no CSRF token, and the test client's default (no CSRF checks) would hide that."""

from django.test import Client

from tests.skills.conftest import API, deploy, predict


def test_a_wrong_key_is_401_whether_the_skill_exists_or_not(api, echo):
    echo()
    key = deploy(api)["api_key"]
    robot = Client(enforce_csrf_checks=True)
    for name in ("echo-skill", "no-such-skill"):
        response = predict(robot, name=name, body='"hi"', key=key[:-2] + "xx")
        assert response.status_code == 401, response.content
        assert response.json()["detail"] == (
            f"This X-API-Key does not open skill '{name}': copy the skill's current key "
            "(rotating it stops the old one)."
        )
    no_key = predict(robot, body='"hi"')
    assert no_key.status_code == 401
    assert no_key.json()["detail"].startswith("Authentication required")
    # the right key gets past authentication (no replica runs here: 503)
    assert predict(robot, body='"hi"', key=key).status_code == 503
    # a key of one skill opens nothing else of the project
    assert robot.get(f"{API}/skills/echo-skill", headers={"X-API-Key": key}).status_code == 401

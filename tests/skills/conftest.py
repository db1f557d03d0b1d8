"""Fixtures of the ML Skills tests: real skill hosts (`manage.py skillhost` processes on the
test database and the real Redis), packages to deploy, calls through the API."""

import os

import pytest

from sandbox import sandbox
from skills import channel
from skills.models import Skill, SkillHost
from tests.conftest import requires, start_manage, stop, upload, wait_until
from tests.factories import package_zip

API = "/api/v1/projects/alpha"

ECHO = """\
import os, time


class Main:
    def __init__(self):
        self.version = open("version.txt").read().strip() if os.path.exists("version.txt") else "?"
        time.sleep(float(os.environ.get("load_seconds", "0")))

    def predict(self, input):
        if input == "raise":
            raise ValueError("no such invoice: raise")
        if input == "crash":
            os._exit(3)
        if input == "whoami":
            return {"pid": os.getpid(), "version": self.version, "uid": os.getuid()}
        return input
"""


@pytest.fixture
def api(api_as, bob):
    return api_as(bob)


@pytest.fixture
def sandboxed():
    requires(sandbox.status().enabled, f"no sandbox here: {sandbox.status().problem}")


def redis_forget_skills():
    """No ready replica or queued call of an earlier test's skill (ids are reused)."""
    client = channel.connection()
    keys = list(client.scan_iter(f"{channel.PREFIX}:*"))
    if keys:
        client.delete(*keys)


@pytest.fixture(autouse=True)
def _skills_redis_clean():
    redis_forget_skills()


def start_skill_host(*, gpu=False, env=None):
    process = start_manage(
        ["skillhost", *(["--gpu"] if gpu else [])], log="skillhost", env=env, new_session=True
    )
    log_path = process.log_path
    before = set(SkillHost.objects.values_list("name", flat=True))

    def started():
        if process.poll() is not None:
            raise RuntimeError(f"skillhost exited:\n{log_path.read_text()[-3000:]}")
        return set(SkillHost.objects.values_list("name", flat=True)) - before

    wait_until(started, 30, "the skill host did not start")
    return process


@pytest.fixture
def skill_host(transactional_db):
    process = start_skill_host()
    yield process
    stop(process)
    if os.environ.get("AICENTER_TEST_SHOW_LOGS"):
        print(process.log_path.read_text())


@pytest.fixture
def echo(api):
    """The package `echo` (1.0), whose predict answers its input."""

    def make(main=ECHO, name="echo", input_type="json", **files):
        content = package_zip(**{"main.py": main, **files})
        response = api.post(
            f"{API}/packages",
            {"name": name, "file": upload(content=content), "input_type": input_type},
        )
        assert response.status_code == 201, response.content
        return name

    return make


def deploy(api, name="echo-skill", package="echo", version="1.0", **fields):
    payload = {"name": name, "package": package, "version": version, **fields}
    response = api.post_json(f"{API}/skills", payload)
    assert response.status_code == 201, response.content
    return response.json()


def wait_available(api, name="echo-skill", timeout=60, status="available"):
    def ready():
        skill = api.get(f"{API}/skills/{name}").json()
        return skill["status"] == status and (status != "available" or skill["replicas_up"] >= 1)

    try:
        wait_until(ready, timeout, f"skill {name} never became {status}")
    except AssertionError:
        print(api.get(f"{API}/skills/{name}").json())
        raise
    return api.get(f"{API}/skills/{name}").json()


def predict(client, name="echo-skill", body="hello", *, key=None, content_type="application/json"):
    return client.post(
        f"{API}/skills/{name}/predict",
        body,
        content_type=content_type,
        headers={"X-API-Key": key} if key else {},
    )


def skill_of(name="echo-skill"):
    return Skill.objects.get(name=name)

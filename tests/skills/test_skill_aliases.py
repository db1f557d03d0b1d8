"""Skills and version aliases: a skill deployed with an alias's name gets the version it points
at, once; a skill that follows an alias updates when the alias moves (on a real skill host,
in the sandbox, answering from the new version), keeps its version when the alias goes, and
stops following when a version is chosen by hand. Inputs that can't be are refused field by
field."""

import json
import time

import pytest

from core.models import Event
from packages.models import PackageVersion
from skills.models import Skill
from skills.transitions import follow_alias
from tests.conftest import upload, wait_until
from tests.factories import package_zip
from tests.skills.conftest import API, ECHO, deploy, predict, skill_of, wait_available

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def versions(api, echo):
    """echo 1.0 and 2.0, whose replicas say "one" and "two"; the alias champion on 1.0."""
    echo(**{"version.txt": "one"})
    content = package_zip(**{"main.py": ECHO, "version.txt": "two"})
    response = api.post(f"{API}/packages/echo/versions", {"file": upload(content=content)})
    assert response.status_code == 201, response.content
    move(api, "champion", "1.0")


def move(api, alias, version):
    response = api.put(
        f"{API}/packages/echo/aliases/{alias}",
        json.dumps({"version": version}),
        content_type="application/json",
    )
    assert response.status_code == 200, response.content


def updates(*actions):
    """The skill's ML Logs of these actions ("updated": now serving another version)."""
    actions = actions or ("updated",)
    events = Event.objects.filter(category="skill", action__in=actions).order_by("id")
    return [(e.actor_name, e.message, e.data) for e in events]


def test_an_alias_named_as_the_version_is_its_version_once(api, versions):
    skill = deploy(api, version="champion")
    assert (skill["version"], skill["alias"]) == ("1.0", None)
    move(api, "champion", "2.0")
    follow_alias(skill_of())  # what a skill host's tick does: nothing, it follows none
    assert skill_of().version.number == "1.0"


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"alias": "staging"}, "alias", "Package echo has no alias 'staging' (it has: 2.0, 1.0;"),
        ({"alias": "1x"}, "alias", "'1x' is not an alias's name"),
        ({"version": "staging"}, "version", "(it has: 2.0, 1.0; aliases: champion)"),
        ({"alias": "champion", "auto_update": True}, "alias", "either the newest version"),
        ({"alias": "champion", "version": "2.0"}, "version", "Alias champion points at 1.0"),
    ],
)  # fmt: skip
def test_impossible_choices_are_refused_field_by_field(api, versions, fields, field, message):
    body = {"name": "echo-skill", "package": "echo", "version": None, **fields}
    response = api.post_json(f"{API}/skills", body)
    assert response.status_code == 400, response.content
    assert message in " ".join(response.json()["errors"][field])
    assert not Skill.objects.exists()


def test_changing_what_a_skill_follows(api, versions):
    deploy(api, version=None, alias="champion")
    url = f"{API}/skills/echo-skill"
    response = api.patch_json(url, {"auto_update": True})
    assert response.status_code == 400
    assert "not both" in response.json()["errors"]["alias"][0]
    assert api.patch_json(url, {"alias": "", "auto_update": True}).json()["alias"] is None
    skill = api.patch_json(url, {"alias": "champion", "auto_update": False}).json()
    assert (skill["alias"], skill["auto_update"], skill["version"]) == ("champion", False, "1.0")
    # a version chosen by hand: the alias no longer decides
    skill = api.patch_json(url, {"version": "2.0"}).json()
    assert (skill["alias"], skill["version"]) == (None, "2.0")
    messages = [message for _, message, _ in updates("changed", "update_requested")]
    assert messages == [
        "auto-update on, follows no alias",
        "auto-update off, follows alias champion",
        "1.0 → 2.0, follows no alias",
    ]


def test_a_tick_moves_a_follower_once_and_never_to_a_version_that_failed(api, versions):
    deploy(api, version=None, alias="champion")
    move(api, "champion", "2.0")
    stale = skill_of()
    for _ in range(2):  # two hosts' ticks, with the skill as each read it before
        follow_alias(stale)
    assert skill_of().version.number == "2.0"
    assert updates("changed", "update_requested") == [  # not serving yet: a deployment
        (
            "system",
            "1.0 → 2.0 (alias champion moved)",
            {"from": "1.0", "to": "2.0", "auto": True, "alias": "champion"},
        )
    ]
    # 2.0 failed to load: the skill went back to 1.0 and does not take 2.0 again
    two = PackageVersion.objects.get(major=2)
    Skill.objects.update(version=PackageVersion.objects.get(major=1), failed_version=two)
    follow_alias(skill_of())
    assert skill_of().version.number == "1.0"


@pytest.mark.usefixtures("skill_host", "sandboxed")
def test_a_skill_following_an_alias_serves_where_it_moves(api, versions):
    skill = deploy(api, version=None, alias="champion")
    assert (skill["version"], skill["alias"]) == ("1.0", "champion")
    wait_available(api)
    assert predict(api, body="whoami").json()["version"] == "one"

    move(api, "champion", "2.0")

    def serving_two():
        skill = api.get(f"{API}/skills/echo-skill").json()
        return skill["serving_version"] == "2.0" and skill["status"] == "available"

    wait_until(serving_two, 60, "the skill never served 2.0")
    # the old replica may take a last call while it stops
    wait_until(lambda: predict(api, body="whoami").json()["version"] == "two", 10, "still one")
    assert updates()[-1][:2] == ("system", "1.0 → 2.0 (alias champion moved), now serving")

    # the alias goes: the skill keeps what it serves
    assert api.delete(f"{API}/packages/echo/aliases/champion").status_code == 204
    time.sleep(2)  # a few of the host's ticks (two a second)
    assert len(updates()) == 1
    skill = api.get(f"{API}/skills/echo-skill").json()
    assert (skill["version"], skill["alias"], skill["status"]) == ("2.0", "champion", "available")

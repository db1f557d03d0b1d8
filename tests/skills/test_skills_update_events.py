"""What an update of a skill tells ML Logs and webhooks, on a real skill host: asking is
"update_requested"; "updated" (webhook skill.updated) once the new version takes the calls;
a version that can't load is "update_failed" (webhook skill.update_failed), never "updated",
and the old version keeps serving."""

import pytest

from core.models import Event
from tests.conftest import upload, wait_until
from tests.factories import package_zip
from tests.skills.conftest import API, ECHO, deploy, predict, wait_available
from tests.webhooks.conftest import make_webhook
from webhooks.models import Delivery

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("skill_host", "sandboxed"),
]
BROKEN = ECHO.replace(
    "    def __init__(self):\n", "    def __init__(self):\n        import nothing_here\n"
)
SLOW = ECHO.replace('float(os.environ.get("load_seconds", "0"))', "2")


def actions():
    return list(
        Event.objects.filter(category="skill").order_by("id").values_list("action", flat=True)
    )


def webhook_events():
    return sorted(Delivery.objects.values_list("event", flat=True))


def wait_for_webhook(name):
    """Deliveries are made once the event commits, a moment after it is seen."""
    wait_until(lambda: webhook_events(), 10, f"no {name} delivery")
    return webhook_events()


@pytest.fixture
def hooked(project, alice):
    events = ["skill.updated", "skill.update_failed", "skill.failed"]
    return make_webhook(project, alice, "http://127.0.0.1:9/", events=events)


def new_version(api, main):
    content = package_zip(**{"main.py": main, "version.txt": "two"})
    response = api.post(f"{API}/packages/echo/versions", {"file": upload(content=content)})
    assert response.status_code == 201, response.content


def test_updated_is_told_once_the_new_version_serves(api, echo, hooked):
    echo()
    deploy(api)
    wait_available(api)
    new_version(api, SLOW)  # loads for 2 s: long enough to look while it does
    assert api.patch_json(f"{API}/skills/echo-skill", {"version": "2.0"}).status_code == 200
    assert actions() == ["deployed", "update_requested"]
    assert webhook_events() == []  # asked for, not serving yet
    assert predict(api, body="whoami").json()["version"] == "?"

    def serving():
        skill = api.get(f"{API}/skills/echo-skill").json()
        return skill["serving_version"] == "2.0" and skill["status"] == "available"

    wait_until(serving, 60, "2.0 never served")
    assert actions() == ["deployed", "update_requested", "updated"]
    updated = Event.objects.get(action="updated")
    assert updated.data == {"from": "1.0", "to": "2.0", "auto": False}
    assert updated.message == "1.0 → 2.0, now serving"
    assert wait_for_webhook("skill.updated") == ["skill.updated"]
    # the old replica may take one more call before the host's next look stops it
    wait_until(lambda: predict(api, body="whoami").json()["version"] == "two", 5, "not 2.0")


def test_an_update_that_fails_to_load_is_update_failed_and_the_old_one_serves(
    api, echo, hooked, pages_as, bob, settings
):
    echo()
    deploy(api)
    wait_available(api)
    new_version(api, BROKEN)
    api.patch_json(f"{API}/skills/echo-skill", {"version": "2.0"})
    wait_until(lambda: "update_failed" in actions(), 60, "the failed update was never recorded")
    assert actions() == ["deployed", "update_requested", "update_failed"]
    failed = Event.objects.get(action="update_failed")
    assert failed.data["version"] == "2.0" and failed.data["still_serving"] is True
    assert "No module named 'nothing_here'" in failed.data["reason"]
    assert wait_for_webhook("skill.update_failed") == ["skill.update_failed"]
    skill = api.get(f"{API}/skills/echo-skill").json()
    assert (skill["version"], skill["serving_version"], skill["status"]) == (
        "1.0",
        "1.0",
        "available",
    )
    assert predict(api).status_code == 200
    # its traceback, as the skill's page shows it: the package's paths, none of the server's
    assert 'File "main.py", line' in skill["reason"]
    for folder in (settings.DATA_DIR, settings.WORKSPACES_DIR, settings.ENVIRONMENTS_DIR):
        assert str(folder) not in skill["reason"]
    page = pages_as(bob).get("/p/alpha/skills/echo-skill/").content.decode()
    assert "File &quot;main.py&quot;, line" in page and str(settings.DATA_DIR) not in page

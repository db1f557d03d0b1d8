"""The webhooks API: Project admins create, list, change, test and delete webhooks; bad input
is a 400 with each field's message; nobody else sees or changes them; the secret is never
answered back."""

import pytest

from tests.webhooks.conftest import SECRET
from webhooks.models import Delivery, Webhook

API = "/api/v1/projects/alpha/webhooks"


@pytest.fixture
def admin_api(api_as, alice):
    return api_as(alice)


def _create(api, **fields):
    body = {
        "url": "http://127.0.0.1:9/hook",
        "events": ["pipeline.finished", "pipeline.failed"],
        "secret": SECRET,
        **fields,
    }
    return api.post_json(API, body)


def test_it_creates_lists_changes_and_deletes_a_webhook(admin_api, settings):
    settings.PIPELINE_QUEUE_IMMEDIATE = True
    created = _create(admin_api)
    assert created.status_code == 201, created.json()
    hook = created.json()
    assert hook["url"] == "http://127.0.0.1:9/hook"
    assert hook["events"] == ["pipeline.finished", "pipeline.failed"]
    assert hook["active"] is True and hook["secret_set"] is True
    assert hook["created_by"] == "alice" and hook["last_delivery"] is None

    assert [h["id"] for h in admin_api.get(API).json()] == [hook["id"]]
    assert admin_api.get(f"{API}/{hook['id']}").json()["url"] == hook["url"]

    changed = admin_api.patch_json(
        f"{API}/{hook['id']}", {"events": ["version.created"], "active": False}
    )
    assert changed.status_code == 200, changed.json()
    assert changed.json()["events"] == ["version.created"] and not changed.json()["active"]
    assert Webhook.objects.get().secret == SECRET  # not given: kept

    admin_api.patch_json(f"{API}/{hook['id']}", {"secret": "another-secret-of-20"})
    assert Webhook.objects.get().secret == "another-secret-of-20"

    assert admin_api.delete(f"{API}/{hook['id']}").status_code == 204
    assert not Webhook.objects.exists()
    assert admin_api.get(f"{API}/{hook['id']}").status_code == 404


def test_it_queues_a_test_event_and_lists_it_among_the_deliveries(
    admin_api, receiver, settings, django_capture_on_commit_callbacks
):
    settings.PIPELINE_QUEUE_IMMEDIATE = True  # the ping is attempted at once, in this process
    hook = _create(admin_api, url=receiver.url).json()
    with django_capture_on_commit_callbacks(execute=True):  # queued once the request commits
        answer = admin_api.post(f"{API}/{hook['id']}/test")
    assert answer.status_code == 202, answer.json()
    assert answer.json()["event"] == "ping"
    assert receiver.json()["event"] == "ping"
    assert receiver.requests[0]["headers"]["X-AICenter-Delivery"] == answer.json()["id"]

    (delivery,) = admin_api.get(f"{API}/{hook['id']}/deliveries").json()
    assert delivery["status"] == "succeeded" and delivery["attempts"] == 1
    assert delivery["attempt_list"][0]["status_code"] == 200
    assert admin_api.get(API).json()[0]["last_delivery"]["status"] == "succeeded"


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"events": ["pipeline.exploded"]}, "events", "Unknown event: pipeline.exploded"),
        ({"events": []}, "events", "at least one event"),
        ({"url": "ftp://example.com/hook"}, "url", "https:// or http://"),
        ({"url": "example.com/hook"}, "url", "https:// or http://"),
        ({"url": ""}, "url", "A URL is required"),
        ({"url": "http://:80/"}, "url", "no host name"),
        ({"url": "http://u:p@127.0.0.1/"}, "url", "user name or password"),
        ({"url": "http://127.0.0.1/a b"}, "url", "spaces or control characters"),
        ({"url": "http://127.0.0.1/\r\nX-Injected: 1"}, "url", "spaces or control characters"),
        ({"url": "http://127.0.0.1:99999/"}, "url", "not a valid URL"),
        ({"url": "http://no-such-host.invalid/"}, "url", "could not be resolved"),
        ({"secret": "short"}, "secret", "at least 16 characters"),
        ({"secret": "x" * 201}, "secret", "too long"),
    ],
)
def test_it_refuses_bad_input_with_the_fields_message(admin_api, fields, field, words):
    answer = _create(admin_api, **fields)
    assert answer.status_code == 400, answer.json()
    assert list(answer.json()["errors"]) == [field]
    assert words in " ".join(answer.json()["errors"][field])
    assert not Webhook.objects.exists()


def test_it_names_every_bad_field_at_once_and_stores_nothing(admin_api):
    answer = _create(admin_api, url="gopher://x", events=["nope"], secret="short")
    assert answer.status_code == 400
    assert set(answer.json()["errors"]) == {"url", "events", "secret"}
    assert not Webhook.objects.exists()


def test_a_bad_change_leaves_the_webhook_as_it_was(admin_api):
    hook = _create(admin_api).json()
    answer = admin_api.patch_json(f"{API}/{hook['id']}", {"events": [], "secret": "short"})
    assert answer.status_code == 400
    assert set(answer.json()["errors"]) == {"events", "secret"}
    webhook = Webhook.objects.get()
    assert webhook.events == ["pipeline.finished", "pipeline.failed"] and webhook.secret == SECRET


@pytest.mark.parametrize(
    "body",
    [
        {"url": "http://127.0.0.1/", "events": "pipeline.finished", "secret": SECRET},
        {"url": "http://127.0.0.1/", "events": ["pipeline.finished"]},
        {"url": 5, "events": ["pipeline.finished"], "secret": SECRET},
    ],
)
def test_it_refuses_a_body_of_the_wrong_shape(admin_api, body):
    answer = admin_api.post_json(API, body)
    assert answer.status_code == 422
    assert answer.json()["errors"]
    assert not Webhook.objects.exists()


def test_the_secret_is_never_answered_back(
    admin_api, receiver, settings, django_capture_on_commit_callbacks
):
    settings.PIPELINE_QUEUE_IMMEDIATE = True
    hook = _create(admin_api, url=receiver.url).json()
    with django_capture_on_commit_callbacks(execute=True):
        admin_api.post(f"{API}/{hook['id']}/test")
    answers = [
        admin_api.get(API),
        admin_api.get(f"{API}/{hook['id']}"),
        admin_api.patch_json(f"{API}/{hook['id']}", {"active": True}),
        admin_api.post(f"{API}/{hook['id']}/test"),
        admin_api.get(f"{API}/{hook['id']}/deliveries"),
        _create(admin_api, url=receiver.url),
    ]
    for answer in answers:
        assert answer.status_code < 300
        assert SECRET not in answer.content.decode()
    # nor sent: the receiver only gets the signature made with it
    assert SECRET.encode() not in receiver.requests[0]["body"]


@pytest.mark.parametrize("who", ["bob", "vera"])
def test_members_who_are_not_project_admins_can_neither_see_nor_change_webhooks(
    request, api_as, alice, who
):
    hook = _create(api_as(alice)).json()
    api = api_as(request.getfixturevalue(who))
    assert api.get(API).status_code == 403
    assert api.get(f"{API}/{hook['id']}").status_code == 403
    assert api.get(f"{API}/{hook['id']}/deliveries").status_code == 403
    assert _create(api).status_code == 403
    assert api.patch_json(f"{API}/{hook['id']}", {"active": False}).status_code == 403
    assert api.post(f"{API}/{hook['id']}/test").status_code == 403
    assert api.delete(f"{API}/{hook['id']}").status_code == 403
    assert Webhook.objects.get().active and Webhook.objects.count() == 1
    assert not Delivery.objects.exists()


def test_an_outsider_learns_nothing(api_as, alice, charlie):
    hook = _create(api_as(alice)).json()
    api = api_as(charlie)
    for answer in [
        api.get(API),
        api.get(f"{API}/{hook['id']}"),
        api.get(f"{API}/{hook['id']}/deliveries"),
        _create(api),
        api.patch_json(f"{API}/{hook['id']}", {"active": False}),
        api.post(f"{API}/{hook['id']}/test"),
        api.delete(f"{API}/{hook['id']}"),
    ]:
        assert answer.status_code == 404
        assert "127.0.0.1" not in answer.content.decode()
    assert Webhook.objects.get().active


def test_a_webhook_of_another_project_is_not_found(api_as, alice, django_user_model):
    from core.models import Membership, Project

    beta = Project.objects.create(slug="beta", name="Beta")
    Membership.objects.create(project=beta, user=alice, role=Membership.ADMIN)
    hook = _create(api_as(alice)).json()
    answer = api_as(alice).get(f"/api/v1/projects/beta/webhooks/{hook['id']}")
    assert answer.status_code == 404

"""The services themselves: only a Project admin manages webhooks, whoever calls them; and
what a delivery says of a skill and a dataset (the API's own shape, without the skill's
key)."""

import json

import pytest
from django.core.exceptions import PermissionDenied

from core.events import record
from skills.services import skill_create
from tests.conftest import classifier_and_invoices
from tests.webhooks.conftest import SECRET, make_webhook
from webhooks.models import Delivery, Webhook
from webhooks.payloads import delivery_body
from webhooks.services import (
    webhook_create,
    webhook_delete,
    webhook_send_test,
    webhook_update,
)


@pytest.mark.parametrize("who", ["bob", "vera", "charlie"])
def test_only_a_project_admin_manages_webhooks(request, project, alice, who):
    from core.models import Project

    user = request.getfixturevalue(who)
    webhook = make_webhook(project, alice, "http://127.0.0.1:9/")
    fresh = Project.objects.get(pk=project.pk)  # no role cached for anyone
    webhook.project = fresh
    writes = [
        lambda: webhook_create(
            user=user,
            project=fresh,
            url="http://127.0.0.1:9/x",
            events=["pipeline.failed"],
            secret=SECRET,
        ),
        lambda: webhook_update(user=user, webhook=webhook, active=False),
        lambda: webhook_send_test(user=user, webhook=webhook),
        lambda: webhook_delete(user=user, webhook=webhook),
    ]
    for write in writes:
        with pytest.raises(PermissionDenied):
            write()
    assert list(Webhook.objects.values_list("url", "active")) == [("http://127.0.0.1:9/", True)]
    assert not Delivery.objects.exists()


def test_a_superuser_may(project, alice, django_user_model):
    root = django_user_model.objects.create_superuser("root", "r@example.com", "pw")
    webhook = make_webhook(project, root, "http://127.0.0.1:9/")
    webhook_update(user=root, webhook=webhook, active=False)
    assert not Webhook.objects.get().active


def _body(project, alice, event):
    webhook = make_webhook(project, alice, "http://127.0.0.1:9/", events=["skill.updated"])
    delivery = Delivery.objects.create(webhook=webhook, event="x", event_id=event.pk)
    return json.loads(delivery_body(delivery, event))


def test_a_skill_is_sent_as_the_api_shows_it_without_its_key(project, alice, api_as):
    classifier_and_invoices(project, alice)
    skill = skill_create(
        user=alice, project=project, name="invoices", package="classifier", version="1.0"
    )
    event = record(
        project=project,
        category="skill",
        action="updated",
        object_type="skill",
        object_key="invoices",
        data={"from": "1.0", "to": "1.0", "auto": False},
    )
    data = _body(project, alice, event)["data"]
    shown = api_as(alice).get("/api/v1/projects/alpha/skills/invoices").json()
    assert shown.pop("api_key") is None  # shown once, in the create answer
    assert skill.api_key not in json.dumps(data) and "api_key" not in data
    assert data.pop("url").endswith("/api/v1/projects/alpha/skills/invoices/predict")
    shown.pop("url")
    assert data == shown


def test_a_dataset_is_sent_as_the_api_shows_it(project, alice, api_as):
    classifier_and_invoices(project, alice)
    event = record(
        project=project,
        category="dataset",
        action="files_uploaded",
        object_type="dataset",
        object_key="invoices",
        data={"count": 1, "bytes": 4},
    )
    body = _body(project, alice, event)
    assert body["data"] == api_as(alice).get("/api/v1/projects/alpha/datasets/invoices").json()
    assert body["project"] == "alpha"


def test_an_object_deleted_since_is_sent_as_the_event_remembers_it(project, alice):
    event = record(
        project=project,
        category="dataset",
        action="files_deleted",
        object_type="dataset",
        object_key="gone",
        object_name="gone",
        data={"path": "a.csv"},
    )
    assert _body(project, alice, event)["data"] == {
        "type": "dataset",
        "key": "gone",
        "name": "gone",
        "deleted": True,
    }

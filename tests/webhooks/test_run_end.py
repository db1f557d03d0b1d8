"""End to end: a real run fails on the session's real worker (manage.py rqworker); the
worker's own "finished" event makes the webhook delivery, signed, to a receiver on loopback,
and the e-mail to the run's creator (the worker's mail lands in files: the test settings'
filebased backend, EMAIL_FILE_PATH).

It relies on the runner recording the ML Logs "pipeline finished" event (the ML Logs events
work of issue 14, branch `events`): without it, it is skipped, saying so."""

import email
import io
import json
from email import policy

import pytest
from django.conf import settings

from core.models import Event
from datasets.services import dataset_create, dataset_file_put
from packages.services import package_create
from tests.conftest import classifier_run, upload, wait_for, wait_until
from tests.factories import TRAIN_PY
from tests.webhooks.conftest import make_webhook
from tests.webhooks.test_delivery import verified
from webhooks.models import Delivery
from webhooks.services import run_mail_preference_set

pytestmark = pytest.mark.django_db(transaction=True)

RAISING_TRAIN_PY = TRAIN_PY.replace(
    "self.files = sorted(", "raise KeyError('label column missing')\n        self.files = sorted("
)


def _mails_about(run):
    folder = settings.EMAIL_FILE_PATH
    if not folder.exists():
        return []
    texts = [path.read_text() for path in folder.iterdir()]
    return [text for text in texts if f"Pipeline {run.pk} (" in text]


def test_a_failed_run_reaches_the_webhook_and_its_creators_inbox(
    project, alice, api_as, receiver, worker
):
    alice.email = "alice@example.com"
    alice.save()
    run_mail_preference_set(user=alice, runs="failed")
    package_create(
        project=project,
        user=alice,
        name="classifier",
        file=upload(**{"train.py": RAISING_TRAIN_PY}),
    )
    dataset = dataset_create(project=project, user=alice, name="invoices")
    dataset_file_put(user=alice, dataset=dataset, path="a.csv", fileobj=io.BytesIO(b"1,2\n"))
    webhook = make_webhook(project, alice, receiver.url, events=["pipeline.failed"])

    run = wait_for(classifier_run(project, alice))
    assert run.status == "failed", run.failure_reason
    if not Event.objects.filter(category="pipeline", action="finished", object_key=run.pk):
        pytest.skip("the runner records no 'pipeline finished' event on this branch yet")

    # made once the worker's "finished" event commits, a moment after the run shows Failed
    wait_until(lambda: Delivery.objects.filter(webhook=webhook).exists(), 30, "no delivery")
    delivery = Delivery.objects.get(webhook=webhook)
    wait_until(
        lambda: Delivery.objects.get(pk=delivery.pk).status != "pending", 30, "not delivered"
    )
    delivery.refresh_from_db()
    assert delivery.status == "succeeded", delivery.last_error
    (got,) = receiver.requests
    assert got["headers"]["X-AICenter-Event"] == "pipeline.failed"
    assert verified(got)
    data = json.loads(got["body"])["data"]
    assert data == api_as(alice).get(f"/api/v1/projects/alpha/pipelines/{run.pk}").json()
    assert data["status"] == "failed" and "label column missing" in data["failure_reason"]

    wait_until(lambda: _mails_about(run), 30, "the worker sent no e-mail")
    (text,) = _mails_about(run)
    message = email.message_from_string(text.split("\n" + "-" * 79)[0], policy=policy.default)
    assert message["To"] == "alice@example.com"
    subject = message["Subject"].strip()
    assert subject == f"[AI Center] Pipeline {run.pk} ({run.name}) failed · Alpha"
    assert "label column missing" in message.get_content()

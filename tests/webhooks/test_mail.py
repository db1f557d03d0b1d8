"""E-mail when a run ends, for those who asked on /account/notifications/: the run's creator
gets it, sent through Django's mail backend (the locmem outbox here)."""

import re

import pytest
from django.core import mail

from core.events import record
from tests.conftest import classifier_and_invoices, classifier_run
from tests.webhooks.conftest import finished_event
from webhooks.models import RunMailPreference
from webhooks.services import run_mail_preference_set

PAGE = "/account/notifications/"


@pytest.fixture
def run(project, alice, runs_stay_here):
    alice.email = "alice@example.com"
    alice.save()
    classifier_and_invoices(project, alice)
    return classifier_run(project, alice)


def _end(run, status, capture, reason=""):
    run.status = status
    run.failure_reason = reason
    run.save()
    with capture(execute=True):
        if status == "killed":  # the ML Logs' event of a kill (by a person)
            record(
                project=run.project,
                category="pipeline",
                action="killed",
                object_key=run.pk,
                data={"status": "killed"},
            )
        else:
            finished_event(run.project, run_id=run.pk, status=status)


@pytest.fixture
def immediate(settings):
    settings.PIPELINE_QUEUE_IMMEDIATE = True


def test_a_failed_run_e_mails_its_creator_who_asked_for_failures(
    run, alice, immediate, django_capture_on_commit_callbacks
):
    run_mail_preference_set(user=alice, runs="failed")
    _end(run, "failed", django_capture_on_commit_callbacks, reason="train() raised KeyError")
    (message,) = mail.outbox
    assert message.to == ["alice@example.com"]
    assert message.subject == f"[AI Center] Pipeline {run.pk} ({run.name}) failed · Alpha"
    assert "train() raised KeyError" in message.body
    assert f"http://localhost:8000/p/alpha/pipelines/{run.pk}/" in message.body


@pytest.mark.parametrize(
    ("preference", "status", "sent"),
    [
        ("never", "failed", False),
        ("failed", "successful", False),
        ("failed", "failed", True),
        ("finished", "successful", True),
        ("finished", "killed", True),
        ("finished", "failed", True),
    ],
)
def test_who_gets_what(
    run, alice, immediate, django_capture_on_commit_callbacks, preference, status, sent
):
    run_mail_preference_set(user=alice, runs=preference)
    _end(run, status, django_capture_on_commit_callbacks)
    assert len(mail.outbox) == (1 if sent else 0)


def test_nobody_asked_nobody_is_mailed(run, immediate, django_capture_on_commit_callbacks):
    _end(run, "failed", django_capture_on_commit_callbacks)  # the default: never
    assert mail.outbox == []


def test_only_the_runs_creator_is_mailed(run, bob, immediate, django_capture_on_commit_callbacks):
    bob.email = "bob@example.com"
    bob.save()
    run_mail_preference_set(user=bob, runs="finished")
    _end(run, "failed", django_capture_on_commit_callbacks)
    assert mail.outbox == []


def test_no_address_no_mail(run, alice, immediate, django_capture_on_commit_callbacks):
    alice.email = ""
    alice.save()
    run_mail_preference_set(user=alice, runs="finished")
    _end(run, "failed", django_capture_on_commit_callbacks)
    assert mail.outbox == []


def test_the_preference_page(pages_as, alice):
    client = pages_as(alice)
    page = client.get(PAGE).content.decode()
    assert "no e-mail address" in page
    assert _checked(page) == "never"  # the default
    assert client.post(PAGE, {"runs": "failed"}).status_code == 302
    assert RunMailPreference.objects.get(user=alice).runs == "failed"
    assert _checked(client.get(PAGE).content.decode()) == "failed"


def _checked(page):
    (value,) = re.findall(r'<input type="radio" name="runs" value="(\w+)"[^>]* checked', page)
    return value


@pytest.mark.parametrize(("value", "words"), [("sometimes", "is not a choice"), ("", "Choose")])
def test_the_preference_page_refuses_what_is_not_a_choice(pages_as, alice, value, words):
    answer = pages_as(alice).post(PAGE, {"runs": value})
    assert answer.status_code == 400
    assert words in answer.content.decode()
    assert not RunMailPreference.objects.exists()


def test_the_top_bar_links_to_it(pages_as, alice):
    assert f'href="{PAGE}"' in pages_as(alice).get("/").content.decode()


def test_the_page_needs_a_login(client):
    assert client.get(PAGE).url.startswith("/login/")

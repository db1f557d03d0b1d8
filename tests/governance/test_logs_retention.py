"""ML Logs retention (the sweeper deletes events past AICENTER_LOG_RETENTION_DAYS), the read-only
admin, and events that are never changed."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from core.models import Event
from governance import retention
from pipelines.sweeper import sweep
from tests.governance.test_logs_page import event


def aged(project, days, message):
    """An event `days` old (dated back in the database: record() always stamps now)."""
    made = event(project, None, message=message)
    Event.objects.filter(pk=made.pk).update(time=timezone.now() - timedelta(days=days))
    return made


@pytest.fixture
def fresh_sweeper(monkeypatch):
    """This process has not looked for expired events yet (it does so once an hour)."""
    monkeypatch.setattr(retention, "_next_at", 0.0)


@pytest.mark.usefixtures("fresh_sweeper")
def test_the_sweep_deletes_events_past_the_retention(project, settings):
    settings.LOG_RETENTION_DAYS = 30
    aged(project, 31, "expired")
    aged(project, 29, "kept")
    event(project, None, message="new")
    sweep()
    assert sorted(Event.objects.values_list("message", flat=True)) == ["kept", "new"]


@pytest.mark.usefixtures("fresh_sweeper")
def test_it_looks_once_an_hour_per_process(project, settings):
    settings.LOG_RETENTION_DAYS = 30
    sweep()
    aged(project, 40, "expired after the sweep looked")
    sweep()  # within the hour: not looked at again
    assert Event.objects.count() == 1
    retention._next_at = 0.0  # the hour has passed
    sweep()
    assert Event.objects.count() == 0


@pytest.mark.usefixtures("fresh_sweeper")
def test_a_backlog_goes_in_batches_over_the_next_sweeps(project, settings, monkeypatch):
    settings.LOG_RETENTION_DAYS = 1
    monkeypatch.setattr(retention, "BATCH", 2)
    monkeypatch.setattr(retention, "MOST_BATCHES", 2)
    for number in range(7):
        aged(project, 5, f"old {number}")
    event(project, None, message="today")
    assert retention.events_expire_hourly() == 4  # two batches of two: the sweep stays short
    assert retention.events_expire_hourly() == 3  # the next sweep goes on at once
    assert retention.events_expire_hourly() == 0  # done: not before an hour from now
    assert list(Event.objects.values_list("message", flat=True)) == ["today"]


@pytest.mark.usefixtures("fresh_sweeper")
def test_zero_keeps_events_forever(project, settings):
    settings.LOG_RETENTION_DAYS = 0
    aged(project, 5000, "ancient")
    sweep()
    assert Event.objects.count() == 1


def test_the_default_is_a_year(settings):
    from aicenter import settings as app_settings

    assert app_settings.LOG_RETENTION_DAYS == 365


def test_an_event_is_never_changed(project):
    made = event(project, None, message="as it happened")
    made.message = "rewritten"
    with pytest.raises(ValueError, match="append-only"):
        made.save()
    again = Event.objects.get(pk=made.pk)
    with pytest.raises(ValueError, match="append-only"):
        again.save()
    assert Event.objects.get().message == "as it happened"


def test_the_admin_shows_events_and_changes_none(client, django_user_model, project):
    made = event(project, None, message="seen in the admin")
    client.force_login(django_user_model.objects.create_superuser("root", "", "pw"))
    listing = client.get(reverse("admin:aicenter_event_changelist"))
    assert listing.status_code == 200 and "Pipeline 1" in listing.content.decode()
    assert reverse("admin:aicenter_event_add") not in listing.content.decode()
    assert client.get(reverse("admin:aicenter_event_add")).status_code == 403
    change = reverse("admin:aicenter_event_change", args=[made.pk])
    assert client.get(change).status_code == 200  # viewed, read-only
    assert client.post(change, {"message": "forged"}).status_code == 403
    delete = reverse("admin:aicenter_event_delete", args=[made.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    assert Event.objects.get().message == "seen in the admin"

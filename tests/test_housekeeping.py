"""The house's wiring: apps register their housekeeping chores and hear ML Logs events as they
start, so nothing on a lower floor names them."""

import pytest

from core import housekeeping
from core.events import event_recorded, record
from pipelines import sweeper

pytestmark = pytest.mark.django_db


def test_each_app_registers_its_chores():
    assert {"storage_reclaim", "events_expire", "deliveries_requeue_lost"} <= set(
        housekeeping.chores()
    )


def test_the_sweep_runs_every_registered_chore(monkeypatch):
    ran = []
    monkeypatch.setattr(housekeeping, "_chores", {"test": lambda: ran.append("test")})
    sweeper.sweep()
    assert ran == ["test"]


def test_a_committed_event_is_heard_by_its_listeners(project, django_capture_on_commit_callbacks):
    heard = []

    def listener(sender, event, **kwargs):
        heard.append(event)

    event_recorded.connect(listener)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            event = record(project=project, category="dataset", action="created")
            assert heard == []  # not before the commit
        assert heard == [event]
    finally:
        event_recorded.disconnect(listener)

"""The create form's 'When to run', the recurring pipelines page, Kill and Retry buttons,
through the test client (no workers: runs stay queued)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from pipelines.models import PipelineRun, Schedule
from tests.conftest import classifier_and_invoices

HTMX = {"HX-Request": "true"}
FORM = {
    "type": "train",
    "package": "classifier",
    "major": "1",
    "minor": "0",
    "dataset": "invoices",
    "param_name": ["artifacts_directory"],
    "param_value": ["artifacts"],
}


@pytest.fixture
def bobs(pages_as, bob, project):
    classifier_and_invoices(project, bob)
    return pages_as(bob)


def test_choosing_when_to_run_shows_its_fields(bobs):
    at = bobs.get("/p/alpha/pipelines/new/", {**FORM, "when": "at"}, headers=HTMX).content
    assert b'name="at"' in at and b'name="timezone"' in at and b'name="every"' not in at
    recurring = bobs.get(
        "/p/alpha/pipelines/new/", {**FORM, "when": "recurring"}, headers=HTMX
    ).content
    assert b'name="every"' in recurring and b'name="cron"' in recurring


def test_a_run_at_a_given_time_in_a_time_zone(bobs):
    local = (timezone.now() + timedelta(days=1)).astimezone(
        __import__("zoneinfo").ZoneInfo("Asia/Tokyo")
    )
    response = bobs.post(
        "/p/alpha/pipelines/new/",
        {
            **FORM,
            "when": "at",
            "timezone": "Asia/Tokyo",
            "at": local.strftime("%Y-%m-%dT%H:%M"),
        },
    )
    run = PipelineRun.objects.get()
    assert response.status_code == 302
    assert run.status == "scheduled"
    assert abs((run.scheduled_for - local.replace(second=0, microsecond=0)).total_seconds()) < 1
    page = bobs.get(f"/p/alpha/pipelines/{run.pk}/").content.decode()
    assert "Scheduled" in page and "Kill" in page


def test_a_recurring_pipeline_through_the_form_then_edited_paused_and_deleted(bobs):
    response = bobs.post(
        "/p/alpha/pipelines/new/",
        {
            **FORM,
            "name": "nightly",
            "when": "recurring",
            "every": "6",
            "unit": "hours",
            "timezone": "Europe/Paris",
            "time_limit": "30",
        },
    )
    assert response.status_code == 302
    assert response["Location"] == "/p/alpha/pipelines/recurring/"
    schedule = Schedule.objects.get()
    assert schedule.rule == "every 6 hours"
    assert schedule.inputs["max_run_seconds"] == 1800
    page = bobs.get("/p/alpha/pipelines/recurring/").content.decode()
    assert "nightly" in page and "every 6 hours" in page and "Active" in page

    edit = bobs.get(f"/p/alpha/pipelines/recurring/{schedule.pk}/edit/").content.decode()
    assert 'value="6"' in edit and "Europe/Paris" in edit and 'value="30"' in edit
    response = bobs.post(
        f"/p/alpha/pipelines/recurring/{schedule.pk}/edit/",
        {
            **FORM,
            "name": "weekdays",
            "when": "recurring",
            "cron": "0 3 * * 1-5",
            "timezone": "Europe/Paris",
        },
    )
    assert response.status_code == 302
    schedule.refresh_from_db()
    assert schedule.rule == "cron 0 3 * * 1-5" and schedule.name == "weekdays"

    bobs.post(f"/p/alpha/pipelines/recurring/{schedule.pk}/pause/")
    assert "Paused" in bobs.get("/p/alpha/pipelines/recurring/").content.decode()
    bobs.post(f"/p/alpha/pipelines/recurring/{schedule.pk}/resume/")
    assert Schedule.objects.get().paused is False
    bobs.post(f"/p/alpha/pipelines/recurring/{schedule.pk}/delete/")
    assert "No recurring pipelines" in bobs.get("/p/alpha/pipelines/recurring/").content.decode()
    assert bobs.post(f"/p/alpha/pipelines/recurring/{schedule.pk}/pause/").status_code == 404


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"when": "at", "at": ""}, "Choose the date and time"),
        ({"when": "at", "at": "2020-01-01T00:00"}, "That moment has passed"),
        ({"when": "recurring", "cron": "not cron"}, "not a cron expression"),
        ({"when": "recurring", "every": "0", "unit": "days"}, "1 or more"),
        ({"when": "recurring", "every": "1", "timezone": "Atlantis/Capital"}, "not a time zone"),
        ({"time_limit": "soon"}, "number of minutes"),
        ({"when": "recurring", "every": "1", "dataset": "nope"}, "There is no dataset"),
    ],
)
def test_bad_timing_is_refused_in_place_and_nothing_is_stored(bobs, fields, message):
    response = bobs.post("/p/alpha/pipelines/new/", {**FORM, **fields}, headers=HTMX)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not PipelineRun.objects.exists() and not Schedule.objects.exists()


def test_timing_and_input_problems_are_shown_together(bobs):
    response = bobs.post(
        "/p/alpha/pipelines/new/", {**FORM, "dataset": "nope", "when": "recurring", "cron": "bad"}
    )
    page = response.content.decode()
    assert "There is no dataset" in page and "not a cron expression" in page


def test_kill_and_retry_buttons(bobs):
    bobs.post("/p/alpha/pipelines/new/", FORM)
    run = PipelineRun.objects.get()
    page = bobs.get("/p/alpha/pipelines/").content.decode()
    assert f"/p/alpha/pipelines/{run.pk}/kill/" in page
    response = bobs.post(f"/p/alpha/pipelines/{run.pk}/kill/", {"next": "/p/alpha/pipelines/"})
    assert response["Location"] == "/p/alpha/pipelines/"
    response = bobs.post(f"/p/alpha/pipelines/{run.pk}/kill/")
    assert response.status_code == 400
    assert "already killed" in response.content.decode()
    page = bobs.get(f"/p/alpha/pipelines/{run.pk}/").content.decode()
    assert "killed by bob" in page.lower() and "Retry" in page
    response = bobs.post(f"/p/alpha/pipelines/{run.pk}/retry/")
    new = PipelineRun.objects.exclude(pk=run.pk).get()
    assert response["Location"] == f"/p/alpha/pipelines/{new.pk}/"
    assert new.status == "queued"


def test_kill_does_not_redirect_elsewhere(bobs):
    bobs.post("/p/alpha/pipelines/new/", FORM)
    run = PipelineRun.objects.get()
    response = bobs.post(f"/p/alpha/pipelines/{run.pk}/kill/", {"next": "https://evil.example/"})
    assert response["Location"] == f"/p/alpha/pipelines/{run.pk}/"


def test_a_killed_running_run_is_polled_until_its_worker_wrote_the_end(bobs):
    bobs.post("/p/alpha/pipelines/new/", FORM)
    run = PipelineRun.objects.get()
    PipelineRun.objects.filter(pk=run.pk).update(status="running", started_at=timezone.now())
    bobs.post(f"/p/alpha/pipelines/{run.pk}/kill/")
    page = bobs.get(f"/p/alpha/pipelines/{run.pk}/").content.decode()
    assert "Killed" in page and 'hx-trigger="every 1s"' in page  # results not written yet
    PipelineRun.objects.filter(pk=run.pk).update(results_text="{}")
    page = bobs.get(f"/p/alpha/pipelines/{run.pk}/").content.decode()
    assert 'hx-trigger="every 1s"' not in page


def test_a_recurring_pipelines_runs_are_listed_on_their_own(bobs, project, bob):
    from pipelines.schedules import schedule_fire

    bobs.post(
        "/p/alpha/pipelines/new/", {**FORM, "when": "recurring", "every": "1", "unit": "weeks"}
    )
    schedule = Schedule.objects.get()
    assert schedule.rule == "every week"
    schedule_fire(schedule.pk, int(schedule.next_run_at.timestamp()))
    bobs.post("/p/alpha/pipelines/new/", FORM)  # a run of no schedule
    fired = PipelineRun.objects.get(schedule=schedule)
    page = bobs.get("/p/alpha/pipelines/", {"schedule": schedule.pk}).content.decode()
    assert f"#{fired.pk}<" in page and page.count('class="badge') == 1
    assert "show all" in page
    api_runs = bobs.get("/api/v1/projects/alpha/pipelines", {"schedule": schedule.pk}).json()
    assert [r["id"] for r in api_runs] == [fired.pk]
    assert api_runs[0]["schedule"] == schedule.pk

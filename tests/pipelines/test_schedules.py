"""When recurring pipelines fire: croniter and wall-clock intervals in any time zone; runs at
a moment and recurring firings start on time on a real worker."""

from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone
from django_rq import get_queue
from rq.registry import FailedJobRegistry, StartedJobRegistry

from pipelines.models import PipelineRun, Schedule
from pipelines.schedules import next_run_time
from pipelines.when import clean_when
from tests.conftest import upload, wait_until


def utc(*args):
    return datetime(*args, tzinfo=UTC)


def schedule(**fields):
    return Schedule(**{"timezone": "UTC", "starts_at": utc(2026, 1, 1), **fields})


def test_cron_times_follow_the_time_zone_across_daylight_saving():
    paris = schedule(cron="0 9 * * *", timezone="Europe/Paris")
    # winter: 09:00 in Paris is 08:00 UTC; summer (after 29 March 2026): 07:00 UTC
    assert next_run_time(paris, utc(2026, 3, 27, 12)) == utc(2026, 3, 28, 8)
    assert next_run_time(paris, utc(2026, 3, 28, 12)) == utc(2026, 3, 29, 7)
    assert next_run_time(paris, utc(2026, 3, 29, 12)) == utc(2026, 3, 30, 7)


def test_cron_in_a_zone_far_from_utc():
    tokyo = schedule(cron="30 2 * * 1-5", timezone="Asia/Tokyo")  # 02:30 on weekdays
    # Friday 27 Nov 2026 18:00 UTC is Saturday 03:00 in Tokyo: next is Monday 02:30 JST
    assert next_run_time(tokyo, utc(2026, 11, 27, 18)) == utc(2026, 11, 29, 17, 30)


def test_every_n_days_keeps_the_wall_clock_time():
    daily = schedule(
        every=1, unit="days", timezone="America/New_York", starts_at=utc(2026, 3, 6, 14)
    )  # 09:00 EST
    assert next_run_time(daily, utc(2026, 3, 7, 15)) == utc(2026, 3, 8, 13)  # 09:00 EDT


def test_every_n_hours_is_absolute_time():
    hourly = schedule(every=6, unit="hours", starts_at=utc(2026, 1, 1, 0))
    assert next_run_time(hourly, utc(2026, 1, 1, 13)) == utc(2026, 1, 1, 18)
    assert next_run_time(hourly, utc(2026, 1, 1, 18)) == utc(2026, 1, 2, 0)


def test_weeks_and_a_future_start():
    weekly = schedule(every=2, unit="weeks", starts_at=utc(2026, 6, 1, 8))
    assert next_run_time(weekly, utc(2026, 5, 1)) == utc(2026, 6, 1, 8)
    assert next_run_time(weekly, utc(2026, 6, 1, 8)) == utc(2026, 6, 15, 8)


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"cron": "every day"}, "not a cron expression"),
        ({"every": 0, "unit": "days"}, "1 or more"),
        ({"every": 2, "unit": "months"}, "hours, days or weeks"),
        ({"at": "tomorrow"}, "not a date and time"),
        ({"at": "2026-12-01T08:00", "timezone": "Mars/Olympus"}, "not a time zone"),
        ("soon", "must be null or an object"),
    ],
)
def test_bad_rules_are_refused_with_a_clear_message(raw, message):
    with pytest.raises(ValidationError) as error:
        clean_when(raw)
    assert message in str(error.value)


def test_a_naive_moment_is_read_in_its_time_zone():
    when = clean_when({"at": "2026-12-01T08:30", "timezone": "Europe/Paris"})
    assert when.kind == "at"
    assert when.at == utc(2026, 12, 1, 7, 30)


def test_a_firing_missed_while_everything_was_down_happens_on_restart(bob, project):
    import io
    from datetime import timedelta

    from django.utils import timezone

    from datasets.services import dataset_create, dataset_file_put
    from packages.services import package_create
    from pipelines.sweeper import arm_schedules
    from tests.conftest import upload

    package_create(project=project, user=bob, name="p", file=upload())
    dataset = dataset_create(project=project, user=bob, name="d")
    dataset_file_put(user=bob, dataset=dataset, path="a.csv", fileobj=io.BytesIO(b"1"))
    missed = timezone.now() - timedelta(hours=2)
    schedule = Schedule.objects.create(
        project=project,
        created_by=bob,
        every=1,
        unit="days",
        timezone="UTC",
        starts_at=missed,
        next_run_at=missed,
        job_id="lost-with-redis",
        inputs={"type": "train", "package": "p", "version": "1.0", "dataset": "d"},
    )
    arm_schedules()  # what the first worker to start does within seconds
    schedule.refresh_from_db()
    assert schedule.runs.count() == 1
    assert schedule.next_run_at == missed + timedelta(days=1)
    arm_schedules()  # and never twice
    assert schedule.runs.count() == 1


def test_firings_missed_while_no_worker_ran_are_one_run_and_the_rest_said(bob, project, pages_as):
    """Three hourly firings passed while the only worker was down: the first sweep starts one
    run (one catch-up, never a burst), and says which two it skipped, in ML Logs and on the
    Recurring pipelines page: none is dropped silently."""
    import io

    from core.models import Event
    from datasets.services import dataset_create, dataset_file_put
    from packages.services import package_create
    from pipelines.sweeper import arm_schedules

    package_create(project=project, user=bob, name="p", file=upload())
    dataset = dataset_create(project=project, user=bob, name="d")
    dataset_file_put(user=bob, dataset=dataset, path="a.csv", fileobj=io.BytesIO(b"1"))
    first = (timezone.now() - timedelta(hours=2, minutes=30)).replace(second=0, microsecond=0)
    schedule = Schedule.objects.create(
        project=project,
        created_by=bob,
        name="hourly",
        every=1,
        unit="hours",
        timezone="UTC",
        starts_at=first,
        next_run_at=first,
        inputs={"type": "train", "package": "p", "version": "1.0", "dataset": "d"},
    )
    arm_schedules()  # the first worker back

    schedule.refresh_from_db()
    assert schedule.runs.count() == 1
    assert schedule.next_run_at == first + timedelta(hours=3)
    skipped = [first + timedelta(hours=1), first + timedelta(hours=2)]
    (event,) = Event.objects.filter(category="schedule", action="skipped")
    assert (event.actor_name, event.object_key) == ("system", str(schedule.pk))
    assert event.data["skipped"] == 2
    assert event.data["times"] == [moment.isoformat() for moment in skipped]
    assert event.message.startswith(
        f"2 missed firings skipped ({skipped[0]:%Y-%m-%d %H:%M}, {skipped[1]:%Y-%m-%d %H:%M} UTC)"
    )
    page = pages_as(bob).get("/p/alpha/pipelines/recurring/").content.decode()
    assert "2 missed firings skipped" in page
    assert f"?object=schedule:{schedule.pk}" in page  # its ML Logs, where the times are
    arm_schedules()  # and nothing more
    assert schedule.runs.count() == 1
    assert Event.objects.filter(action="skipped").count() == 1


# On time, with the processes the operator guide lists: one `rqworker pipelines` (the session's
# `worker`), whose RQ scheduler wakes runs and schedules. Nothing crashes on the way (no failed
# job left in RQ) and nothing waits for the sweeper's rescue.

API = "/api/v1/projects/alpha"


@pytest.fixture
def ready(api_as, bob, worker):
    """Bob's API, a package whose environment is built and a dataset, the worker idle."""
    api = api_as(bob)
    assert api.post(f"{API}/packages", {"name": "p", "file": upload()}).status_code == 201
    api.post_json(f"{API}/datasets", {"name": "d"})
    api.put(f"{API}/datasets/d/files/a.csv", b"1\n", content_type="application/octet-stream")
    queue = get_queue("pipelines")
    wait_until(
        lambda: queue.count == 0 and StartedJobRegistry(queue=queue).count == 0,
        60,
        "the worker is still busy with the upload's environment build",
    )
    return api


def failed_jobs(prefix):
    registry = FailedJobRegistry(queue=get_queue("pipelines"))
    return [job_id for job_id in registry.get_job_ids() if job_id.startswith(prefix)]


def a_moment_ahead():
    """3 to 4 s from now, just after a whole second: the worst case for RQ's whole seconds."""
    return (timezone.now() + timedelta(seconds=4)).replace(microsecond=1000)


def assert_started_on_time(run, moment):
    wait_until(lambda: PipelineRun.objects.get(pk=run.pk).started_at, 15, "the run never started")
    run.refresh_from_db()
    late = (run.started_at - moment).total_seconds()
    assert 0 <= late <= 2, f"started {late:.2f} s after its moment"
    assert failed_jobs(f"pipeline-run-{run.pk}-") == []
    # the worker's job done, its last writes (log, events) in: the database is emptied after
    # the test, and a worker still writing then deadlocks with it on PostgreSQL
    started = StartedJobRegistry("pipelines", connection=get_queue("pipelines").connection)
    wait_until(
        lambda: (
            PipelineRun.objects.get(pk=run.pk).is_finished
            and not any(job.startswith(f"pipeline-run-{run.pk}-") for job in started.get_job_ids())
        ),
        60,
        "the run's job never ended",
    )


@pytest.mark.django_db(transaction=True)
def test_a_run_at_a_moment_starts_within_two_seconds_and_leaves_no_failed_job(ready):
    at = a_moment_ahead()
    response = ready.post_json(
        f"{API}/pipelines",
        {
            "type": "train",
            "package": "p",
            "version": "1.0",
            "dataset": "d",
            "schedule": {"at": at.isoformat()},
        },
    )
    assert response.status_code == 201, response.content
    run = PipelineRun.objects.get(pk=response.json()["id"])
    assert run.status == PipelineRun.SCHEDULED
    assert_started_on_time(run, at)


@pytest.mark.django_db(transaction=True)
def test_a_recurring_pipeline_fires_within_two_seconds_and_leaves_no_failed_job(ready):
    starts = a_moment_ahead()
    response = ready.post_json(
        f"{API}/pipelines",
        {
            "type": "train",
            "package": "p",
            "version": "1.0",
            "dataset": "d",
            "schedule": {"every": 1, "unit": "hours", "starts_at": starts.isoformat()},
        },
    )
    assert response.status_code == 201, response.content
    schedule = Schedule.objects.get(pk=response.json()["id"])
    wait_until(lambda: schedule.runs.exists(), 15, "the schedule never fired")
    assert_started_on_time(schedule.runs.get(), starts)
    assert failed_jobs(f"schedule-{schedule.pk}-") == []

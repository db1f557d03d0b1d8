"""When recurring pipelines fire: croniter and wall-clock intervals in any time zone."""

from datetime import UTC, datetime

import pytest
from django.core.exceptions import ValidationError

from pipelines.models import Schedule
from pipelines.schedules import clean_when, next_run_time


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
    dataset_file_put(dataset=dataset, path="a.csv", fileobj=io.BytesIO(b"1"))
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

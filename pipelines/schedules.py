"""Recurring pipelines: when the next run is due (croniter, or every N hours/days/weeks in a
time zone), and its firing through RQ's scheduler.

The Schedule row holds the truth (next_run_at). RQ's scheduler only carries the wake-up; the
sweeper re-arms it when Redis lost it, and fires a missed one, so a schedule survives a restart
of every process."""

import logging
import math
import zoneinfo
from datetime import UTC, datetime, timedelta

from croniter import croniter
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from pipelines import queue
from pipelines.models import Schedule
from pipelines.services import (
    When,
    clean_run_inputs,
    pipeline_run_create,
    rq_moment,
    wait_for_moment,
)

logger = logging.getLogger(__name__)
TIMEZONES = sorted(zoneinfo.available_timezones())
# RQ keeps a fired schedule's job result this long: only for its dashboard, the schedule's row
# says what happened.
SCHEDULE_RESULT_TTL_SECONDS = 600
STEPS = {
    Schedule.HOURS: timedelta(hours=1),
    Schedule.DAYS: timedelta(days=1),
    Schedule.WEEKS: timedelta(weeks=1),
}


def _zone(name: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValidationError(
            {"timezone": f"'{name}' is not a time zone, e.g. Europe/Paris."}
        ) from None


def clean_when(raw) -> When:
    """'When to run' from the API or the form: None or {} (now); {"at": ...}; {"every", "unit"};
    or {"cron"}; each with an optional "timezone" (UTC by default) and "starts_at"."""
    if not raw:
        return When()
    if not isinstance(raw, dict):
        raise ValidationError({"schedule": "schedule must be null or an object."})
    zone_name = str(raw.get("timezone") or "UTC")
    zone = _zone(zone_name)
    when = When(timezone=zone_name)

    def moment(value, field):
        if isinstance(value, datetime):
            moment = value
        else:
            try:
                moment = datetime.fromisoformat(str(value))
            except ValueError:
                raise ValidationError(
                    {
                        "schedule": f"{field}: '{value}' is not a date and time like "
                        "2026-12-01T08:30."
                    }
                ) from None
        return moment if moment.tzinfo else moment.replace(tzinfo=zone)

    if raw.get("at"):
        when.kind, when.at = "at", moment(raw["at"], "at")
        return when
    when.kind = "recurring"
    when.at = moment(raw["starts_at"], "starts_at") if raw.get("starts_at") else None
    if raw.get("cron"):
        when.cron = " ".join(str(raw["cron"]).split())
        if not croniter.is_valid(when.cron):
            raise ValidationError(
                {"schedule": f"'{when.cron}' is not a cron expression like '0 3 * * 1'."}
            )
        return when
    try:
        when.every = int(raw.get("every"))
        if when.every < 1:
            raise ValueError
    except (TypeError, ValueError):
        raise ValidationError(
            {
                "schedule": "Give 'at', a cron expression, or 'every' as a "
                "whole number of hours, days or weeks (1 or more)."
            }
        ) from None
    when.unit = str(raw.get("unit") or "")
    if when.unit not in STEPS:
        raise ValidationError({"schedule": "unit must be hours, days or weeks."})
    return when


def next_run_time(schedule: Schedule, after: datetime) -> datetime:
    """The first firing strictly after `after`, in UTC."""
    zone = _zone(schedule.timezone)
    if schedule.cron:
        start = max(after, schedule.starts_at - timedelta(microseconds=1)).astimezone(zone)
        return croniter(schedule.cron, start).get_next(datetime).astimezone(UTC)
    step = STEPS[schedule.unit] * schedule.every
    if after < schedule.starts_at:
        return schedule.starts_at
    if schedule.unit == Schedule.HOURS:  # hours: absolute time
        count = math.floor((after - schedule.starts_at) / step) + 1
        return schedule.starts_at + count * step
    # days and weeks follow the wall clock of the time zone, across daylight saving changes
    local_start = schedule.starts_at.astimezone(zone).replace(tzinfo=None)
    local_after = after.astimezone(zone).replace(tzinfo=None)
    count = max(0, math.floor((local_after - local_start) / step))
    while True:
        candidate = (local_start + count * step).replace(tzinfo=zone)
        if candidate > after:
            return candidate.astimezone(UTC)
        count += 1


def schedule_create(*, project, user, when: When, name: str, inputs: dict) -> Schedule:
    clean_run_inputs(project=project, **inputs)  # refuse bad inputs now, not at the first firing
    now = timezone.now()
    schedule = Schedule(
        project=project,
        name=(name or "").strip()[:200],
        created_by=user,
        inputs=inputs,
        every=when.every,
        unit=when.unit,
        cron=when.cron,
        timezone=when.timezone,
        starts_at=when.at or now,
    )
    schedule.next_run_at = next_run_time(schedule, now)
    with transaction.atomic():
        schedule.save()
        transaction.on_commit(lambda: schedule_arm(schedule))
    return schedule


def schedule_update(*, schedule, when: When, name: str, inputs: dict) -> Schedule:
    if when.kind != "recurring":
        raise ValidationError({"schedule": "A recurring pipeline needs 'every' or a cron rule."})
    clean_run_inputs(project=schedule.project, **inputs)
    schedule.name, schedule.inputs = (name or "").strip()[:200], inputs
    schedule.every, schedule.unit, schedule.cron = when.every, when.unit, when.cron
    schedule.timezone = when.timezone
    schedule.starts_at = when.at or timezone.now()
    schedule.next_run_at = next_run_time(schedule, timezone.now())
    schedule.job_id = ""
    schedule.save()
    transaction.on_commit(lambda: schedule_arm(schedule))
    return schedule


def schedule_pause(*, schedule) -> None:
    schedule.paused = True
    schedule.save(update_fields=["paused"])


def schedule_resume(*, schedule) -> None:
    schedule.paused = False
    schedule.next_run_at = next_run_time(schedule, timezone.now())
    schedule.job_id = ""
    schedule.save(update_fields=["paused", "next_run_at", "job_id"])
    transaction.on_commit(lambda: schedule_arm(schedule))


def schedule_delete(*, schedule) -> None:
    schedule.delete()  # its runs stay, unlinked


def _job_id(schedule) -> str:
    return f"schedule-{schedule.pk}-{int(schedule.next_run_at.timestamp())}"


def schedule_arm(schedule) -> None:
    """Ask RQ's scheduler to wake `fire_schedule` at next_run_at (idempotent)."""
    if schedule.paused or schedule.next_run_at is None:
        return
    job_id = _job_id(schedule)
    try:
        queue.enqueue(
            "pipelines",
            "pipelines.tasks.fire_schedule",
            schedule.pk,
            int(schedule.next_run_at.timestamp()),
            at=rq_moment(schedule.next_run_at),
            job_id=job_id,
            description=f"schedule {schedule.pk}",
            result_ttl=SCHEDULE_RESULT_TTL_SECONDS,
        )
    except Exception:  # noqa: BLE001 - Redis away: the sweeper arms it later
        logger.exception("could not arm schedule %s", schedule.pk)
        return
    Schedule.objects.filter(pk=schedule.pk).update(job_id=job_id)


def schedule_fire(schedule_id: int, due: int) -> None:
    """Start the run due at `due` (epoch seconds) once, whoever calls; then arm the next one."""
    moment = Schedule.objects.filter(pk=schedule_id).values_list("next_run_at", flat=True).first()
    if moment is not None and int(moment.timestamp()) == due:
        wait_for_moment(moment)  # RQ wakes us up to a second early (rq_moment)
    with transaction.atomic():
        schedule = Schedule.objects.select_for_update().filter(pk=schedule_id).first()
        if (
            schedule is None
            or schedule.paused
            or schedule.next_run_at is None
            or int(schedule.next_run_at.timestamp()) != due
        ):
            return  # deleted, paused, edited, or already fired
        user = schedule.created_by
        try:
            pipeline_run_create(
                project=schedule.project,
                user=user,
                schedule=schedule,
                name=schedule.name,
                **schedule.inputs,
            )
        except ValidationError as error:
            # e.g. its dataset was deleted: skip this firing, keep the schedule
            logger.warning("schedule %s could not start a run: %s", schedule.pk, error)
        now = timezone.now()
        schedule.last_run_at = now
        # after the due time too: that firing is done even if the clock is a little behind
        schedule.next_run_at = next_run_time(schedule, max(now, schedule.next_run_at))
        schedule.job_id = ""
        schedule.save(update_fields=["last_run_at", "next_run_at", "job_id"])
        transaction.on_commit(lambda: schedule_arm(schedule))

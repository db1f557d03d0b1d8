"""Recurring pipelines: when the next run is due (croniter, or every N hours/days/weeks in a
time zone), and its firing through RQ's scheduler.

The Schedule row holds the truth (next_run_at). RQ's scheduler only carries the wake-up; the
sweeper re-arms it when Redis lost it, and fires a missed one, so a schedule survives a restart
of every process."""

import logging
import math
from datetime import UTC, datetime, timedelta

from croniter import croniter
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.template.defaultfilters import pluralize
from django.utils import timezone

from core import queue
from core.services import RUN, require
from pipelines.events import schedule_event
from pipelines.inputs import clean_run_inputs
from pipelines.models import Schedule
from pipelines.services import pipeline_run_create
from pipelines.when import STEPS, When, zone_named

logger = logging.getLogger(__name__)
# RQ keeps a fired schedule's job result this long: only for its dashboard, the schedule's row
# says what happened.
SCHEDULE_RESULT_TTL_SECONDS = 600
# Firings missed while nothing ran: one catch-up run, the others skipped and recorded, counted
# up to this many (an every-minute rule missed for a month would be 43,200), and the first
# SKIPPED_TIMES_LISTED of them listed in ML Logs.
SKIPPED_COUNTED = 1000
SKIPPED_TIMES_LISTED = 100
SKIPPED_TIMES_IN_MESSAGE = 5


def next_run_time(schedule: Schedule, after: datetime) -> datetime:
    """The first firing strictly after `after`, in UTC."""
    zone = zone_named(schedule.timezone)
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
        schedule_event(schedule, "created", actor=user, message=_what(schedule))
        transaction.on_commit(lambda: schedule_arm(schedule))
    return schedule


def _what(schedule) -> str:
    inputs = schedule.inputs
    return (
        f"{inputs.get('type', '')} of {inputs.get('package', '')} {inputs.get('version', '')}, "
        f"{schedule.rule} ({schedule.timezone})"
    )


def schedule_update(*, schedule, user, when: When, name: str, inputs: dict) -> Schedule:
    require(user=user, project=schedule.project, need=RUN)
    if when.kind != "recurring":
        raise ValidationError({"schedule": "A recurring pipeline needs 'every' or a cron rule."})
    clean_run_inputs(project=schedule.project, **inputs)
    schedule.name, schedule.inputs = (name or "").strip()[:200], inputs
    schedule.every, schedule.unit, schedule.cron = when.every, when.unit, when.cron
    schedule.timezone = when.timezone
    schedule.starts_at = when.at or timezone.now()
    schedule.next_run_at = next_run_time(schedule, timezone.now())
    schedule.job_id = ""
    with transaction.atomic():
        schedule.save()
        schedule_event(schedule, "updated", actor=user, message=_what(schedule))
    transaction.on_commit(lambda: schedule_arm(schedule))
    return schedule


def schedule_pause(*, schedule, user) -> None:
    require(user=user, project=schedule.project, need=RUN)
    schedule.paused = True
    with transaction.atomic():
        schedule.save(update_fields=["paused"])
        schedule_event(schedule, "paused", actor=user, message="Paused")


def schedule_resume(*, schedule, user) -> None:
    require(user=user, project=schedule.project, need=RUN)
    schedule.paused = False
    schedule.next_run_at = next_run_time(schedule, timezone.now())
    schedule.job_id = ""
    with transaction.atomic():
        schedule.save(update_fields=["paused", "next_run_at", "job_id"])
        schedule_event(
            schedule,
            "resumed",
            actor=user,
            message=f"Next run {schedule.next_run_at:%Y-%m-%d %H:%M} UTC",
        )
    transaction.on_commit(lambda: schedule_arm(schedule))


def schedule_delete(*, schedule, user) -> None:
    require(user=user, project=schedule.project, need=RUN)
    with transaction.atomic():
        schedule_event(schedule, "deleted", actor=user, message=_what(schedule))
        schedule.delete()  # its runs stay, unlinked


def _problem(error) -> str:
    if isinstance(error, ValidationError):
        return " ".join(error.messages)
    return str(error)


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
            at=queue.rq_moment(schedule.next_run_at),
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
        queue.wait_for_moment(moment)  # RQ wakes us up to a second early (rq_moment)
    with transaction.atomic():
        schedule = (
            Schedule.objects.select_for_update(of=("self",))
            .select_related("project", "created_by")
            .filter(pk=schedule_id)
            .first()
        )
        if (
            schedule is None
            or schedule.paused
            or schedule.next_run_at is None
            or int(schedule.next_run_at.timestamp()) != due
        ):
            return  # deleted, paused, edited, or already fired
        try:
            # its creator may have left the project, lost the right to run pipelines, or gone
            if schedule.created_by is None:
                raise PermissionDenied("the account that created it was deleted")
            require(user=schedule.created_by, project=schedule.project, need=RUN)
            run = pipeline_run_create(
                project=schedule.project,
                user=schedule.created_by,
                schedule=schedule,
                name=schedule.name,
                **schedule.inputs,
            )
            schedule_event(
                schedule, "fired", message=f"Started pipeline {run.pk}", data={"pipeline": run.pk}
            )
        except (ValidationError, PermissionDenied) as error:
            # e.g. its dataset was deleted: skip this firing, keep the schedule
            logger.warning("schedule %s could not start a run: %s", schedule.pk, error)
            schedule_event(
                schedule,
                "fired",
                message=f"No run started: {_problem(error)}",
                data={"pipeline": None, "error": _problem(error)},
            )
        now = timezone.now()
        fields = ["last_run_at", "next_run_at", "job_id"]
        if skipped := _missed_after(schedule, schedule.next_run_at, now):
            _record_skipped(schedule, skipped, now)
            fields += ["skipped_count", "skipped_at"]
        schedule.last_run_at = now
        # after the due time too: that firing is done even if the clock is a little behind
        schedule.next_run_at = next_run_time(schedule, max(now, schedule.next_run_at))
        schedule.job_id = ""
        schedule.save(update_fields=fields)
        transaction.on_commit(lambda: schedule_arm(schedule))


def _missed_after(schedule, due: datetime, now: datetime) -> list[datetime]:
    """The firings after `due` that are past already at `now` (at most SKIPPED_COUNTED): missed
    while nothing ran, they are skipped; the firing due at `due`, happening now, catches up."""
    missed = []
    moment = next_run_time(schedule, due)
    while moment <= now and len(missed) < SKIPPED_COUNTED:
        missed.append(moment)
        moment = next_run_time(schedule, moment)
    return missed


def _record_skipped(schedule, skipped: list[datetime], now: datetime) -> None:
    """Say in ML Logs which firings were skipped (and keep how many on the schedule, for its
    page): the policy is one catch-up run, never a burst of them, and never a silent drop."""
    count = f"{len(skipped):,}" + (" or more" if len(skipped) >= SKIPPED_COUNTED else "")
    shown = [f"{moment:%Y-%m-%d %H:%M}" for moment in skipped[:SKIPPED_TIMES_IN_MESSAGE]]
    more = ", …" if len(skipped) > SKIPPED_TIMES_IN_MESSAGE else ""
    due = schedule.next_run_at
    logger.warning("schedule %s: %s missed firings skipped", schedule.pk, count)
    schedule_event(
        schedule,
        "skipped",
        message=(
            f"{count} missed firing{pluralize(len(skipped))} skipped ({', '.join(shown)}{more} "
            f"UTC): nothing ran then; one run caught up for {due:%Y-%m-%d %H:%M} UTC"
        ),
        data={
            "skipped": len(skipped),
            "times": [moment.isoformat() for moment in skipped[:SKIPPED_TIMES_LISTED]],
            "caught_up": due.isoformat(),
        },
    )
    schedule.skipped_count, schedule.skipped_at = len(skipped), now

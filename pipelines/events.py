"""The ML Logs events of pipeline runs and recurring pipelines (core.events.record).

A run writes three events in its life (created, started, finished) at up to 80,000 runs an
hour, so these are built from what the caller has loaded (the run's project, its times): the
event's own INSERT is their only query, and it goes in the transaction of the change it
records."""

from django.urls import reverse

from core.durations import duration_text
from core.events import record
from pipelines.models import PipelineRun

# A failure reason may be a whole traceback's last line or a long explanation: the message
# keeps its start, the event's data keeps all of it.
MESSAGE_REASON_CHARS = 160


def run_event(run, action: str, *, actor=None, message: str = "", data=None, url: bool = True):
    """Record `action` on `run`. `run.project` must be loaded (the callers select it)."""
    project = run.project
    return record(
        project=project,
        category="pipeline",
        action=action,
        actor=actor,
        object_type="pipeline",
        object_key=run.pk,
        object_name=f"Pipeline {run.pk}",
        url=reverse("pipeline-detail", args=[project.slug, run.pk]) if url else "",
        message=message,
        data=data,
    )


def short(reason: str) -> str:
    reason = " ".join((reason or "").split())
    if len(reason) <= MESSAGE_REASON_CHARS:
        return reason
    return reason[: MESSAGE_REASON_CHARS - 1].rsplit(" ", 1)[0] + "…"


def run_ended(run, *, actor=None, action: str = "finished"):
    """The event of the transition that ended `run` (its status, reason and finished_at set):
    "finished" by its worker or the sweeper, "killed" by the person who killed it."""
    duration = (
        round((run.finished_at - run.started_at).total_seconds(), 3)
        if run.started_at and run.finished_at
        else None
    )
    label = dict(PipelineRun.STATUSES)[run.status]
    if run.status == PipelineRun.KILLED and action == "killed":
        message = f"Killed by {actor.get_username()}" if actor else "Killed"
    elif run.status == PipelineRun.SUCCESSFUL:
        message = f"{label} in {duration_text(duration)}"
    else:
        message = f"{label}: {short(run.failure_reason)}" if run.failure_reason else label
    return run_event(
        run,
        action,
        actor=actor,
        message=message,
        data={"status": run.status, "reason": run.failure_reason, "duration_seconds": duration},
    )


def schedule_event(schedule, action: str, *, actor=None, message: str = "", data=None):
    """Record `action` on a recurring pipeline. `schedule.project` must be loaded."""
    project = schedule.project
    return record(
        project=project,
        category="schedule",
        action=action,
        actor=actor,
        object_type="schedule",
        object_key=schedule.pk,
        object_name=schedule.name or f"Recurring pipeline {schedule.pk}",
        url=""
        if action == "deleted"
        else reverse("schedule-edit", args=[project.slug, schedule.pk]),
        message=message,
        data=data,
    )

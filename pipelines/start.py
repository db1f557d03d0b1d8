"""Start a pipeline as the create form and the API's POST do: now, at a moment, or as a
recurring pipeline (a Schedule whose firings create ordinary runs)."""

from datetime import timedelta

from django.core.exceptions import ValidationError
from django.utils import timezone

from core.services import RUN, require
from pipelines.schedules import schedule_create
from pipelines.services import pipeline_run_create
from pipelines.when import When

# "at" a moment this far in the past is refused; less is a form sent within seconds of it.
PAST_MOMENT_SECONDS = 5


def pipeline_start(*, project, user, when: When | None = None, name: str = "", **inputs):
    """The create form and the API's POST: a run now or at a moment, or a recurring schedule.
    Returns the PipelineRun, or the Schedule for recurring pipelines."""
    require(user=user, project=project, need=RUN)
    when = when or When()
    if when.kind == "recurring":
        return schedule_create(project=project, user=user, when=when, name=name, inputs=inputs)
    if when.kind == "at" and when.at <= timezone.now() - timedelta(seconds=PAST_MOMENT_SECONDS):
        raise ValidationError({"schedule": "That moment has passed; pick a time in the future."})
    return pipeline_run_create(
        project=project,
        user=user,
        name=name,
        start_at=when.at,
        zone=when.timezone if when.kind == "at" else "",
        **inputs,
    )

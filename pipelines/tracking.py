"""A run's name, notes and tags, as people edit them and as its code sets them; and the rows a
search reads its params and tags from (pipelines/tracking_models.py).

People edit through pipeline_run_update (the page and `PATCH …/pipelines/{id}`). Package code
sets tags with mlflow.set_tag(s) or metrics_file lines, and a name and notes with
mlflow.start_run(run_name=, description=): those arrive through run_tracking_record, which never
raises for what the package wrote (it is the package's, so it is checked and cut, not trusted)."""

from django.core.exceptions import ValidationError
from django.db import transaction

from core.services import RUN, require
from pipelines.events import run_event
from pipelines.models import PipelineRun
from pipelines.run_values import MOST_TAGS, default_run_name, tag_problem, tags_add
from pipelines.tracking_models import RunTag

MAX_NAME = PipelineRun._meta.get_field("name").max_length
MAX_DESCRIPTION = 50_000


def run_tags(run) -> dict[str, str]:
    """The run's tags, by key."""
    return dict(RunTag.objects.filter(run=run).order_by("key").values_list("key", "value"))


def clean_tags(tags) -> dict[str, str]:
    """Tags as given by a person: ValidationError on 'tags' naming each bad one."""
    if not isinstance(tags, dict):
        raise ValidationError({"tags": "Tags are key → value pairs."})
    problems = [p for key, value in tags.items() if (p := tag_problem(key, value))]
    if len(tags) > MOST_TAGS:
        problems.append(f"A run has at most {MOST_TAGS} tags; these are {len(tags)}.")
    if problems:
        raise ValidationError({"tags": problems})
    return {key.strip(): value for key, value in tags.items()}


def pipeline_run_update(*, run, user, name=None, description=None, tags=None) -> PipelineRun:
    """Rename a run, rewrite its notes (Markdown) or replace its tags; None leaves a field as
    it is. A blank name gives back the default one. ValidationError naming each bad field."""
    require(user=user, project=run.project, need=RUN)
    errors = {}
    if name is not None and (not isinstance(name, str) or len(name.strip()) > MAX_NAME):
        errors["name"] = f"A run's name is text of at most {MAX_NAME} characters."
    if description is not None and (
        not isinstance(description, str) or len(description) > MAX_DESCRIPTION
    ):
        errors["description"] = f"Notes are text of at most {MAX_DESCRIPTION:,} characters."
    if tags is not None:
        try:
            tags = clean_tags(tags)
        except ValidationError as error:
            errors.update(error.message_dict)
    if errors:
        raise ValidationError(errors)
    changed = []
    with transaction.atomic():
        if name is not None:
            run.name = name.strip() or default_run_name(run)
            changed.append("name")
        if description is not None:
            run.description = description.replace("\r\n", "\n")
            changed.append("description")
        if changed:
            run.save(update_fields=changed)
        if tags is not None:
            RunTag.objects.filter(run=run).delete()
            tags_add(run, tags)
            changed.append("tags")
        if changed:
            run_event(run, "edited", actor=user, message=f"Changed its {', '.join(changed)}")
    return run

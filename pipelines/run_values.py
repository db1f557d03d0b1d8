"""Writes of a run's RunTag and RunParam rows (pipelines/tracking_models.py), below the services
that create runs and the worker that records what their code set."""

from django.db import transaction

from pipelines.models import PipelineRun
from pipelines.tracking_models import MAX_KEY, MAX_VALUE, RunParam, RunTag

MOST_TAGS = 100


def tag_problem(key, value) -> str:
    """What is wrong with a tag, or ""."""
    if not isinstance(key, str) or not key.strip() or len(key) > MAX_KEY:
        return f"A tag's key is text of 1 to {MAX_KEY} characters."
    if not key.isprintable():
        return f"The tag key {key[:40]!r} holds control characters."
    if not isinstance(value, str) or len(value) > MAX_VALUE:
        return f"The tag {key[:40]!r}: its value is text of at most {MAX_VALUE} characters."
    if "\x00" in value:
        return f"The tag {key[:40]!r}: its value holds a NUL character."
    return ""


def tags_add(run, tags: dict[str, str]) -> None:
    RunTag.objects.bulk_create(
        [RunTag(run_id=run.pk, project_id=run.project_id, key=k, value=v) for k, v in tags.items()]
    )


def default_run_name(run) -> str:
    """The name of a run its user didn't name: package, version, type and its own number."""
    return f"{run.package.name}-{run.version.number}-{run.type}-{run.pk}"


def run_tags_merge(run, tags: dict[str, str], *, note) -> None:
    """Tags set by the run's code: added, or replacing those of the same key; a bad one is
    skipped with a `note(text)` in the run's log."""
    good = {}
    for key, value in tags.items():
        if problem := tag_problem(key, value):
            note(f"tag skipped: {problem}")
        else:
            good[key.strip()] = value
    if not good:
        return
    with transaction.atomic():
        RunTag.objects.filter(run_id=run.pk, key__in=list(good)).delete()
        room = max(0, MOST_TAGS - RunTag.objects.filter(run_id=run.pk).count())
        if len(good) > room:
            note(f"more than {MOST_TAGS} tags: {len(good) - room} skipped")
            good = dict(list(good.items())[:room])
        tags_add(run, good)


def run_params_index(run) -> None:
    """The run's RunParam rows, from its input parameters and (over them) what its code
    logged. A value longer than the index holds is left out: a search can't find it."""
    values = {**(run.parameters or {}), **(run.logged_params or {})}
    rows = [
        RunParam(run_id=run.pk, project_id=run.project_id, key=key, value=str(value))
        for key, value in values.items()
        if len(key) <= MAX_KEY and len(str(value)) <= MAX_VALUE
    ]
    with transaction.atomic():
        RunParam.objects.filter(run_id=run.pk).delete()
        RunParam.objects.bulk_create(rows)


def run_code_record(run_id: int, *, tags, name="", description="", logged_params=None, note):
    """What the run's code set (mlflow, a metrics_file line): its tags merged into the run's,
    its params over its inputs in the search's rows; its name replaces only a default name (a
    person's stays), its notes only empty notes."""
    run = (
        PipelineRun.objects.select_related("package", "version")
        .only(*RUN_FIELDS)
        .filter(pk=run_id)
        .first()
    )
    if run is None:  # deleted meanwhile
        return
    changed = []
    name = " ".join(name.split())[: PipelineRun._meta.get_field("name").max_length]
    if name and run.name == default_run_name(run):
        run.name = name
        changed.append("name")
    if description and not run.description:
        run.description = description
        changed.append("description")
    if logged_params:
        run.logged_params = logged_params
        changed.append("logged_params")
    with transaction.atomic():
        if changed:
            run.save(update_fields=changed)
        if tags:
            run_tags_merge(run, tags, note=note)
        if logged_params:
            run_params_index(run)


RUN_FIELDS = (
    *("id", "project_id", "name", "type", "description", "parameters", "logged_params"),
    *("package__name", "version__major", "version__minor"),
)

"""`PATCH …/pipelines/{id}`: a run's name, notes and tags, on the pipelines router (the same
path as its GET and DELETE)."""

from ninja import Schema
from pydantic import ConfigDict

from core.errors import ErrorOut
from core.services import project_get_for_user
from pipelines.api import router
from pipelines.schemas import PipelineOut, pipeline_out
from pipelines.selectors import pipeline_run_get
from pipelines.tracking import pipeline_run_update, run_tags


class RunEdit(Schema):
    model_config = ConfigDict(strict=True, extra="forbid")

    name: str | None = None
    description: str | None = None  # Markdown
    # merged into the run's tags; a key set to null is removed
    tags: dict[str, str | None] | None = None


@router.patch("/{project}/pipelines/{run_id}", response={200: PipelineOut, 400: ErrorOut})
def update_pipeline(request, project: str, run_id: int, payload: RunEdit):
    """Rename a run (a blank name gives back the default one), rewrite its notes, or change
    its tags: `{"tags": {"team": "vision", "old": null}}` sets `team` and removes `old`."""
    project = project_get_for_user(user=request.user, slug=project)
    run = pipeline_run_get(project=project, run_id=run_id)
    tags = None
    if payload.tags is not None:
        tags = run_tags(run)
        for key, value in payload.tags.items():
            if value is None:
                tags.pop(key, None)
            else:
                tags[key] = value
    pipeline_run_update(
        run=run, user=request.user, name=payload.name, description=payload.description, tags=tags
    )
    return pipeline_out(pipeline_run_get(project=project, run_id=run.pk))

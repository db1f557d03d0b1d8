"""Runs side by side, for the Compare page and the API."""

from django.core.exceptions import ValidationError
from django.http import Http404

from pipelines.metrics import metric_summaries
from pipelines.run_pages import pipeline_run_list

# The Compare page overlays at most this many runs; the API compares as many.
MOST_COMPARED_RUNS = 10


def compared_run_ids(raw: str) -> list[int]:
    """'1,2,3' → [1, 2, 3]: 1 to MOST_COMPARED_RUNS run numbers, each once, in the given order;
    ValidationError on 'ids' saying what is wrong."""
    parts = [part.strip() for part in str(raw or "").split(",") if part.strip()]
    if not parts:
        raise ValidationError({"ids": "Give the runs to compare as ids=1,2,3."})
    if not all(part.isascii() and part.isdigit() and len(part) <= 18 for part in parts):
        raise ValidationError({"ids": "ids are run numbers separated by commas, like 1,2,3."})
    ids = list(dict.fromkeys(int(part) for part in parts))
    if len(ids) > MOST_COMPARED_RUNS:
        raise ValidationError({"ids": f"Compare at most {MOST_COMPARED_RUNS} runs at once."})
    return ids


def run_comparison(*, project, ids: list[int]) -> list[dict]:
    """The runs side by side, in the given order: inputs, logged parameters, score and each
    metric's last, min, max and number of steps (from the summaries: two queries in all)."""
    runs = {run.pk: run for run in pipeline_run_list(project=project).filter(pk__in=ids)}
    if missing := [str(pk) for pk in ids if pk not in runs]:
        raise Http404(f"No pipeline run {', '.join(missing)} in this project.")
    summaries = metric_summaries(ids)
    return [
        {
            "id": pk,
            "name": runs[pk].name,
            "status": runs[pk].status,
            "package": runs[pk].package.name,
            "version": runs[pk].version.number,
            "parameters": runs[pk].ordered_parameters,
            "logged_params": dict(sorted(runs[pk].logged_params.items())),  # jsonb keeps no order
            "score": runs[pk].score,
            "metrics": summaries[pk],
        }
        for pk in ids
    ]

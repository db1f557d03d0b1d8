"""The run page's Metrics card: each metric's summary, rendered here from the summaries alone,
and the address its charts (static/js/run_metrics.js) read their points from."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.urls import reverse

from core.services import project_get_for_user
from pipelines.metrics import metric_summaries
from pipelines.selectors import pipeline_run_get


def metrics_context(project, run) -> dict:
    """What the Metrics card needs (one query): {name: {"last", "min", "max", "steps"}} in
    name order, and the API address of the points."""
    return {
        "metrics": metric_summaries([run.pk])[run.pk],
        "metrics_api": reverse("api:get_metrics", args=[project.slug, run.pk]),
    }


@login_required
def pipeline_metrics_summary(request, project, run_id):
    """The summary table alone, polled every 2 s while the run runs (the charts poll the API)."""
    project = project_get_for_user(user=request.user, slug=project)
    run = pipeline_run_get(project=project, run_id=run_id)
    context = {"project": project, "run": run, **metrics_context(project, run)}
    return render(request, "pipelines/detail.html#metric-summary", context)

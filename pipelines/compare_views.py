"""The Compare page: pipeline runs side by side at a shareable link (?ids=1,2,3), read through the
same selector as the API's compare; each metric of all the runs is overlaid on one chart by
static/js/compare.js, with the points from the metrics API."""

import re
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.text import Truncator

from core.pages import bad_request
from core.services import project_get_for_user
from pipelines.parameters import DEFAULTS
from pipelines.selectors import compared_run_ids, run_comparison

# Metrics whose names say lower is better (a loss, an error); any other is best when highest,
# as the score is.
LOWER_IS_BETTER = re.compile(r"loss|err|mse|mae|perplexity|wer$|cer$", re.IGNORECASE)


def parameter_rows(runs: list[dict], key: str, *, only_differences=False) -> list[dict]:
    """One row per parameter any of the runs has under `key` ('parameters' or 'logged_params'):
    its value in each run (None where a run has none) and whether they differ. The user's own
    parameters come first, the platform's defaults (artifacts_directory…) after."""
    names = list(dict.fromkeys(name for run in runs for name in run[key]))
    names.sort(key=lambda name: name in DEFAULTS)  # stable: each group keeps its order
    rows = []
    for name in names:
        values = [run[key].get(name) for run in runs]
        differs = len(set(values)) > 1
        if differs or not only_differences:
            rows.append({"name": name, "values": values, "differs": differs})
    return rows


def _best(values: list, lower: bool):
    known = [value for value in values if value is not None]
    if len(known) < 2 or len(set(known)) < 2:
        return None  # one value, or all equal: nothing stands out
    return min(known) if lower else max(known)


def metric_rows(runs: list[dict], *, only_differences=False) -> list[dict]:
    """One row per metric any run logged: each run's summary (last, min, max, steps, or None),
    the best last value marked (lowest for a loss or an error, highest otherwise)."""
    names = sorted({name for run in runs for name in run["metrics"]})
    rows = []
    for name in names:
        summaries = [run["metrics"].get(name) for run in runs]
        lasts = [summary and summary["last"] for summary in summaries]
        lower = bool(LOWER_IS_BETTER.search(name))
        best = _best(lasts, lower)
        differs = len({repr(summary) for summary in summaries}) > 1
        if differs or not only_differences:
            cells = [
                {"summary": summary, "best": best is not None and last == best}
                for summary, last in zip(summaries, lasts, strict=True)
            ]
            rows.append({"name": name, "cells": cells, "lower": lower, "differs": differs})
    return rows


def _chart(project, runs: list[dict]) -> dict:
    """What compare.js draws: the metrics some run logged more than one point of (a single
    point, like the score's, is all in the table), and where each run's points are; and for
    the scatter of a parameter against a metric, each run's parameters (its inputs, then what
    it logged) and last values (the score among them)."""
    curves = {
        name for run in runs for name, summary in run["metrics"].items() if summary["steps"] > 1
    }
    return {
        "metrics": sorted(curves),
        "runs": [
            {
                "label": run["label"],
                "points": reverse(
                    "api:get_metrics", kwargs={"project": project.slug, "run_id": run["id"]}
                ),
                "parameters": {**run["logged_params"], **run["parameters"]},
                "values": {
                    **({"score": run["score"]} if run["score"] is not None else {}),
                    **{name: summary["last"] for name, summary in run["metrics"].items()},
                },
            }
            for run in runs
        ],
    }


def scatter_axes(runs: list[dict]) -> dict:
    """The scatter's choices: every parameter and every value (the score first), and what it
    shows first: the first parameter whose values differ, against the score if any run has
    one (what a person comparing runs most often asks: which setting gave the better model)."""
    rows = parameter_rows(runs, "parameters") + parameter_rows(runs, "logged_params")
    parameters = list(dict.fromkeys(row["name"] for row in rows))
    scored = any(run["score"] is not None for run in runs)
    metrics = sorted({name for run in runs for name in run["metrics"]})
    values = list(dict.fromkeys((["score"] if scored else []) + metrics))
    differing = [row["name"] for row in rows if row["differs"]]
    return {
        "parameters": parameters,
        "values": values,
        "x": (differing or parameters or [None])[0],
        "y": (values or [None])[0],
    }


@login_required
def pipeline_compare(request, project):
    """Runs side by side: ?ids=1,2,3 (the list's ticks send ids=1&ids=2: redirected to the
    shareable form); ?only=differences keeps the rows whose values differ."""
    project = project_get_for_user(user=request.user, slug=project)
    only = request.GET.get("only") == "differences"
    ticked = request.GET.getlist("ids")
    if len(ticked) > 1:
        keep = {"ids": ",".join(ticked), **({"only": "differences"} if only else {})}
        return redirect(f"{request.path}?{urlencode(keep, safe=',')}")
    list_url = reverse("pipeline-list", args=[project.slug])
    try:
        ids = compared_run_ids(request.GET.get("ids", ""))
    except ValidationError as error:
        return bad_request(request, error, project=project, back=list_url, back_label="All runs")
    runs = run_comparison(project=project, ids=ids)
    best_score = _best([run["score"] for run in runs], lower=False)
    for run in runs:
        run["best_score"] = best_score is not None and run["score"] == best_score
        # the charts' legends: long names cut (the table above has them whole)
        run["label"] = Truncator(f"#{run['id']} {run['name']}".strip()).chars(36)
    context = {
        "project": project,
        "runs": runs,
        "ids": ",".join(str(pk) for pk in ids),
        "only_differences": only,
        "parameters": parameter_rows(runs, "parameters", only_differences=only),
        "logged_params": parameter_rows(runs, "logged_params", only_differences=only),
        "metrics": metric_rows(runs, only_differences=only),
        "chart": _chart(project, runs),
        "scatter": scatter_axes(runs),
        "list_url": list_url,
    }
    return render(request, "pipelines/compare.html", context)

"""Reads for datasets."""

from django.db.models import Count, Q, Sum, Value
from django.db.models.functions import Coalesce
from django.http import Http404

from datasets.models import Dataset


def dataset_list(*, project):
    """The project's datasets with their file counts and sizes, in one query."""
    return (
        project.datasets.all()
        .annotate(
            file_count=Count("manifest__entries__blob"),
            size=Coalesce(Sum("manifest__entries__size"), Value(0)),
        )
        .select_related("created_by", "manifest")
        .order_by("name")
    )


def dataset_get(*, project, name: str, with_totals: bool = False) -> Dataset:
    """One dataset; `with_totals` adds file_count and size (an aggregate over all its files,
    so only where they are shown). Got through the project, so dataset.project is this very
    object (with the role project_get_for_user found, which the services' permission check
    reuses)."""
    datasets = (
        dataset_list(project=project)
        if with_totals
        else project.datasets.select_related("created_by", "manifest")
    )
    dataset = datasets.filter(name=name).first()
    if dataset is None:
        raise Http404(f"No dataset '{name}' in this project.")
    return dataset


def dataset_pipeline_runs(*, dataset, unfinished: bool = False):
    """The runs that train or evaluate on the dataset (`unfinished`: those that keep it from
    being deleted), newest first, with what a table of runs shows (partials/runs_table.html)."""
    runs = dataset.project.pipeline_runs
    if unfinished:
        runs = runs.filter(status__in=runs.model.UNFINISHED)
    return (
        runs.filter(Q(dataset=dataset) | Q(evaluation_dataset=dataset))
        .select_related("package", "version", "dataset", "evaluation_dataset", "created_by")
        .order_by("-created_at", "-id")
    )

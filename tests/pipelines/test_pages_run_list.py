"""The list of pipeline runs through the test client: its filters, its polling, its speed.

Runs are executed by the runner itself (no Redis); the helpers are in tests/pipelines/pages.py,
the bobs fixture in tests/pipelines/conftest.py."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from core.models import Project
from pipelines.metrics import metrics_append
from pipelines.models import MetricSeries, PipelineRun
from tests.pipelines.pages import HTMX, finished_run, queued_run

# Committed rows: the runner's watch thread reads the run on a connection of its own; the runs
# are executed here, never by a worker.
pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("runs_stay_here"),
]


def test_the_list_filters_and_polls_only_while_something_is_unfinished(bobs, project, bob):
    done = finished_run(project, bob)
    page = bobs.get("/p/alpha/pipelines/").content.decode()
    assert f"#{done.pk}" in page and 'hx-trigger="every 1s"' not in page
    waiting = queued_run(project, bob)
    page = bobs.get("/p/alpha/pipelines/").content.decode()
    assert 'hx-trigger="every 1s"' in page
    filtered = bobs.get("/p/alpha/pipelines/", {"status": "queued"}, headers=HTMX)
    text = filtered.content.decode()
    assert f"#{waiting.pk}" in text and f"#{done.pk}<" not in text
    none = bobs.get("/p/alpha/pipelines/", {"status": "killed"}).content.decode()
    assert "No runs match these filters" in none


def test_the_list_stays_fast_with_10000_runs(bobs, project, bob, django_assert_max_num_queries):
    template = queued_run(project, bob)
    fields = {
        f.attname: getattr(template, f.attname)
        for f in PipelineRun._meta.concrete_fields
        if f.attname != "id"
    }
    PipelineRun.objects.bulk_create(
        [PipelineRun(**{**fields, "status": "successful"}) for _ in range(9_999)], batch_size=2000
    )
    with django_assert_max_num_queries(12):
        page = bobs.get("/p/alpha/pipelines/").content.decode()
    assert "Runs 1–50 of 10,000" in page and "10,000+" not in page  # counted up to 10,000
    assert page.count('class="badge') >= 50
    with django_assert_max_num_queries(12):
        bobs.get("/p/alpha/pipelines/", {"page": "150", "package": "classifier"})
    queued_run(project, bob)
    assert "Runs 1–50 of 10,000+" in bobs.get("/p/alpha/pipelines/").content.decode()


def _runs(project, bob, scores):
    """Queued runs (oldest first) with these scores set as a finished run's would be."""
    runs = []
    for score in scores:
        run = queued_run(project, bob)
        PipelineRun.objects.filter(pk=run.pk).update(score=score)
        runs.append(run.pk)
    return runs


def _order(response):
    assert response.status_code == 200, response.content
    return [run.pk for run in response.context["page"]]


def test_the_list_sorts_by_score_highest_or_lowest_first_runs_without_one_last(bobs, project, bob):
    low, none, high, middle = _runs(project, bob, [0.1, None, 0.9, 0.5])
    assert _order(bobs.get("/p/alpha/pipelines/")) == [middle, high, none, low]  # newest first
    page = bobs.get("/p/alpha/pipelines/", {"sort": "-score"})
    assert _order(page) == [high, middle, low, none]
    text = page.content.decode()
    assert 'aria-sort="descending"' in text and 'href="?sort=score"' in text  # click: lowest
    assert _order(bobs.get("/p/alpha/pipelines/", {"sort": "score"})) == [low, middle, high, none]
    # the filters stay in the header's link, and the order in the filters' form
    page = bobs.get("/p/alpha/pipelines/", {"status": "queued", "sort": "score"}).content.decode()
    assert 'href="?status=queued&amp;sort=-score"' in page
    assert '<input type="hidden" name="sort" value="score">' in page


def test_the_metric_column_shows_each_runs_last_value_and_sorts_by_it(bobs, project, bob):
    first, second, third = _runs(project, bob, [None, None, None])
    metrics_append(
        first, {"loss": [(None, 0.9, 1.0), (None, 0.4, 2.0)], "accuracy": [(0, 0.7, 1.0)]}
    )
    metrics_append(second, {"loss": [(None, 0.25, 1.0)]})
    elsewhere = _more_runs(PipelineRun.objects.get(pk=third), 1, 1.0, "beta_only")[0]
    elsewhere.project = Project.objects.create(slug="beta", name="Beta")
    elsewhere.save()

    page = bobs.get("/p/alpha/pipelines/")
    assert page.context["metric_names"] == ["accuracy", "loss"]  # this project's, once each
    assert 'name="metric"' in page.content.decode()
    page = bobs.get("/p/alpha/pipelines/", {"metric": "loss", "sort": "metric"})
    assert _order(page) == [second, first, third]  # 0.25, 0.4, then the run without it
    assert [run.metric_last for run in page.context["page"]] == [0.25, 0.4, None]
    text = page.content.decode()
    assert '<option value="loss" selected>loss</option>' in text
    assert ">0.25</td>" in text and ">0.4</td>" in text and ">—</td>" in text
    assert 'href="?metric=loss&amp;sort=-metric"' in text
    page = bobs.get("/p/alpha/pipelines/", {"metric": "loss", "sort": "-metric"}, headers=HTMX)
    assert _order(page) == [first, second, third]
    # a metric no run logged yet: an empty column, not an error
    page = bobs.get("/p/alpha/pipelines/", {"metric": "f1", "sort": "-metric"})
    assert _order(page) == [third, second, first]  # all without: newest first


def test_the_list_answers_a_bad_order_or_metric_with_400_in_words(bobs, project, bob):
    queued_run(project, bob)
    response = bobs.get("/p/alpha/pipelines/", {"sort": "name"})
    assert response.status_code == 400
    assert "Sort by score, -score, metric or -metric." in response.content.decode()
    response = bobs.get("/p/alpha/pipelines/", {"metric": "x" * 251})
    assert response.status_code == 400
    assert "No metric has a name this long." in response.content.decode()


def _more_runs(template, count, metric_value, metric="loss"):
    """`count` copies of the run `template`, each with `metric` logged (one more each)."""
    fields = {
        f.attname: getattr(template, f.attname)
        for f in PipelineRun._meta.concrete_fields
        if f.attname != "id"
    }
    runs = PipelineRun.objects.bulk_create([PipelineRun(**fields) for _ in range(count)])
    MetricSeries.objects.bulk_create(
        [MetricSeries.of(run, metric, count=1, last=metric_value + i) for i, run in enumerate(runs)]
    )
    return runs


def test_the_metric_column_costs_the_same_queries_for_3_runs_or_a_full_page(bobs, project, bob):
    template = queued_run(project, bob)
    _more_runs(template, 2, 1.0)
    query = {"status": "queued", "metric": "loss", "sort": "-metric"}

    def queries():
        with CaptureQueriesContext(connection) as captured:
            page = bobs.get("/p/alpha/pipelines/", query)
        assert page.status_code == 200
        return len(captured), page

    few, page = queries()
    assert len(page.context["page"]) == 3
    _more_runs(template, 120, 10.0)
    many, page = queries()
    assert many <= few  # fewer: the runs with the metric fill the page on their own
    assert len(page.context["page"]) == 50 and page.context["page"][0].metric_last == 129.0
    # the next page keeps the filter, the column and the order
    text = page.content.decode()
    assert (
        'rel="next"\n    href="?status=queued&amp;metric=loss&amp;sort=-metric&amp;cursor=' in text
    )
    page = bobs.get("/p/alpha/pipelines/", {**query, "page": "3"})
    assert [run.metric_last for run in page.context["page"]][-2:] == [1.0, None]


def test_a_retried_run_says_retry_of_on_the_list_too(bobs, project, bob):
    first = queued_run(project, bob)
    retry = queued_run(project, bob)
    PipelineRun.objects.filter(pk=retry.pk).update(retry_of=first)
    page = bobs.get("/p/alpha/pipelines/").content.decode()
    link = f'retry of <a href="/p/alpha/pipelines/{first.pk}/">#{first.pk}</a>'
    assert page.count(link) == 1

"""The list of pipeline runs through the test client: its filters, its polling, its speed.

Runs are executed by the runner itself (no Redis); the helpers are in tests/pipelines/pages.py,
the bobs fixture in tests/pipelines/conftest.py."""

import pytest

from pipelines.models import PipelineRun
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
    assert "Page 1 of 200" in page
    assert page.count('class="badge') >= 50
    with django_assert_max_num_queries(12):
        bobs.get("/p/alpha/pipelines/", {"page": "150", "package": "classifier"})

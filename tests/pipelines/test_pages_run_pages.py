"""The pages of the runs list and of the API's list, read by keyset (issue 13): every run once
in every order and filter, forward and back, runs with the same creation time included; bad
cursors refused in words; the same few queries on page 1 and deep down.

Runs are made in bulk from one made through the service; the bobs fixture is in
tests/pipelines/conftest.py."""

import base64
import json
import re
from datetime import UTC, datetime, timedelta
from html import unescape

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from core.models import Project
from packages.models import Package
from pipelines.models import MetricSeries, PipelineRun
from pipelines.run_pages import pipeline_run_list
from tests.pipelines.pages import HTMX, queued_run

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("runs_stay_here")]

LIST = "/p/alpha/pipelines/"
API = "/api/v1/projects/alpha/pipelines"
MOMENT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _copies(template, count, **fields):
    """`count` runs like `template` (bulk_create), with `fields` changed."""
    values = {
        f.attname: getattr(template, f.attname)
        for f in PipelineRun._meta.concrete_fields
        if f.attname != "id"
    }
    return PipelineRun.objects.bulk_create(
        [PipelineRun(**{**values, **fields}) for _ in range(count)], batch_size=1000
    )


@pytest.fixture
def runs(bobs, project, bob):
    """230 runs of Alpha, made in bursts that share their creation time to the microsecond
    (60, 40, then 130 each a second apart) with scores, a metric on some, and a mix of
    statuses and types: ties everywhere a keyset could slip."""
    first = queued_run(project, bob)
    made = [first, *_copies(first, 229)]
    for index, run in enumerate(made):
        run.created_at = MOMENT if index < 60 else MOMENT + timedelta(hours=1)
        if index >= 100:
            run.created_at = MOMENT + timedelta(hours=2, seconds=index)
        run.status = ["successful", "failed", "queued"][index % 3]
        run.type = "evaluate" if index % 4 == 0 else "train"
        run.score = [None, 0.5, 0.25, 0.5, None, 0.75][index % 6]
    PipelineRun.objects.bulk_update(made, ["created_at", "status", "type", "score"])
    MetricSeries.objects.bulk_create(
        MetricSeries.of(run, "loss", count=1, last=[0.1, 0.2, None][index % 3])
        for index, run in enumerate(made)
        if index % 5
    )
    return [run.pk for run in made]


def _ids(response):
    assert response.status_code == 200, response.content[:500]
    return [run.pk for run in response.context["page"]]


def _link(response, rel):
    """The href of the page's rel=next / rel=prev link, or None."""
    found = re.search(rf'rel="{rel}"\s+href="([^"]*)"', response.content.decode())
    return unescape(found.group(1)) if found else None


def _walk(client, query, rel="next", start=None):
    """Every page from `start` following `rel` links: their ids, page by page."""
    response = client.get(start or LIST + query)
    pages = [_ids(response)]
    while href := _link(response, rel):
        assert href.startswith("?")
        response = client.get(LIST + href)
        pages.append(_ids(response))
        assert len(pages) < 20, "the links go round in circles"
    return pages, response


ORDERS = [
    "",
    "?sort=-score",
    "?sort=score",
    "?metric=loss&sort=-metric",
    "?metric=loss&sort=metric",
    "?metric=loss",
    "?status=failed",
    "?status=queued&sort=-score",
    "?type=evaluate&metric=loss&sort=metric",
    "?package=classifier",
]


@pytest.mark.parametrize("query", ORDERS)
def test_it_shows_every_run_once_in_the_lists_order_forward_and_back(bobs, project, runs, query):
    filters = dict(pair.split("=") for pair in query.lstrip("?").split("&") if pair)
    expected = list(pipeline_run_list(project=project, **filters).values_list("pk", flat=True))
    assert len(expected) > 50  # more than a page in each case

    pages, last = _walk(bobs, query)
    seen = [pk for page in pages for pk in page]
    assert seen == expected  # none skipped, none repeated, in the one order of the list
    assert all(len(page) == 50 for page in pages[:-1])
    # the filters and the order stay in the links; "First" goes back to the top
    for key, value in filters.items():
        assert f"{key}={value}" in _link(last, "prev")
    first_link = re.search(r'href="([^"]*)">« First', last.content.decode())
    assert _ids(bobs.get(LIST + unescape(first_link.group(1)))) == pages[0]

    back, _ = _walk(bobs, query, rel="prev", start=LIST + _link(last, "prev"))
    assert back == pages[-2::-1]


def test_the_pages_say_which_runs_they_show_of_how_many(bobs, runs):
    response = bobs.get(LIST)
    text = response.content.decode()
    assert "Runs 1–50 of 230" in text and 'rel="prev"' not in text
    second = bobs.get(LIST + _link(response, "next")).content.decode()
    assert "Runs 51–100 of 230" in second and "« First" in second
    assert "Runs 201–230 of 230" in bobs.get(LIST, {"page": "5"}).content.decode()


def test_new_runs_neither_push_the_next_page_nor_are_repeated(bobs, project, bob, runs):
    first = bobs.get(LIST)
    later = _copies(PipelineRun.objects.get(pk=runs[0]), 7)  # newer than everything
    PipelineRun.objects.filter(pk__in=[r.pk for r in later]).update(
        created_at=MOMENT + timedelta(days=1)
    )
    second = bobs.get(LIST + _link(first, "next"))
    expected = list(pipeline_run_list(project=project).values_list("pk", flat=True))
    assert _ids(second) == expected[57:107]  # right after page 1's last run, as it was
    # back from page 2: the 50 runs before it, then a full first page with the new ones
    back = bobs.get(LIST + _link(second, "prev"))
    assert _ids(back) == expected[7:57]
    assert "50 runs of 237" in back.content.decode()  # no longer runs 1–50
    top = bobs.get(LIST + _link(back, "prev"))
    assert _ids(top) == expected[:50] and _link(top, "prev") is None
    assert "Runs 1–50 of 237" in top.content.decode()


def test_an_old_page_number_still_works_and_one_past_the_end_shows_the_last_page(
    bobs, project, runs
):
    expected = list(pipeline_run_list(project=project).values_list("pk", flat=True))
    assert _ids(bobs.get(LIST, {"page": "2"})) == expected[50:100]
    last = bobs.get(LIST, {"page": "99"})
    assert _ids(last) == expected[-50:] and _link(last, "next") is None
    assert _ids(bobs.get(LIST + _link(last, "prev"))) == expected[130:180]
    for nonsense in ("0", "-3", "abc", "1e9", "٣", "99999999999999999999"):
        assert _ids(bobs.get(LIST, {"page": nonsense})) == expected[:50], nonsense
    for schedule in (
        "99999999999999999999",
        "٣",
        "-1",
    ):  # no recurring pipeline: no filter, or none
        assert bobs.get(LIST, {"schedule": schedule}).status_code == 200
        assert bobs.get(API, {"schedule": schedule}).status_code == 200


@pytest.mark.parametrize("sort", ["-metric", "metric"])
def test_an_old_page_number_deep_into_a_metric_order_shows_the_same_runs_as_its_links(
    bobs, project, runs, sort
):
    """?page=N sorted by a metric skips runs on the metric's own index (its rows carry their
    runs' project and creation time): the same runs, in the same order, as walking there by
    the links, and its next link goes on from there. Page 3 starts among the runs with a
    value and ends among those without (the metric's ties broken by creation time and id)."""
    query = {"metric": "loss", "sort": sort}
    expected = list(pipeline_run_list(project=project, **query).values_list("pk", flat=True))
    pages, _ = _walk(bobs, "?metric=loss&sort=" + sort)
    assert [pk for page in pages for pk in page] == expected
    for number in (2, 3):
        page = bobs.get(LIST, {**query, "page": str(number)})
        assert _ids(page) == pages[number - 1] == expected[(number - 1) * 50 : number * 50]
        assert _ids(bobs.get(LIST + _link(page, "next"))) == pages[number]
        assert f"Runs {(number - 1) * 50 + 1}–{number * 50} of 230" in page.content.decode()


def test_a_metric_sorted_list_holds_no_run_of_another_project(bobs, project, runs, bob):
    """The metric's rows are read by project: another project's runs logging the same metric,
    with better values and newer, are not in Alpha's list, sorted or not."""
    beta = Project.objects.create(name="Beta", slug="beta")
    later = MOMENT + timedelta(days=9)
    others = _copies(queued_run(project, bob), 3, project_id=beta.pk, created_at=later)
    MetricSeries.objects.bulk_create(MetricSeries.of(run, "loss", last=0.0) for run in others)
    for query in ("?metric=loss&sort=metric", "?metric=loss&sort=-metric&status=failed"):
        filters = dict(pair.split("=") for pair in query.lstrip("?").split("&"))
        expected = list(pipeline_run_list(project=project, **filters).values_list("pk", flat=True))
        pages, _ = _walk(bobs, query)
        assert [pk for page in pages for pk in page] == expected, query
        assert [len(page) for page in pages[:-1]] == [50] * (len(pages) - 1), query  # all there


def _cursor(data) -> str:
    text = json.dumps(data) if not isinstance(data, str) else data
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


BAD_CURSORS = [
    "garbage",
    "%%%",
    "é",
    "x" * 5000,
    _cursor("not json"),
    _cursor([1, 2, 3]),
    _cursor({"o": "newest", "d": "after"}),
    _cursor({"o": "newest", "d": "sideways", "k": ["2026-03-01T12:00:00+00:00", 5]}),
    _cursor({"o": "newest", "d": "after", "k": ["2026-03-01T12:00:00", 5]}),  # naive
    _cursor({"o": "newest", "d": "after", "k": ["yesterday", 5]}),
    _cursor({"o": "newest", "d": "after", "k": ["2026-03-01T12:00:00+00:00", 10**30]}),
    _cursor({"o": "newest", "d": "after", "k": ["2026-03-01T12:00:00+00:00", True]}),
    _cursor({"o": "newest", "d": "after", "k": ["2026-03-01T12:00:00+00:00", "5"]}),
    _cursor({"o": "newest", "d": "after", "k": [0.5, "2026-03-01T12:00:00+00:00", 5]}),
    _cursor({"o": "-score", "d": "after", "k": [0.5, "2026-03-01T12:00:00+00:00", 5]}),
    _cursor({"o": "newest", "d": "after", "k": ["2026-03-01T12:00:00+00:00", 5], "n": -1}),
    _cursor({"o": "newest", "d": "after", "k": [{"a": 1}, 5]}),
]


@pytest.mark.parametrize("cursor", BAD_CURSORS)
def test_a_cursor_the_list_did_not_give_is_refused_in_words(bobs, api_as, bob, runs, cursor):
    response = bobs.get(LIST, {"cursor": cursor})
    assert response.status_code == 400
    assert "cursor" in response.content.decode() and "first page" in response.content.decode()
    response = api_as(bob).get(API, {"cursor": cursor})
    assert response.status_code == 400
    assert "cursor" in response.json()["errors"]


def test_a_cursor_of_another_order_or_with_odd_numbers_is_refused(bobs, runs):
    by_score = bobs.get(LIST, {"sort": "-score"})
    href = _link(by_score, "next")
    cursor = dict(pair.split("=", 1) for pair in href.lstrip("?").split("&"))["cursor"]
    response = bobs.get(LIST, {"cursor": cursor})  # newest first: another order
    assert response.status_code == 400 and "another order" in response.content.decode()
    for value in (float("nan"), float("inf"), 1e308, -(2**62)):  # numbers it may say
        odd = _cursor({"o": "-score", "d": "after", "k": [value, MOMENT.isoformat(), 3]})
        assert bobs.get(LIST, {"sort": "-score", "cursor": odd}).status_code == 200


def test_a_crafted_cursor_never_shows_another_projects_runs(bobs, project, bob, runs):
    beta = Project.objects.create(slug="beta", name="Beta")
    template = PipelineRun.objects.get(pk=runs[0])
    theirs = _copies(template, 60, project_id=beta.pk)
    PipelineRun.objects.filter(project=beta).update(created_at=MOMENT + timedelta(days=9))
    ours = set(runs)
    # a cursor just above Beta's runs, and one on one of them, in every direction
    for run in (theirs[0], theirs[30]):
        key = [(MOMENT + timedelta(days=9)).isoformat(), run.pk]
        for direction in ("after", "before"):
            cursor = _cursor({"o": "newest", "d": direction, "k": key})
            shown = _ids(bobs.get(LIST, {"cursor": cursor}))
            assert shown and set(shown) <= ours
            listed = bobs.get(API, {"cursor": cursor}).json()
            assert {run["id"] for run in listed} <= ours
    # Bob is no member of Beta: its list stays closed whatever the cursor
    cursor = _cursor({"o": "newest", "d": "after", "k": [MOMENT.isoformat(), 1]})
    assert bobs.get("/p/beta/pipelines/", {"cursor": cursor}).status_code == 404
    assert bobs.get("/api/v1/projects/beta/pipelines", {"cursor": cursor}).status_code == 404


def test_the_api_lists_every_run_once_through_its_link_header(api_as, bob, project, runs):
    api = api_as(bob)
    expected = list(
        pipeline_run_list(project=project, status="failed").values_list("pk", flat=True)
    )
    response = api.get(API, {"status": "failed", "limit": 7})
    seen = [run["id"] for run in response.json()]
    while "Link" in response.headers:
        url = re.fullmatch(r'<([^>]+)>; rel="next"', response.headers["Link"]).group(1)
        assert url.startswith("http://testserver/api/v1/projects/alpha/pipelines?")
        assert "status=failed" in url and "limit=7" in url
        response = api.get(url)
        seen += [run["id"] for run in response.json()]
    assert seen == expected
    # offsets as before, and from a cursor on
    assert [r["id"] for r in api.get(API, {"offset": 220, "limit": 100}).json()] == list(
        pipeline_run_list(project=project).values_list("pk", flat=True)
    )[220:]
    assert api.get(API, {"offset": 10**12}).json() == []
    assert len(api.get(API, {"limit": 0}).json()) == 1
    second = api.get(API, {"limit": 5})
    cursor = second.headers["Link"].split("cursor=")[1].split(">")[0]
    assert [r["id"] for r in api.get(API, {"cursor": cursor, "offset": 2, "limit": 3}).json()] == [
        r["id"] for r in api.get(API, {"limit": 10}).json()
    ][7:10]


def _queries(client, url, **params):
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url, params)
    assert response.status_code == 200, response.content[:300]
    return len(captured), response


PAGES = [
    {},
    {"status": "failed"},
    {"package": "classifier", "type": "train"},
    {"sort": "-score"},
    {"metric": "loss", "sort": "metric"},
]


def test_a_page_costs_the_same_few_queries_on_top_deep_down_and_with_many_runs(bobs, runs):
    """Counting is capped and pages are read by keyset: neither the number of runs nor the
    depth of the page adds a query (at most one more where a sorted list reaches its runs
    without a value)."""
    few = {str(params): _queries(bobs, LIST, **params)[0] for params in PAGES}
    _copies(PipelineRun.objects.get(pk=runs[0]), 2_000, status="failed", type="train", score=0.3)
    for params in PAGES:
        count, response = _queries(bobs, LIST, **params)
        assert count <= few[str(params)] <= 12, params
        for _ in range(3):  # three pages down, by their links
            response = bobs.get(LIST + _link(response, "next"))
        deep, _ = _queries(bobs, LIST + _link(response, "next"))
        assert deep <= few[str(params)] + 1, params
    api, _ = _queries(bobs, API, offset=1500)
    assert api <= 6


def test_the_poll_of_a_deeper_page_stays_on_that_page(bobs, runs):
    second_link = _link(bobs.get(LIST, {"type": "train"}), "next")
    page = bobs.get(LIST + second_link)
    text = page.content.decode()
    poll = re.search(r'hx-get="([^"]*)"\s+hx-trigger="every 1s"', text).group(1)
    assert poll == "/p/alpha/pipelines/" + second_link.replace("&", "&amp;")
    polled = bobs.get(unescape(poll), headers=HTMX)
    assert _ids(polled) == _ids(page) and b"<html" not in polled.content


def test_a_package_of_another_project_with_the_same_name_filters_nothing_in(bobs, bob, runs):
    beta = Project.objects.create(slug="beta", name="Beta")
    theirs = Package.objects.get(project__slug="alpha", name="classifier")
    theirs.pk, theirs.project = None, beta
    theirs.save()
    assert len(_ids(bobs.get(LIST, {"package": "classifier"}))) == 50
    assert "No runs match these filters" in bobs.get(LIST, {"package": "nope"}).content.decode()

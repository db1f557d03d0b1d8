"""The ML Logs page through the test client: filters, pages, links while the object exists,
who may read it."""

from datetime import UTC, datetime

from django.urls import reverse

from core.events import record
from core.models import Event
from datasets.services import dataset_create, dataset_delete
from governance.selectors import PAGE_OF_EVENTS

LOGS = "/p/alpha/logs/"


def event(project, actor=None, **fields):
    """An event as a service records it; `fields` change the defaults."""
    values = {
        "category": "pipeline",
        "action": "started",
        "object_type": "pipeline",
        "object_key": 1,
        "object_name": "Pipeline 1",
        "message": "Started on worker-1",
    }
    return record(project=project, actor=actor, **{**values, **fields})


def dataset_event(project, actor, **fields):
    """An event of the dataset `invoices` (created, unless `fields` say otherwise)."""
    values = {"category": "dataset", "action": "created", "object_type": "dataset"}
    values |= {"object_key": "invoices", "object_name": "invoices"}
    return event(project, actor, **{**values, **fields})


def rows(response) -> int:
    return response.content.decode().count('<span class="badge cat-')


def test_it_lists_the_projects_events_newest_first(pages_as, project, alice):
    event(project, alice, message="the older one")
    event(project, None, message="the newer one")
    response = pages_as(alice).get(LOGS)
    page = response.content.decode()
    assert response.status_code == 200
    assert page.index("the newer one") < page.index("the older one")
    assert "UTC" in page  # times in the app's format, with the zone
    assert '<span class="muted">system</span>' in page  # nobody did it by hand
    assert 'class="active">ML Logs</a>' in page
    assert "Export CSV" in page


def test_actions_read_as_words(pages_as, project, alice):
    dataset_event(project, alice, action="files_uploaded", message="2 files")
    page = pages_as(alice).get(LOGS).content.decode()
    assert "<td>files uploaded</td>" in page and "files_uploaded</td>" not in page


def test_it_filters_by_each_field(pages_as, project, alice, bob):
    # the first event, dated back: time and id grow together, as record() makes them
    old = event(project, None, object_key=7, object_name="Pipeline 7", message="An old start")
    Event.objects.filter(pk=old.pk).update(time=datetime(2025, 3, 1, 12, tzinfo=UTC))
    dataset_event(project, alice, message="Dataset made")
    event(project, bob, object_key=42, object_name="Pipeline 42", message="Started by bob")
    client = pages_as(alice)

    def shown(**query):
        page = client.get(LOGS, query).content.decode()
        return {m for m in ("Dataset made", "Started by bob", "An old start") if m in page}

    assert shown(category="dataset") == {"Dataset made"}
    assert shown(actor="bob") == {"Started by bob"}
    assert shown(actor="system") == {"An old start"}
    assert shown(object="pipeline:42") == {"Started by bob"}
    assert shown(object="invoices") == {"Dataset made"}
    assert shown(object="dataset:42") == set()
    assert shown(since="2025-03-01", until="2025-03-01") == {"An old start"}
    assert shown(since="2025-03-02") == {"Dataset made", "Started by bob"}
    assert shown(q="STARTED BY") == {"Started by bob"}
    assert shown(q="pipeline 7") == {"An old start"}  # the object's name too
    assert shown(category="pipeline", actor="bob", q="nothing like it") == set()


def test_no_match_says_so_and_offers_every_event(pages_as, project, alice):
    event(project, alice)
    page = pages_as(alice).get(LOGS, {"category": "skill"}).content.decode()
    assert "No events match these filters" in page and f'href="{LOGS}"' in page


def test_an_empty_log_says_what_appears_here(pages_as, project, vera):
    page = pages_as(vera).get(LOGS).content.decode()
    assert "No events yet" in page and "who did what in this project" in page


def test_bad_filters_are_shown_on_their_fields_with_a_400(pages_as, project, alice):
    event(project, alice)
    client = pages_as(alice)
    response = client.get(LOGS, {"category": "nonsense", "since": "last tuesday"})
    page = response.content.decode()
    assert response.status_code == 400
    assert "&#x27;nonsense&#x27; is not a category" in page
    assert "&#x27;last tuesday&#x27; is not a date" in page
    assert "Started on worker-1" not in page
    response = client.get(LOGS, {"since": "2026-05-02", "until": "2026-05-01"})
    assert response.status_code == 400
    assert "The end of the time range is before its start." in response.content.decode()
    response = client.get(LOGS, {"cursor": "not-a-cursor"})
    assert response.status_code == 400
    assert "This cursor is not one the ML Logs gave" in response.content.decode()


def test_next_and_previous_walk_the_pages(pages_as, project, alice):
    for number in range(PAGE_OF_EVENTS * 2 + 5):
        event(project, alice, message=f"event number {number}.")
    client = pages_as(alice)
    first = client.get(LOGS, {"actor": "alice"})
    assert rows(first) == PAGE_OF_EVENTS
    assert "event number 104." in first.content.decode()
    assert "Previous" not in first.content.decode()
    cursor = first.context["page"].next_cursor
    assert f"?actor=alice&amp;cursor={cursor}" in first.content.decode()  # the filters kept
    second = client.get(LOGS, {"actor": "alice", "cursor": cursor})
    assert "event number 54." in second.content.decode()
    assert "event number 55." not in second.content.decode()
    third = client.get(LOGS, {"actor": "alice", "cursor": second.context["page"].next_cursor})
    assert rows(third) == 5 and "Next" not in third.content.decode()
    assert "event number 0." in third.content.decode()
    back = client.get(LOGS, {"actor": "alice", "cursor": third.context["page"].previous_cursor})
    assert [e.pk for e in back.context["page"]] == [e.pk for e in second.context["page"]]


def test_objects_are_links_only_while_they_exist(pages_as, project, alice):
    dataset = dataset_create(project=project, user=alice, name="invoices")
    url = reverse("dataset-browse", args=[project.slug, "invoices"])
    dataset_event(project, alice, url=url)
    event(
        project,
        None,
        object_key=999,
        object_name="Pipeline 999",
        url=reverse("pipeline-detail", args=[project.slug, 999]),
    )  # deleted long ago
    client = pages_as(alice)
    page = client.get(LOGS).content.decode()
    assert f'<a href="{url}">invoices</a>' in page
    assert "Pipeline 999" in page and "/pipelines/999/" not in page
    dataset_delete(user=alice, dataset=dataset)
    page = client.get(LOGS).content.decode()
    assert f'<a href="{url}">' not in page and "invoices" in page


def test_existence_is_checked_once_per_kind_of_object(
    pages_as, project, alice, django_assert_max_num_queries
):
    for number in range(PAGE_OF_EVENTS):
        kind = ("pipeline", "dataset", "package", "version", "skill", "schedule")[number % 6]
        event(project, alice, object_type=kind, object_key=f"k{number}", url=f"/x/{number}/")
    client = pages_as(alice)
    client.get(LOGS)
    # session and user, project and role, members for the actor list, the page, six kinds
    with django_assert_max_num_queries(12):
        assert rows(client.get(LOGS)) == PAGE_OF_EVENTS


def test_a_viewer_reads_the_logs_and_an_outsider_gets_404(pages_as, project, vera, charlie):
    event(project, None, message="Something happened")
    assert "Something happened" in pages_as(vera).get(LOGS).content.decode()
    client = pages_as(charlie)
    for path in (LOGS, LOGS + "export.csv", LOGS + "?category=pipeline"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert b"Something happened" not in response.content


def test_another_projects_events_never_show(pages_as, project, alice, django_user_model):
    from core.models import Project

    beta = Project.objects.create(slug="beta", name="Beta")
    record(project=beta, category="pipeline", action="started", message="Beta's secret run")
    page = pages_as(alice).get(LOGS).content.decode()
    assert "Beta&#x27;s secret run" not in page and "No events yet" in page


def test_it_needs_a_login(client, project):
    response = client.get(LOGS)
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_a_text_search_reads_a_span_of_events_a_page_and_next_searches_on(
    pages_as, project, alice, monkeypatch
):
    monkeypatch.setattr("governance.selectors.SEARCH_SPAN", 10)
    monkeypatch.setattr("governance.views.SEARCH_SPAN", 10)  # what the page says
    made = [event(project, alice, message=f"plain {n}") for n in range(30)]
    for n in (3, 25):
        Event.objects.filter(pk=made[n].pk).delete()
    needle = {n: event(project, alice, message=f"needle {n}") for n in (3, 25)}
    # the needles, newest ids: move them where the plain ones were
    for n, found in needle.items():
        Event.objects.filter(pk=found.pk).update(id=made[n].pk)
    client = pages_as(alice)
    first = client.get(LOGS, {"q": "needle"})
    assert "needle 25" in first.content.decode() and "needle 3" not in first.content.decode()
    assert "“Next” searches older ones" in first.content.decode()
    second = client.get(LOGS, {"q": "needle", "cursor": first.context["page"].next_cursor})
    assert "No match among the 10 events searched here" in second.content.decode()
    third = client.get(LOGS, {"q": "needle", "cursor": second.context["page"].next_cursor})
    assert "needle 3" in third.content.decode() and "Next" not in third.content.decode()
    back = client.get(LOGS, {"q": "needle", "cursor": third.context["page"].previous_cursor})
    assert back.context["page"].events == []
    top = client.get(LOGS, {"q": "needle", "cursor": back.context["page"].previous_cursor})
    assert [e.message for e in top.context["page"]] == ["needle 25"]

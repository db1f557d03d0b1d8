"""GET /api/v1/projects/{project}/logs with a real API token: each filter, the cursor, every
kind of bad input, and who may read."""

from datetime import UTC, datetime

from django.urls import reverse

from core.models import Event
from datasets.services import dataset_create
from packages.models import PackageVersion
from packages.services import package_create, package_version_delete
from tests.conftest import upload
from tests.governance.test_logs_page import dataset_event, event

API = "/api/v1/projects/alpha/logs"


def messages(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [item["message"] for item in response.json()["items"]]


def test_it_answers_the_specs_fields_newest_first(api_as, project, alice):
    dataset_create(project=project, user=alice, name="invoices")
    Event.objects.all().delete()  # its own "created" (test_events_datasets): these are by hand
    url = reverse("dataset-browse", args=[project.slug, "invoices"])
    event(project, None, message="first")
    dataset_event(
        project,
        alice,
        action="files_uploaded",
        url=url,
        message="3 files uploaded",
        data={"count": 3, "bytes": 120},
    )
    body = api_as(alice).get(API).json()
    assert body["next"] is None
    newest, oldest = body["items"]
    assert {"time", "category", "action", "actor", "object", "message", "url"} <= set(newest)
    assert newest["category"] == "dataset" and newest["action"] == "files_uploaded"
    assert newest["actor"] == "alice" and newest["object"] == "invoices"
    assert newest["url"] == url and newest["data"] == {"count": 3, "bytes": 120}
    assert newest["object_type"] == "dataset" and newest["object_key"] == "invoices"
    assert datetime.fromisoformat(newest["time"]).tzinfo is not None
    assert oldest["actor"] == "system" and oldest["message"] == "first"
    assert oldest["url"] == ""  # no page was given


def test_each_filter(api_as, project, alice, bob):
    old = event(project, None, object_key=7, object_name="Pipeline 7", message="old")
    Event.objects.filter(pk=old.pk).update(time=datetime(2025, 3, 1, 12, tzinfo=UTC))
    dataset_event(project, alice, message="dataset made")
    event(project, bob, object_key=42, object_name="Pipeline 42", message="bob's run")
    client = api_as(alice)
    assert messages(client.get(API, {"category": "dataset"})) == ["dataset made"]
    assert messages(client.get(API, {"actor": "bob"})) == ["bob's run"]
    assert messages(client.get(API, {"actor": "system"})) == ["old"]
    assert messages(client.get(API, {"object": "pipeline:42"})) == ["bob's run"]
    assert messages(client.get(API, {"object": "invoices"})) == ["dataset made"]
    assert messages(
        client.get(API, {"since": "2025-03-01T11:00:00Z", "until": "2025-03-01T13:00:00+00:00"})
    ) == ["old"]
    assert messages(client.get(API, {"until": "2025-03-01T11:59:59Z"})) == []
    assert messages(client.get(API, {"since": "2026-01-01"})) == ["bob's run", "dataset made"]
    assert messages(client.get(API, {"q": "BOB'S"})) == ["bob's run"]


def test_the_cursor_walks_every_event_once(api_as, project, alice):
    for number in range(7):
        event(project, alice, message=f"n{number}")
    client = api_as(alice)
    seen, cursor = [], ""
    while True:
        body = client.get(API, {"limit": 3, "cursor": cursor, "actor": "alice"}).json()
        seen += [item["message"] for item in body["items"]]
        if body["next"] is None:
            break
        cursor = body["next"]
        event(project, alice, message="arrived meanwhile")  # on top: never in the older pages
    assert seen == [f"n{number}" for number in range(6, -1, -1)]


def test_limit_is_kept_between_1_and_500(api_as, project, alice):
    for number in range(3):
        event(project, alice, message=f"n{number}")
    client = api_as(alice)
    assert len(messages(client.get(API, {"limit": 0}))) == 1
    assert len(messages(client.get(API, {"limit": 10**6}))) == 3


def test_each_bad_input_is_a_400_naming_its_field(api_as, project, alice):
    client = api_as(alice)
    bad = {
        "category": {"category": "gossip"},
        "since": {"since": "yesterday"},
        "until": {"until": "2026-13-45"},
        "cursor": {"cursor": "bm90LWEtY3Vyc29y"},
    }
    for field, query in bad.items():
        response = client.get(API, query)
        assert response.status_code == 400, (field, response.content)
        assert list(response.json()["errors"]) == [field]
        assert response.json()["errors"][field][0]
    response = client.get(API, {"since": "2026-05-02", "until": "2026-05-01"})
    assert response.status_code == 400
    assert response.json()["errors"] == {
        "until": ["The end of the time range is before its start."]
    }
    response = client.get(API, {"category": "gossip", "since": "soon"})
    assert set(response.json()["errors"]) == {"category", "since"}  # every problem at once
    assert client.get(API, {"limit": "many"}).status_code == 422


def test_it_needs_a_token(client, project):
    response = client.get(API)
    assert response.status_code == 401
    assert "Bearer" in response.json()["detail"]


def test_a_viewer_reads_and_an_outsider_gets_404(api_as, project, vera, charlie):
    event(project, None, message="inside")
    assert messages(api_as(vera).get(API)) == ["inside"]
    response = api_as(charlie).get(API)
    assert response.status_code == 404 and b"inside" not in response.content
    assert api_as(charlie).get("/api/v1/projects/nowhere/logs").status_code == 404


def test_the_openapi_schema_documents_it(client, project):
    schema = client.get("/api/v1/openapi.json").json()
    operation = schema["paths"]["/api/v1/projects/{project}/logs"]["get"]
    assert operation["tags"] == ["ML Logs"]
    assert {"200", "400", "401", "404", "422"} <= set(operation["responses"])


def test_a_text_search_is_followed_through_next_to_the_end(api_as, project, alice, monkeypatch):
    monkeypatch.setattr("governance.selectors.SEARCH_SPAN", 4)
    for number in range(20):
        event(project, alice, message=f"{'needle' if number % 7 == 0 else 'hay'} {number}")
    client = api_as(alice)
    found, cursor, answers = [], "", 0
    while cursor is not None:
        body = client.get(API, {"q": "needle", "cursor": cursor, "limit": 2}).json()
        found += [item["message"] for item in body["items"]]
        cursor, answers = body["next"], answers + 1
    assert found == ["needle 14", "needle 7", "needle 0"]
    assert answers >= 5  # 20 events, 4 searched an answer


def test_inputs_at_the_edges_are_answered_not_crashed_on(api_as, project, alice):
    event(project, alice, message="now")
    client = api_as(alice)
    assert messages(client.get(API, {"since": "0001-01-01", "until": "9999-12-31"})) == ["now"]
    assert messages(client.get(API, {"since": "0001-01-01T00:00:00Z"})) == ["now"]
    response = client.get(API, {"since": "0001-01-01T00:30:00+01:00"})
    assert response.json()["errors"] == {"since": ["This moment is out of the calendar's range."]}
    response = client.get(API, {"until": "9999-12-31T23:30:00-01:00"})  # year 10000 in UTC
    assert response.json()["errors"] == {"until": ["This moment is out of the calendar's range."]}
    for field in ("actor", "object", "q", "category", "since"):
        response = client.get(API, {field: "a\x00b"})
        assert response.status_code == 400, field
        assert response.json()["errors"] == {field: ["This text contains a NUL character."]}
    assert client.get(API, {"cursor": "é" * 5000}).status_code == 400
    assert client.get(API, {"object": "pipeline:" + "9" * 300}).json()["items"] == []


def test_a_name_alone_finds_the_package_and_its_versions(api_as, project, alice):
    package_create(project=project, user=alice, name="classifier", file=upload())
    Event.objects.all().delete()  # its own "uploaded" (test_events_packages): these are by hand
    version_url = reverse("version-detail", args=[project.slug, "classifier", "1.0"])
    event(
        project,
        alice,
        category="package",
        action="uploaded",
        object_type="package",
        object_key="classifier",
        object_name="classifier",
        message="package",
    )
    event(
        project,
        alice,
        category="package",
        action="validated",
        object_type="version",
        object_key="classifier 1.0",
        object_name="classifier 1.0",
        message="version",
        url=version_url,
    )
    event(
        project,
        alice,
        message="another package's",
        object_type="version",
        object_key="classifier2 1.0",
        object_name="classifier2 1.0",
    )
    client = api_as(alice)
    assert messages(client.get(API, {"object": "classifier"})) == ["version", "package"]
    body = client.get(API, {"object": "version:classifier 1.0"}).json()
    assert [item["message"] for item in body["items"]] == ["version"]
    assert body["items"][0]["url"] == version_url  # the version exists: its page
    package_version_delete(user=alice, version=PackageVersion.objects.get())
    body = client.get(API, {"object": "version:classifier 1.0"}).json()
    # the delete's own event on top (test_events_packages); a tombstone has no page
    assert [item["message"] for item in body["items"]] == ["Version 1.0 deleted", "version"]
    assert [item["url"] for item in body["items"]] == ["", ""]
    found = messages(client.get(API, {"object": "classifier"}))
    assert found == ["Version 1.0 deleted", "version", "package"]

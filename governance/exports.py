"""The ML Logs as CSV: every event that passes the filters, streamed a batch at a time."""

import csv
import io

from django.db.models import Func, TextField
from django.db.models.functions import Cast

COLUMNS = [
    "time",
    "category",
    "action",
    "actor",
    "object_type",
    "object_key",
    "object",
    "message",
    "url",
    "data",
]
# What each row is read from: plain values, not model instances (half the time of a row),
# and `data` as the database's JSON text, not decoded and encoded again (a third of the rest).
TEXTS = ["category", "action", "actor_name", "object_type", "object_key", "object_name"]
TEXTS += ["message", "url"]
BATCH = 2000
# A cell starting with one of these is a formula to a spreadsheet (=HYPERLINK(...) sends the
# reader's data elsewhere): such text is written with a leading quote, which shows it as text.
FORMULA_STARTS = frozenset("=+-@\t\r\n")


class UtcIsoTime(Func):
    """A time as ISO 8601 text in UTC ("2026-11-27T20:41:00.123456+00:00"), written by the
    database: the driver parsing each time into a datetime that Python then formatted again
    was the largest cost of a row (about 40 % on PostgreSQL). SQLite and PostgreSQL only, the
    databases the app runs on."""

    arity = 1
    output_field = TextField()

    def as_sqlite(self, compiler, connection, **extra):
        # Django stores aware times there as UTC text: "2026-11-27 20:41:00.123456"
        template = "replace(%(expressions)s, ' ', 'T') || '+00:00'"
        return self.as_sql(compiler, connection, template=template, **extra)

    def as_postgresql(self, compiler, connection, **extra):
        template = (
            "to_char(%(expressions)s AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"')"
        )
        return self.as_sql(compiler, connection, template=template, **extra)


def event_batches(events, size: int = BATCH):
    """Rows (id, time, *TEXTS, data) of `events` (newest first), `size` at a time, each batch
    after the last id of the one before: memory stays flat, and every batch is one query on
    the list's index however far down it is."""
    rows = events.annotate(time_text=UtcIsoTime("time"), data_text=Cast("data", TextField()))
    rows = rows.values_list("id", "time_text", *TEXTS, "data_text")
    last = None
    while True:
        batch = list((rows if last is None else rows.filter(id__lt=last))[:size])
        if batch:
            yield batch
        if len(batch) < size:
            return
        last = batch[-1][0]


def event_csv(events):
    """The CSV's text, header first (with a byte-order mark, so spreadsheets read accents
    right), then a batch of rows at a time; times in UTC."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    yield "\ufeff" + out.getvalue()
    for batch in event_batches(events):
        out.seek(0)
        out.truncate()
        writer.writerows(
            [
                moment,
                *["'" + text if text[:1] in FORMULA_STARTS else text for text in texts],
                "" if data == "{}" else data,
            ]
            for _, moment, *texts, data in batch
        )
        yield out.getvalue()

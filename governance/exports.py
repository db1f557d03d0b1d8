"""The ML Logs as CSV: every event that passes the filters, streamed a batch at a time."""

import csv
import json

from django.utils import timezone

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
BATCH = 2000
# A cell starting with one of these is a formula to a spreadsheet (=HYPERLINK(...) sends the
# reader's data elsewhere): such text is written with a leading quote, which shows it as text.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")


def _cell(value: str) -> str:
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def _row(event) -> list[str]:
    data = json.dumps(event.data, ensure_ascii=False, sort_keys=True) if event.data else ""
    values = [
        event.category,
        event.action,
        event.actor_name,
        event.object_type,
        event.object_key,
        event.object_name,
        event.message,
        event.url,
        data,
    ]
    return [timezone.localtime(event.time).isoformat(), *(_cell(v) for v in values)]


class _Line:
    """csv.writer writes into this, and the line is handed on as it is."""

    def write(self, text):
        return text


def event_batches(events, size: int = BATCH):
    """The events of `events` (newest first) read `size` at a time, each batch after the last
    id of the one before: memory stays flat, and every batch is one query on the list's
    index however far down it is."""
    last = None
    while True:
        batch = list((events if last is None else events.filter(id__lt=last))[:size])
        yield from batch
        if len(batch) < size:
            return
        last = batch[-1].pk


def event_csv(events):
    """The CSV's lines, header first (UTF-8 with a byte-order mark, so spreadsheets read
    accents right)."""
    writer = csv.writer(_Line())
    yield "\ufeff" + writer.writerow(COLUMNS)
    for event in event_batches(events):
        yield writer.writerow(_row(event))

"""A run's log: stdout and stderr of its process plus the platform's own lines, each line with
the time it came, appended to the database in chunks at least every LOG_FLUSH_SECONDS while the
run runs: any web server shows it live, and it survives a worker that dies."""

import time
from contextlib import nullcontext
from datetime import UTC, datetime

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Max

from aicenter.database import retry_when_locked
from pipelines import outages
from pipelines.models import LogChunk

# Past the cap the platform's own lines still go in, up to this much more: a few short lines
# in a normal run, but never an unbounded amount.
PLATFORM_CHARS_PAST_CAP = 64 * 1024
# A run's page shows the log's last 200,000 characters (its Download has all of it): enough for
# any traceback and the lines before it, little enough for a browser to render at once.
PAGE_LOG_CHARS = 200_000
# Two writers of one run's log (its worker and the sweeper) taking the same chunk number: the
# number is read again this many times before the write fails.
SEQ_ATTEMPTS = 5


class RunLog:
    def __init__(self, run, *, new: bool = False):
        """`new`: a run its worker has just claimed, whose log has no chunk yet, so numbering
        starts at 1 without a query (a chunk written meanwhile makes the first write read the
        next free number, as _store does for any writer that lost the number)."""
        self.run = run
        self.buffer = []
        self.seq = 1 if new else self._next_seq()
        self.size = 0
        self.truncated = False
        self.last_flush = time.monotonic()
        self.at_line_start = True

    def write(self, text: str, *, platform: bool = False) -> None:
        """Append output; past the cap only the platform's own lines still go in."""
        if not text or (self.truncated and not platform):
            return
        cap = settings.PIPELINE_LOG_MAX_CHARS
        if self.truncated and self.size > cap + PLATFORM_CHARS_PAST_CAP:
            return
        line_ended = self.at_line_start
        stamped = self._stamped(text)
        if not self.truncated and self.size + len(stamped) > cap:
            kept = "" if platform else stamped[: cap - self.size]  # a platform line stays whole
            if not (kept.endswith("\n") if kept else line_ended):
                kept += "\n"  # the note on a line of its own
            self._append(
                f"{kept}[aicenter] the log was cut here: it reached its limit of {cap:,} "
                "characters (AICENTER_LOG_MAX_CHARS); the run goes on\n"
            )
            self.truncated = True
            self.at_line_start = True
            if not platform:
                return
            stamped = self._stamped(text)  # now at the start of a line
        self._append(stamped)

    def _stamped(self, text: str) -> str:
        stamp = datetime.now(UTC).strftime("%H:%M:%S.%f")[:-3] + " "
        pieces = []
        for piece in text.splitlines(keepends=True):
            if self.at_line_start:
                pieces.append(stamp)
            pieces.append(piece)
            self.at_line_start = piece.endswith("\n")
        return "".join(pieces)

    def _append(self, text: str) -> None:
        self.size += len(text)
        self.buffer.append(text)

    def platform(self, message: str) -> None:
        """A line from the platform itself, so the user sees where the time goes. Kept even
        past the cap: the log must still say how the run ended ('new version …', 'Successful')."""
        self.write(f"[aicenter] {message}\n", platform=True)

    def flush_if_due(self) -> None:
        if self.buffer and time.monotonic() - self.last_flush >= settings.LOG_FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        self.last_flush = time.monotonic()
        if not self.buffer:
            return
        text = "".join(self.buffer)
        # a database locked by someone else's write waits, it doesn't fail the run
        retry_when_locked(lambda: self._store(text))
        self.seq += 1
        self.buffer = []

    def _next_seq(self) -> int:
        return (LogChunk.objects.filter(run=self.run).aggregate(m=Max("seq"))["m"] or 0) + 1

    def _store(self, text: str) -> None:
        """One chunk, numbered after the last. Another writer may have taken the number: the
        sweeper ending the run as lost while this worker was cut off, say. Then the next free
        number is read and tried."""
        for attempt in range(SEQ_ATTEMPTS):
            try:
                # in a caller's transaction, a savepoint keeps a failed INSERT from spoiling it;
                # on its own (a worker's flush), one INSERT is its own transaction already
                with transaction.atomic() if connection.in_atomic_block else nullcontext():
                    LogChunk.objects.create(run=self.run, seq=self.seq, text=text)
                return
            except IntegrityError:
                if attempt == SEQ_ATTEMPTS - 1:
                    raise
                self.seq = self._next_seq()


class WorkerLog(RunLog):
    """The log its worker writes while the run runs. A database outage is waited out
    (outages.py): the lines due to go in meanwhile stay here and are tried again after a pause
    that doubles, and a flush that must happen now (a phase's end, the run's) waits for the
    database; past AICENTER_DATABASE_OUTAGE_SECONDS, DatabaseUnreachable."""

    def __init__(self, run, *, new: bool = False):
        super().__init__(run, new=new)
        self.pause = settings.LOG_FLUSH_SECONDS

    def flush_if_due(self) -> None:
        if self.buffer and time.monotonic() - self.last_flush >= self.pause:
            self.last_flush = time.monotonic()
            if outages.try_now(self._write_buffer):
                self.pause = settings.LOG_FLUSH_SECONDS
            else:
                self.pause = min(max(2 * self.pause, outages.FIRST_PAUSE), outages.LONGEST_PAUSE)

    def flush(self) -> None:
        self.last_flush = time.monotonic()
        if self.buffer:
            outages.during_outage(self._write_buffer)

    def _write_buffer(self) -> None:
        self._store("".join(self.buffer))
        self.seq += 1
        self.buffer = []


def run_log_tail(run, *, max_chars: int = PAGE_LOG_CHARS) -> tuple[str, int, bool]:
    """The end of the log for a page: (text, last chunk number, whether the start was cut).
    Reads chunks from the end until it has enough, not the whole log."""
    pieces, size, last, cut = [], 0, 0, False
    chunks = LogChunk.objects.filter(run=run).order_by("-seq").values_list("seq", "text")
    for seq, text in chunks.iterator(chunk_size=50):
        last = last or seq
        if size >= max_chars:
            cut = True
            break
        pieces.append(text)
        size += len(text)
    text = "".join(reversed(pieces))
    if size > max_chars:
        cut = True
        text = text[text.find("\n", len(text) - max_chars) + 1 :]
    return text, last, cut


def run_log_text(run, *, after: int = 0) -> tuple[str, int]:
    """The log (from chunk `after` on) and the last chunk number, for incremental reads."""
    chunks = list(
        LogChunk.objects.filter(run=run, seq__gt=after).order_by("seq").values_list("seq", "text")
    )
    if not chunks:
        return "", after
    return "".join(text for _, text in chunks), chunks[-1][0]

"""A run's log: stdout and stderr of its process plus the platform's own lines, each line with
the time it came, appended to the database in chunks at least every LOG_FLUSH_SECONDS while the
run runs: any web server shows it live, and it survives a worker that dies. How its lines are
written so that the package's can't pass for the platform's: pipelines/log_text.py."""

import re
import time
from contextlib import nullcontext
from datetime import UTC, datetime

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models.functions import Right
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from core.database import retry_when_locked
from core.log_marks import PLATFORM_MARK, as_output
from pipelines import outages
from pipelines.log_text import HIDDEN, PLATFORM_LINE, symbol, visible, visible_line
from pipelines.models import LogChunk

# Past the cap the platform's own lines still go in, up to this much more: a few short lines
# in a normal run, but never an unbounded amount.
PLATFORM_CHARS_PAST_CAP = 64 * 1024
# A run's page shows the log's last 200,000 characters (its Download has all of it): enough for
# any traceback and the lines before it, little enough for a browser to render at once.
PAGE_LOG_CHARS = 200_000
LINE_TIME = re.compile(r"^\d\d:\d\d:\d\d\.\d{3} ")  # what _stamped puts first on a line
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
        self.seq, self.at_line_start = 1, True  # at_line_start: where the next time goes
        if not new:
            last, self.at_line_start = self._last_chunk()
            self.seq = last + 1
        self.size = 0
        self.truncated = False
        self.last_flush = time.monotonic()
        self.after_return = False  # the last output ended in "\r": a "\n" next ends no line

    def write(self, text: str) -> None:
        """Append output: the package's, or any other the platform relays (an installer's)."""
        if self.after_return and text.startswith("\n"):
            text = text[1:]  # "\r\n" split between two reads is one line end
        self.after_return = text.endswith("\r")
        self._add(visible(text), platform=False)

    def platform(self, message: str) -> None:
        """A line from the platform itself, so the user sees where the time goes. Kept even
        past the cap: the log must still say how the run ended ('new version …', 'Successful').
        On a line of its own, whatever `message` quotes (a reason, a file name)."""
        self._add(f"{PLATFORM_MARK}{visible_line(message)}\n", platform=True)

    def _add(self, text: str, *, platform: bool) -> None:
        """Past the cap only the platform's own lines still go in."""
        if not text or (self.truncated and not platform):
            return
        cap = settings.PIPELINE_LOG_MAX_CHARS
        if self.truncated and self.size > cap + PLATFORM_CHARS_PAST_CAP:
            return
        line_ended = self.at_line_start
        stamped = self._stamped(text, platform=platform)
        if not self.truncated and self.size + len(stamped) > cap:
            kept = "" if platform else stamped[: cap - self.size]  # a platform line stays whole
            if not (kept.endswith("\n") if kept else line_ended):
                kept += "\n"  # the note on a line of its own
            self.at_line_start = True
            note = (
                f"the log was cut here: it reached its limit of {cap:,} characters "
                "(AICENTER_LOG_MAX_CHARS); the run goes on\n"
            )
            self._append(kept + self._stamped(PLATFORM_MARK + note, platform=True))
            self.truncated = True
            if not platform:
                return
            stamped = self._stamped(text, platform=True)  # now at the start of a line
        self._append(stamped)

    def _stamped(self, text: str, *, platform: bool) -> str:
        """`text` with the time at the start of each line; the platform's on lines of their
        own, the package's never starting with the platform's mark (log_text.as_output)."""
        stamp = datetime.now(UTC).strftime("%H:%M:%S.%f")[:-3] + " "
        pieces = []
        if platform and not self.at_line_start:
            pieces.append("\n")  # the package's unfinished line ends here
            self.at_line_start = True
        for piece in text.splitlines(keepends=True):  # visible() left "\n" the only line end
            if self.at_line_start:
                pieces.append(stamp)
                if not platform:
                    piece = as_output(piece)
            pieces.append(piece)
            self.at_line_start = piece.endswith("\n")
        return "".join(pieces)

    def _append(self, text: str) -> None:
        self.size += len(text)
        self.buffer.append(text)

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

    def _last_chunk(self) -> tuple[int, bool]:
        """The last chunk's number (0: none), and whether it ended its line (the sweeper's line
        after a lost worker's unfinished one goes on a line of its own)."""
        last = (
            LogChunk.objects.filter(run=self.run)
            .order_by("-seq")
            .values_list("seq", Right("text", 1))
            .first()
        )
        return (0, True) if last is None else (last[0], last[1] in ("", "\n"))

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
                self.seq = self._last_chunk()[0] + 1


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


def has_output(text: str) -> bool:
    """Does the log hold anything besides the platform's own lines (a package's or an
    installer's output)?"""
    return any(
        not PLATFORM_LINE.match(line) and LINE_TIME.sub("", line).strip()
        for line in text.splitlines()
    )


def log_html(text: str, *, starts_line: bool) -> SafeString:
    """`text` (a log, or a part of it) for the page, the platform's lines marked (log_text.py
    says which they are). `starts_line`: whether `text` starts a line; if not (a log's tail cut
    anywhere, a chunk after one that ended mid-line), its first line is never the platform's."""
    html = escape(HIDDEN.sub(symbol, text))

    def marked(match: re.Match) -> str:
        if match.start() == 0 and not starts_line:
            return match.group()
        return f'<span class="log-platform">{match.group()}</span>'

    return mark_safe(PLATFORM_LINE.sub(marked, html))  # noqa: S308 - escaped just above


def run_log_html(run, *, after: int) -> tuple[str, int]:
    """run_log_text's for the page (log_html): the text after chunk `after`, its first line
    marked only if chunk `after` ended its line."""
    text, last = run_log_text(run, after=after)
    if not text:
        return "", last
    ended = (
        LogChunk.objects.filter(run=run, seq=after).values_list(Right("text", 1), flat=True).first()
    )
    return log_html(text, starts_line=after == 0 or ended in (None, "", "\n")), last


def run_log_text(run, *, after: int = 0) -> tuple[str, int]:
    """The log (from chunk `after` on) and the last chunk number, for incremental reads."""
    chunks = list(
        LogChunk.objects.filter(run=run, seq__gt=after).order_by("seq").values_list("seq", "text")
    )
    if not chunks:
        return "", after
    return "".join(text for _, text in chunks), chunks[-1][0]

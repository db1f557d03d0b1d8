"""A run's log: stdout and stderr of its process plus the platform's own lines, appended to the
database in chunks as they come, so any web server can show it while the run runs."""

import time

from django.conf import settings
from django.db.models import Max

from pipelines.models import LogChunk

MAX_LOG_CHARS = 20 * 1024 * 1024


class RunLog:
    def __init__(self, run):
        self.run = run
        self.buffer = []
        self.seq = (LogChunk.objects.filter(run=run).aggregate(m=Max("seq"))["m"] or 0) + 1
        self.size = 0
        self.truncated = False
        self.last_flush = time.monotonic()

    def write(self, text: str) -> None:
        if not text or self.truncated:
            return
        if self.size + len(text) > MAX_LOG_CHARS:
            text = text[: MAX_LOG_CHARS - self.size]
            text += f"\n[aicenter] log truncated at {MAX_LOG_CHARS // 1024 // 1024} MB\n"
            self.truncated = True
        self.size += len(text)
        self.buffer.append(text)

    def platform(self, message: str) -> None:
        """A line from the platform itself, so the user sees where the time goes."""
        self.write(f"[aicenter] {message}\n")

    def flush_if_due(self) -> None:
        if self.buffer and time.monotonic() - self.last_flush >= settings.LOG_FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        self.last_flush = time.monotonic()
        if not self.buffer:
            return
        LogChunk.objects.create(run=self.run, seq=self.seq, text="".join(self.buffer))
        self.seq += 1
        self.buffer = []


def run_log_text(run, *, after: int = 0) -> tuple[str, int]:
    """The log (from chunk `after` on) and the last chunk number, for incremental reads."""
    chunks = list(
        LogChunk.objects.filter(run=run, seq__gt=after).order_by("seq").values_list("seq", "text")
    )
    if not chunks:
        return "", after
    return "".join(text for _, text in chunks), chunks[-1][0]

"""What a run's bootstrap (sandbox/bootstrap.py) tells the runner: its timeline, evaluate()'s
score and the error that ended it, as JSON lines on a pipe, read here.

Trust: none. The bootstrap runs in the package's own process, and so does the package's code,
which can do anything the bootstrap can: find the pipe among its open files (/proc/self/fd),
take the bootstrap's file object (gc), write to it, close it, or write through it. The pipe can't
be put out of its reach, and authenticating reports would prove nothing: a key the bootstrap
signs with would be in the same process's memory. So every line is hostile input, and what is
kept of them is only what the package could have caused anyway by its own code:

- the reading costs the worker little and bounded work: a line over MAX_LINE_BYTES is dropped
  as it streams, each byte is searched once, and past MAX_LINES lines or MAX_BYTES bytes the
  pipe is closed (the run's log says so once) and nothing more is read;
- a report is taken only where the bootstrap would send it: the calls start and end in the
  plan's order ("import", "__init__", then the plan's calls), each once; a time outside the run
  (or before the call before) is brought within it;
- the score is taken only right after evaluate() ended, once: a run without evaluate() has
  none, and a score written by the package before or after that moment is not its score;
- an error's reason is one line of text of a bounded length, its control characters shown.
"""

import json
import math
import time
from dataclasses import dataclass, field

# The longest line the bootstrap writes: an error's reason of 2,000 characters, each written as
# at most 12 bytes of JSON (a surrogate pair's two escapes).
MAX_LINE_BYTES = 32 * 1024
# A run's reports are two per call and a score or an error: a few dozen lines, a few KB.
MAX_LINES = 1000
MAX_BYTES = 1024 * 1024
# The reason of an error, as the run's failure reason, is cut to this.
REASON_CHARS = 2000
# A reason is one line wherever it is shown (pages, e-mails, a terminal following the run): its
# control characters are shown as their symbols (ESC as "␛", a newline as "␊"), tabs kept.
REASON_CONTROLS = {code: 0x2400 + code for code in range(0x20) if code != 0x09} | {0x7F: 0x2421}


@dataclass
class Timeline:
    """What the reports said, as far as they could be trusted."""

    calls: list[dict] = field(default_factory=list)  # [{"name", "start", "end"}], in order
    open_call: tuple[str, float] | None = None  # (name, start) of the call that hasn't ended
    started_at: float | None = None  # when the package's code began: "import" started
    score: float | None = None
    error: str = ""


class Reports:
    """The report pipe's reader for one run of `plan` ([call, argument, …] steps), from
    `spawned_at` (epoch seconds). `note(text)` says in the run's log that the limit was hit."""

    def __init__(self, plan, *, spawned_at: float, note):
        self.expected = ["import", "__init__", *(step[0] for step in plan)]
        self.spawned_at = spawned_at
        self.note = note
        self.timeline = Timeline()
        self.calls_ended = 0  # calls of `expected` that ended
        self.score_due = False  # evaluate() just ended: its score is the next report
        self.partial = b""  # the line begun, when it is short enough to be one
        self.dropping = False  # the line begun is too long: dropped up to its newline
        self.lines = 0
        self.bytes = 0

    def feed(self, chunk: bytes) -> bool:
        """Take what the pipe gave; False when past the limits: close the pipe, read no more."""
        self.bytes += len(chunk)
        start = 0
        while (end := chunk.find(b"\n", start)) != -1:
            self.lines += 1
            if self.lines > MAX_LINES:
                return self._over(f"{MAX_LINES:,} lines")
            if self.dropping:
                self.dropping = False
            else:
                self._report(self.partial + chunk[start:end])
            self.partial = b""
            start = end + 1
        if not self.dropping:
            if len(self.partial) + len(chunk) - start > MAX_LINE_BYTES:
                self.partial, self.dropping = b"", True
            else:
                self.partial += chunk[start:]
        if self.bytes > MAX_BYTES:
            return self._over(f"{MAX_BYTES // 1024:,} KB")
        return True

    def _over(self, limit: str) -> bool:
        self.note(
            f"the package's code wrote to the runner's report pipe past its limit of {limit}: "
            "the rest of what came on it was ignored"
        )
        return False

    def finish(self, now: float) -> Timeline:
        """The timeline, a call still running cut at `now` (a kill, a time limit)."""
        if self.timeline.open_call:
            name, start = self.timeline.open_call
            self.timeline.calls.append({"name": name, "start": start, "end": max(start, now)})
            self.timeline.open_call = None
        return self.timeline

    def _report(self, line: bytes) -> None:
        try:
            message = json.loads(line)
        except (ValueError, RecursionError):  # not JSON: not the bootstrap's
            return
        if not isinstance(message, dict):
            return
        event = message.get("event")
        if event in ("start", "end"):
            self._call(event, message.get("call"), message.get("t"))
        elif event == "score":
            self._score(message.get("value"))
        elif event == "error" and isinstance(message.get("reason"), str):
            self.timeline.error = message["reason"][:REASON_CHARS].translate(REASON_CONTROLS)

    def _call(self, event: str, name, moment) -> None:
        timeline, self.score_due = self.timeline, False
        if not _finite(moment):
            return
        if event == "start":
            if timeline.open_call or self.calls_ended >= len(self.expected):
                return
            if name != self.expected[self.calls_ended]:
                return
            previous = timeline.calls[-1]["end"] if timeline.calls else self.spawned_at
            start = self._within_run(moment, after=previous)
            timeline.open_call = (name, start)
            if timeline.started_at is None:
                timeline.started_at = start
        elif timeline.open_call and name == timeline.open_call[0]:
            start = timeline.open_call[1]
            timeline.calls.append(
                {"name": name, "start": start, "end": self._within_run(moment, after=start)}
            )
            timeline.open_call = None
            self.calls_ended += 1
            self.score_due = name == "evaluate"

    def _within_run(self, moment: float, *, after: float) -> float:
        # a report is read after it was written, on the same machine's clock: not later than now
        return min(max(moment, after), max(time.time(), after))

    def _score(self, value) -> None:
        if self.score_due and _finite(value):
            self.timeline.score = float(value)
        self.score_due = False


def _finite(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)

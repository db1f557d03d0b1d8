"""The run's metrics_file: package code appends JSON lines {"name", "value", "step"} (or
{"tag", "value"}: a tag of the run); the
worker reads what is new at the log's rhythm and stores it in batches (pipelines/metrics.py),
so points show on the run's page within about two seconds.

The file is the package's, so hostile: it is opened without following links and read only if
it is a regular file; lines, names, metrics and points are capped; a malformed line is skipped
with one note in the log, never a failed run."""

import json
import math
import os
import stat
import time
from contextlib import contextmanager

from django.conf import settings

from pipelines import outages
from pipelines.metrics import metrics_append, metrics_compact
from pipelines.models import PipelineRun
from pipelines.run_values import run_code_record, run_tags_merge
from pipelines.runner.mlflow_store import read_store

# Read what is new this often, on the worker's side, while the run runs: what is left to read
# when it ends is the run's to wait for. Store it in batches this often (pages poll every
# second: points show within ~2 s).
READ_EVERY_SECONDS = 0.25
STORE_EVERY_SECONDS = 1.0
# At most this much of the file is read per turn, so a flood can't stall the run's log.
READ_AT_ONCE_BYTES = 8 * 1024 * 1024
LONGEST_LINE_BYTES = 64 * 1024
# At most this much of the MLflow store is read at the run's end.
MLFLOW_STORE_BYTES = 512 * 1024 * 1024
LONGEST_NAME = 250
MOST_METRICS = 1000
MOST_TAGS = 100  # a flush's worth; run_values keeps a run to as many
STEPS = range(-(2**63), 2**63)  # a step is stored as a 64-bit integer


@contextmanager
def metrics_file(run_id: int, workspace, note):
    """The reader of the run's metrics_file, in the workspace's metrics folder."""
    folder = os.open(workspace.metrics, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        yield MetricsFile(run_id, folder, workspace.metrics_file.name, note)
    finally:
        os.close(folder)


class MetricsFile:
    def __init__(self, run_id: int, folder: int, name: str, note):
        """`folder`: an open descriptor of the folder holding the file (the run can't swap
        that folder itself); `note(text)` writes a platform line in the run's log."""
        self.run_id, self.folder, self.name, self.note = run_id, folder, name, note
        self.offset, self.inode, self.tail, self.skipping = 0, None, b"", False
        self.pending: dict[str, list[tuple]] = {}
        self.tags: dict[str, str] = {}  # tag lines read since the last flush
        self.points, self.names, self.said = 0, set(), set()
        self.read_at = self.stored_at = 0.0
        self.stored_any = False  # nothing to compact at the end of a run that logged nothing
        self.store_pause = STORE_EVERY_SECONDS
        self.project_id = None

    def read_if_due(self) -> None:
        if time.monotonic() - self.read_at >= READ_EVERY_SECONDS:
            self.read()
        if time.monotonic() - self.stored_at >= self.store_pause:
            self.flush(wait=False)

    def finish(self, *, score: float | None = None, mlflow_store=None):
        """Everything the run logged, stored: the rest of its metrics_file, what it logged
        with MLflow (metrics as metrics, params as logged_params), and evaluate()'s score as
        the metric `score`. Called once its processes have ended (killed or failed too: it
        keeps what it logged). Returns the MLflow record (its artifacts are the caller's)."""
        while self.read():
            pass
        self._line(self.tail)  # a last line without its newline
        self.tail = b""
        record = mlflow_store and self._mlflow(mlflow_store)
        if score is not None:
            self.add("score", score)
        self.flush()
        if self.stored_any:
            outages.during_outage(lambda: metrics_compact(self.run_id))
        return record

    def _mlflow(self, root):
        left = max(0, settings.PIPELINE_MAX_METRIC_POINTS - self.points)
        record = read_store(root, max_points=left, max_bytes=MLFLOW_STORE_BYTES)
        if record is None:
            return None
        for note in record.notes:
            self.note(note)
        for name, points in record.metrics.items():
            for step, value, moment in points:
                self._point(name, value, step, moment)
        if record.params or record.tags or record.run_name or record.description:
            outages.during_outage(
                lambda: run_code_record(
                    self.run_id,
                    tags=record.tags,
                    name=record.run_name,
                    description=record.description,
                    logged_params=record.params,
                    note=self.note,
                )
            )
        return record

    def add(self, name: str, value: float, step: int | None = None) -> None:
        """A point from elsewhere (the score evaluate() returned, MLflow's store)."""
        self._point(name, value, step)

    def read(self) -> bool:
        """Read what is new; True if there may be more."""
        self.read_at = time.monotonic()
        try:
            fd = os.open(self.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=self.folder)
        except FileNotFoundError:
            return False
        except OSError:
            self._once("open", "metrics_file can't be read (a link, or not a file): skipped")
            return False
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                self._once("open", "metrics_file is not a regular file: skipped")
                return False
            if info.st_ino != self.inode or info.st_size < self.offset:  # replaced or cut
                self.inode, self.offset, self.tail, self.skipping = info.st_ino, 0, b"", False
            data = os.pread(fd, min(info.st_size - self.offset, READ_AT_ONCE_BYTES), self.offset)
        finally:
            os.close(fd)
        self.offset += len(data)
        self._lines(data)
        return len(data) == READ_AT_ONCE_BYTES

    def flush(self, *, wait: bool = True) -> None:
        """Store the points read so far. The database away (outages.py): `wait` waits for it;
        else the points stay here for the next try, after a pause that doubles."""
        self.stored_at = time.monotonic()
        if not self.pending and not self.tags:
            return

        def store():
            if self.pending:
                metrics_append(self.run_id, self.pending)
            if self.tags and (run := self._run()) is not None:
                run_tags_merge(run, self.tags, note=self._tag_note)

        if wait:
            outages.during_outage(store)
        elif not outages.try_now(store):
            self.store_pause = min(2 * self.store_pause, outages.LONGEST_PAUSE)
            return
        self.store_pause = STORE_EVERY_SECONDS
        self.stored_any = self.stored_any or bool(self.pending)
        self.pending, self.tags = {}, {}

    def _run(self) -> PipelineRun | None:
        """The run as tags need it (its id and project), read once; None when deleted."""
        if self.project_id is None:
            found = PipelineRun.objects.filter(pk=self.run_id).values_list("project_id")
            self.project_id = next(iter(found), (None,))[0]
        if self.project_id is None:
            return None
        return PipelineRun(pk=self.run_id, project_id=self.project_id)

    def _tag_note(self, text: str) -> None:
        self._once(text, f"metrics_file: {text}")

    def _lines(self, data: bytes) -> None:
        *lines, rest = (self.tail + data).split(b"\n")
        for line in lines:
            if self.skipping:  # the rest of a line that was too long
                self.skipping = False
                continue
            self._line(line)
        self.tail = rest
        if len(self.tail) > LONGEST_LINE_BYTES:
            self._malformed(f"a line is longer than {LONGEST_LINE_BYTES:,} bytes")
            self.tail, self.skipping = b"", True

    def _line(self, line: bytes) -> None:
        if not line.strip():
            return
        try:
            point = json.loads(line)
        except ValueError:
            return self._malformed("a line is not JSON")
        if not isinstance(point, dict):
            return self._malformed("a line is not a JSON object")
        if "tag" in point:
            return self._tag(point)
        name, value, step = point.get("name"), point.get("value"), point.get("step")
        if not isinstance(name, str) or not name.strip() or len(name) > LONGEST_NAME:
            return self._malformed(f'"name" must be text of 1 to {LONGEST_NAME} characters')
        if isinstance(value, bool) or not isinstance(value, int | float):
            return self._malformed('"value" must be a number')
        if step is not None and (isinstance(step, bool) or not isinstance(step, int)):
            return self._malformed('"step" must be a whole number')
        if step is not None and step not in STEPS:
            return self._malformed('"step" is out of range')
        self._point(name.strip(), value, step)

    def _tag(self, line: dict) -> None:
        """{"tag": key, "value": text}: kept for the next flush; checked as it is stored."""
        key, value = line["tag"], line.get("value")
        if not isinstance(key, str) or not isinstance(value, str):
            return self._malformed('a tag line is {"tag": "<key>", "value": "<text>"}')
        if len(self.tags) < MOST_TAGS or key in self.tags:
            self.tags[key] = value

    def _point(self, name: str, value, step, moment: float | None = None) -> None:
        try:
            value = float(value)
        except OverflowError:  # an integer too large for a float
            value = math.copysign(math.inf, value)
        if name not in self.names and len(self.names) >= MOST_METRICS:
            return self._once("names", f"more than {MOST_METRICS:,} metrics: the rest skipped")
        if self.points >= settings.PIPELINE_MAX_METRIC_POINTS:
            return self._once(
                "points",
                f"more than {settings.PIPELINE_MAX_METRIC_POINTS:,} metric points: "
                "the rest skipped",
            )
        self.names.add(name)
        self.points += 1
        self.pending.setdefault(name, []).append((step, value, moment or time.time()))

    def _malformed(self, why: str) -> None:
        self._once("malformed", f"metrics_file: {why}; skipped (and any other such line)")

    def _once(self, key: str, text: str) -> None:
        if key not in self.said:
            self.said.add(key)
            self.note(text)

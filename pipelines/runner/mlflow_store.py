"""What a run logged with mlflow, read back from the file store it wrote in its workspace.

A run's environment sets MLFLOW_TRACKING_URI=file://<workspace>/mlruns and
MLFLOW_ALLOW_FILE_STORE=true, so `mlflow.log_metric`, `log_metrics`, `log_param(s)`, `set_tag`
and `log_artifact` write there with no setup in the package; the package brings its own
mlflow-skinny and the platform never imports mlflow. Without an active run, the first such call
starts one implicitly, and mlflow's atexit hook ends it (status FINISHED) when the process exits.

The layout, as mlflow-skinny 3.17.2 writes it (checked by tests/pipelines/test_mlflow_store.py
against a real mlflow-skinny 3.x):

    <root>/.trash/                              deleted experiments (skipped)
    <root>/models/                              the model registry (skipped)
    <root>/<experiment_id>/meta.yaml            "0" is the default experiment
    <root>/<experiment_id>/{tags,datasets,traces,models}/   the experiment's own (skipped)
    <root>/<experiment_id>/<run_id>/meta.yaml   YAML; we read only `start_time: <ms>` and
                                                `lifecycle_stage: deleted` (mlflow.delete_run)
    <root>/<experiment_id>/<run_id>/metrics/<name>   one line per point, "<timestamp ms>
                                                <value> <step>" (+ " <dataset> <digest>" when
                                                logged with a dataset; older mlflow: no step,
                                                read as step 0 as mlflow does), each line
                                                ending in a newline
    <root>/<experiment_id>/<run_id>/params/<name>    the whole file is the value
    <root>/<experiment_id>/<run_id>/tags/<name>      likewise; mlflow's own `mlflow.*` skipped
    <root>/<experiment_id>/<run_id>/artifacts/...    log_artifact(path, artifact_path=...)
    <root>/<experiment_id>/models/<model_id>/meta.yaml   a logged model (MLflow 3's log_model):
                                                we read `name: <name>`, `source_run_id: <run>`
                                                and `creation_timestamp: <ms>`
    <root>/<experiment_id>/models/<model_id>/artifacts/...   its files: MLmodel and the rest

Tags `mlflow.runName` (start_run(run_name=), else a name mlflow made up: `bouncy-cat-123`, which
is not kept) and `mlflow.note.content` (start_run(description=)) are the run's name and notes.
A logged model is kept under `mlflow_models/<name>/` (mlflow_record.MODELS), where
`mlflow.pyfunc.load_model("mlflow_models/<name>")` loads it from the trained version; a name
logged twice is the newest model's.

Names may contain '/' (subfolders: metrics/eval/acc is "eval/acc"). Values are str(value):
'0.1', '3', multi-line text; metric values are repr(float), so 'nan' and 'inf' occur.

Several runs (a package that calls start_run itself, or end_run then logs again) are merged
oldest first, by meta.yaml's start_time (then by folder name): a metric's points are the older
run's followed by the later one's; a param, tag or artifact path the later run also has is the
later run's. Deleted runs are left out.

The store was written by hostile code and is read by the worker, as root: nothing is followed
(every folder and file is opened relative to its parent with O_NOFOLLOW, as collected_files
does), only regular files are read, reading stops at `max_bytes` and `max_points` (and at
MAX_FILES files, MAX_RUNS runs), and garbage is skipped with a note, never raised.
"""

import math
import os
import re
from collections.abc import Iterator
from pathlib import Path

from pipelines.runner.mlflow_record import (
    MetricPoint,
    MlflowRecord,
    printable,
    shown,
)
from sandbox.workspace import (
    UnsafeOutput,
    collected_files,
    open_folder,
    open_regular,
)

SKIPPED_AT_ROOT = {".trash", "models"}
EXPERIMENT_FOLDERS = {"tags", "datasets", "traces", "models"}  # not runs
MAX_RUNS = 100
MAX_FILES = 10_000  # metric, param and tag files, all runs together
MAX_NAME = 250  # mlflow's MAX_ENTITY_KEY_LENGTH
MAX_VALUE = 8000 * 4  # bytes: mlflow's longest value (a tag, 8,000 characters) in UTF-8
MAX_LINE = 1024  # a metric line with a dataset name (500) and digest (36) fits
MAX_META = 64 * 1024
MAX_NOTES = 50
CHUNK = 64 * 1024
INT64 = 2**63

# "<timestamp ms> <value> <step>", optionally " <dataset name> <digest>"; or only two fields
METRIC_LINE = re.compile(rb"(-?[0-9]{1,19}) ([-+.0-9eEnaifNAIF]{1,40})(?: (-?[0-9]{1,19}))?")
START_TIME = re.compile(rb"^start_time: ([0-9]{1,19})\r?$", re.MULTILINE)
DELETED = re.compile(rb"^lifecycle_stage: deleted\r?$", re.MULTILINE)
MODEL_NAME = re.compile(rb"^name: ['\"]?([^'\"\r\n]{1,250})['\"]?\r?$", re.MULTILINE)
SOURCE_RUN = re.compile(rb"^source_run_id: ['\"]?([0-9a-zA-Z]{1,64})['\"]?\r?$", re.MULTILINE)
CREATED = re.compile(rb"^creation_timestamp: ([0-9]{1,19})\r?$", re.MULTILINE)
# the names mlflow makes up for a run nobody named: "<adjective>-<noun>-<0 to 999>"
MADE_UP_NAME = re.compile(r"[a-z]{2,12}-[a-z]{2,12}-[0-9]{1,3}")
NAME_TAG, NOTE_TAG = "mlflow.runName", "mlflow.note.content"


def read_store(root: Path, *, max_points: int, max_bytes: int) -> MlflowRecord | None:
    """What the mlflow file store at `root` holds (see the module docstring); None when there
    is no store. Never raises for what is in the store: problems become `notes`."""
    try:
        top = open_folder(root)
    except UnsafeOutput:
        return MlflowRecord(
            root, notes=[f"mlflow store: {root.name} is a symbolic link or not a folder: not read"]
        )
    if top is None:
        return None
    os.close(top)
    reader = _Reader(MlflowRecord(root), max_points=max_points, max_bytes=max_bytes)
    try:
        reader.read()
    except (OSError, RecursionError) as error:  # say, a disk error: keep what was read
        reader.note(f"reading stopped ({type(error).__name__}: {error})")
    return reader.record


class _Reader:
    def __init__(self, record: MlflowRecord, *, max_points: int, max_bytes: int):
        self.record = record
        self.root = record.root
        self.bytes_left = max_bytes
        self.points_left = max_points
        self.files_left = MAX_FILES
        self.out_of_bytes = self.out_of_points = self.out_of_files = False
        self.max_bytes, self.max_points = max_bytes, max_points

    def note(self, text: str) -> None:
        notes = self.record.notes
        if len(notes) < MAX_NOTES:
            notes.append(f"mlflow store: {printable(text)}")
        elif len(notes) == MAX_NOTES:
            notes.append("mlflow store: more problems, not listed")

    def read(self) -> None:
        experiments = [name for name in self._folders("") if name not in SKIPPED_AT_ROOT]
        runs = [
            f"{experiment}/{run}"
            for experiment in experiments
            for run in self._folders(experiment)
            if run not in EXPERIMENT_FOLDERS
        ]
        if len(runs) > MAX_RUNS:
            self.note(f"more than {MAX_RUNS} runs: the others were not read")
            del runs[MAX_RUNS:]
        meta = {run: self._meta(run) for run in runs}
        for run in sorted(runs, key=lambda run: (meta[run][1], run)):
            if meta[run][0]:
                self.note(f"run {shown(run)} was deleted: not read")
                continue
            self.record.runs.append(run)
            for folder in ("params", "tags", "metrics"):
                read = self._read_metrics if folder == "metrics" else self._read_values
                try:
                    read(run, folder)
                except UnsafeOutput:
                    self.note(
                        f"the {folder} of run {shown(run)} are behind a symbolic link: not read"
                    )
                except (OSError, RecursionError) as error:  # a tree too deep for os.fwalk
                    self.note(
                        f"the {folder} of run {shown(run)} were not all read "
                        f"({type(error).__name__})"
                    )
        self._read_models(experiments)

    def _read_models(self, experiments: list[str]) -> None:
        """The logged models of the runs read, by name: the newest of a name."""
        kept = {run.rsplit("/", 1)[1] for run in self.record.runs}
        found = []
        for experiment in experiments:
            for model in self._folders(f"{experiment}/models"):
                text = self._meta_text(f"{experiment}/models/{model}")
                name, source, created = (
                    pattern.search(text) for pattern in (MODEL_NAME, SOURCE_RUN, CREATED)
                )
                if source and source[1].decode() not in kept:
                    continue  # a deleted run's
                name = name[1].decode("utf-8", errors="replace").strip() if name else model
                if "/" in name or name in (".", "..") or not self._name_ok(name, "model"):
                    self.note(
                        f"logged model {shown(model)} is named {shown(name)}: "
                        f"kept as {shown(model)}"
                    )
                    name = model
                found.append((int(created[1]) if created else 0, model, name, experiment))
        for _, model, name, experiment in sorted(found):
            if name in self.record.models:
                self.note(f"model {shown(name)} was logged more than once: the newest kept")
            self.record.models[name] = f"{experiment}/models/{model}"

    def _folders(self, relative: str) -> list[str]:
        """The real folders in `relative` (links are noted, never followed)."""
        try:
            fd = open_folder(self.root, relative)
        except UnsafeOutput:
            self.note(f"{shown(relative)} is a symbolic link: not read")
            return []
        if fd is None:
            return []
        names = []
        try:
            with os.scandir(fd) as entries:
                for entry in entries:
                    if entry.is_symlink():
                        where = shown(f"{relative}/{entry.name}".lstrip("/"))
                        self.note(f"{where} is a symbolic link: not followed")
                    elif entry.is_dir(follow_symlinks=False):
                        names.append(entry.name)
                        if len(names) > MAX_RUNS + len(EXPERIMENT_FOLDERS):
                            self.note(
                                f"{shown(relative or '.')} has too many folders: "
                                "only some were read"
                            )
                            break
        except OSError as error:
            self.note(f"{shown(relative or '.')} could not be listed ({error.strerror})")
        finally:
            os.close(fd)
        return sorted(names)

    def _meta(self, run: str) -> tuple[bool, int]:
        """(deleted, start time in ms) from the run's meta.yaml; (False, 0) without one."""
        text = self._meta_text(run)
        started = START_TIME.search(text)
        return bool(DELETED.search(text)), int(started[1]) if started else 0

    def _meta_text(self, folder: str) -> bytes:
        """The start of the folder's meta.yaml; b"" without one."""
        try:
            fd = open_folder(self.root, folder)
        except UnsafeOutput:  # noted by _folders
            return b""
        if fd is None:
            return b""
        opened = open_regular("meta.yaml", fd)
        os.close(fd)
        if isinstance(opened, str):
            return b""
        with opened:
            return b"".join(self._chunks(opened, limit=MAX_META))

    def _files(self, run: str, folder: str):
        """(name, open file) of the run's folder, within MAX_FILES and max_bytes."""
        where = f"{run}/{folder}"
        for name, opened in collected_files(self.root, where, note=self.note):
            if self.out_of_bytes or self.out_of_files:
                return
            if self.files_left == 0:
                self.out_of_files = True
                self.note(
                    f"more than {MAX_FILES} metric, param and tag files: the others were not read"
                )
                return
            self.files_left -= 1
            if self._name_ok(name, f"{folder[:-1]} file in run {shown(run)}"):
                yield name, opened

    def _name_ok(self, name: str, what: str) -> bool:
        """A name collected_files gave (UTF-8: it skips the others) that a column can hold."""
        if len(name) > MAX_NAME or not name.isprintable():
            self.note(f"skipped a {what}: its name {shown(name)} is too long or unprintable")
            return False
        return True

    def _read_values(self, run: str, folder: str) -> None:
        into = getattr(self.record, folder)
        for name, opened in self._files(run, folder):
            if folder == "tags" and name.startswith("mlflow.") and name not in (NAME_TAG, NOTE_TAG):
                continue
            data = b"".join(self._chunks(opened, limit=MAX_VALUE + 1))
            if self.out_of_bytes:
                return  # a value cut short is not the value
            if len(data) > MAX_VALUE:
                self.note(f"{folder[:-1]} {shown(name)} is over {MAX_VALUE} bytes: skipped")
                continue
            try:
                value = data.decode("utf-8")
            except UnicodeDecodeError:
                value = data.decode("utf-8", errors="replace")
                self.note(f"{folder[:-1]} {shown(name)} is not UTF-8 text: bad bytes replaced")
            value = value.replace("\x00", "\ufffd")  # no database column takes NUL
            if folder == "tags" and name == NAME_TAG:
                made_up = MADE_UP_NAME.fullmatch(value) and len(value) <= 20
                self.record.run_name = "" if made_up else value
            elif folder == "tags" and name == NOTE_TAG:
                self.record.description = value
            else:
                into[name] = value

    def _read_metrics(self, run: str, folder: str) -> None:
        for name, opened in self._files(run, folder):
            if self.out_of_points:
                return
            points = self.record.metrics.setdefault(name, [])
            bad = 0
            for number, line in self._lines(name, opened):
                point = _point(line)
                if point is None:
                    bad += 1
                    if bad <= 3:
                        self.note(
                            f"metric file {shown(name)} line {number} is not "
                            "'timestamp value step': skipped"
                        )
                    continue
                if self.points_left == 0:
                    self.out_of_points = True
                    self.note(
                        f"more than {self.max_points} metric points: the others were not read"
                    )
                    break
                self.points_left -= 1
                points.append(point)
            if bad > 3:
                self.note(f"metric file {shown(name)}: {bad - 3} more bad lines skipped")
            if not points:
                del self.record.metrics[name]

    def _chunks(self, opened, *, limit: int | None = None) -> Iterator[bytes]:
        """The file's bytes, `limit` at most, each one counted against max_bytes."""
        wanted = limit if limit is not None else math.inf
        while wanted > 0:
            if self.bytes_left <= 0:
                if not self.out_of_bytes and opened.read(1):
                    self.out_of_bytes = True
                    self.note(
                        f"read {self.max_bytes} bytes, the limit: the rest of the store "
                        "was not read"
                    )
                return
            chunk = opened.read(int(min(CHUNK, self.bytes_left, wanted)))
            if not chunk:
                return
            self.bytes_left -= len(chunk)
            wanted -= len(chunk)
            yield chunk

    def _lines(self, name: str, opened) -> Iterator[tuple[int, bytes | None]]:
        """(number, line) of a metric file; None for a line over MAX_LINE bytes. A last line
        with no newline is left out: mlflow ends each line with one, so it is being written
        (or was cut by max_bytes), and its value may be cut short too."""
        number, tail, too_long = 0, b"", False
        for chunk in self._chunks(opened):
            *lines, tail = (tail + chunk).split(b"\n")
            for line in lines:
                number += 1
                yield number, None if too_long or len(line) > MAX_LINE else line
                too_long = False
            if len(tail) > MAX_LINE:
                too_long, tail = True, b""
        if (tail or too_long) and not self.out_of_bytes:
            self.note(f"metric file {shown(name)} ends in an unfinished line: skipped")


def _point(line: bytes | None) -> MetricPoint | None:
    parts = line.strip().split(b" ") if line is not None else []
    if len(parts) not in (2, 3, 5):
        return None
    found = METRIC_LINE.fullmatch(b" ".join(parts[:3]))
    if found is None:
        return None
    timestamp, step = int(found[1]), int(found[3] or 0)
    try:
        value = float(found[2])
    except ValueError:
        return None
    if not (-INT64 <= timestamp < INT64 and -INT64 <= step < INT64):
        return None
    return MetricPoint(step=step, value=value, timestamp=timestamp / 1000)

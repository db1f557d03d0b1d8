"""Reading back what a run logged with mlflow: a store written by a real mlflow-skinny, then
hand-made stores that attack the reader (the worker reads them as root; the user wrote them)."""

import math
import os
import subprocess
import sys
import textwrap
import threading
import time
import tracemalloc

import pytest

from environments.builds import find_uv
from pipelines.runner import mlflow_store
from pipelines.runner.mlflow_store import read_store
from tests.conftest import requires

LIMITS = {"max_points": 10_000, "max_bytes": 10_000_000}
SECRET = "1700000000000 31337.5 7\n"  # a good metric line, a param value: it shows if it is read


@pytest.fixture(scope="session")
def mlflow_python(tmp_path_factory):
    """A Python with mlflow-skinny 3.x, as a package brings it (the platform has no mlflow)."""
    # with uv, as the platform builds a package's environment: pip took 30 s of the suite
    uv = find_uv()
    requires(uv is not None, "uv is not installed (pip install -e '.[dev]')")
    venv = tmp_path_factory.mktemp("mlflow-venv")
    subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(venv)], check=True)
    python = venv / "bin" / "python"
    install = [uv, "pip", "install", "-q", "--python", str(python), "mlflow-skinny>=3,<4"]
    done = subprocess.run(install, capture_output=True, text=True)
    requires(done.returncode == 0, f"mlflow-skinny did not install: {done.stderr[-1500:]}")
    return python


def run_with_mlflow(python, workspace, code):
    """`code` run as a pipeline run's process runs: the tracking store in its workspace."""
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(workspace),
        "MLFLOW_TRACKING_URI": f"file://{workspace}/mlruns",
        "MLFLOW_ALLOW_FILE_STORE": "true",
    }
    script = "import time\nimport mlflow\n" + textwrap.dedent(code)
    done = subprocess.run([python, "-c", script], cwd=workspace, env=env, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    return workspace / "mlruns"


def read(root, **limits):
    return read_store(root, **{**LIMITS, **limits})


def artifacts(record):
    return {path: opened.read() for path, opened in record.artifacts()}


def steps_and_values(record):
    return {name: [(p.step, p.value) for p in points] for name, points in record.metrics.items()}


def test_it_reads_what_mlflow_logged_without_a_run_of_its_own(mlflow_python, tmp_path):
    started = time.time()
    root = run_with_mlflow(
        mlflow_python,
        tmp_path,
        """
        mlflow.log_metric("loss", 0.5, step=1)  # no active run: mlflow starts one
        mlflow.log_metric("loss", 0.25, step=2)
        mlflow.log_metrics({"eval/accuracy": 0.75, "f1": 0.5}, step=2)
        mlflow.log_metric("lr_now", 0.001)
        mlflow.log_param("lr", 0.1)
        mlflow.log_params({"epochs": 3, "note": "two\\nlines"})
        mlflow.set_tag("team", "fraud")
        open("model.txt", "w").write("weights")
        mlflow.log_artifact("model.txt", artifact_path="models")
        """,
    )
    record = read(root)
    assert steps_and_values(record) == {
        "loss": [(1, 0.5), (2, 0.25)],
        "eval/accuracy": [(2, 0.75)],
        "f1": [(2, 0.5)],
        "lr_now": [(0, 0.001)],
    }
    times = [p.timestamp for points in record.metrics.values() for p in points]
    assert all(started - 1 <= t <= time.time() + 1 for t in times)
    assert record.params == {"lr": "0.1", "epochs": "3", "note": "two\nlines"}
    assert record.tags == {"team": "fraud"}  # not mlflow.user, mlflow.runName, ...
    assert artifacts(record) == {"models/model.txt": b"weights"}
    assert len(record.runs) == 1 and record.notes == []


def test_several_runs_are_merged_oldest_first_and_deleted_ones_left_out(mlflow_python, tmp_path):
    root = run_with_mlflow(
        mlflow_python,
        tmp_path,
        """
        mlflow.log_metric("loss", 1.0, step=1)
        mlflow.log_param("lr", 0.1)
        mlflow.log_text("first", "notes.txt")
        mlflow.end_run()
        time.sleep(0.05)
        with mlflow.start_run():
            mlflow.log_metric("loss", 0.5, step=1)
            mlflow.log_param("lr", 0.2)
            mlflow.log_text("second", "notes.txt")
        time.sleep(0.05)
        with mlflow.start_run() as run:
            mlflow.log_metric("loss", 99.0)
        mlflow.delete_run(run.info.run_id)
        """,
    )
    record = read(root)
    assert steps_and_values(record) == {"loss": [(1, 1.0), (1, 0.5)]}
    assert record.params == {"lr": "0.2"}
    assert artifacts(record) == {"notes.txt": b"second"}
    assert len(record.runs) == 2
    assert [n for n in record.notes if "was deleted: not read" in n] == record.notes != []


# A hand-made store, as a hostile package could leave it.


def make_run(root, run="abc", *, started=1700000000000, experiment="0"):
    folder = root / experiment / run
    for name in ("metrics", "params", "tags", "artifacts"):
        (folder / name).mkdir(parents=True)
    (folder / "meta.yaml").write_text(f"run_id: {run}\nstart_time: {started}\n")
    (folder / "metrics" / "loss").write_text("1700000000000 0.5 1\n")
    return folder


@pytest.fixture
def outside(tmp_path):
    """Server files: a secret, and another run's workspace with a store of its own."""
    folder = tmp_path / "outside"
    make_run(folder / "mlruns", "other")
    (folder / "secret").write_text(SECRET)
    return folder


def everything(record):
    return repr(record) + repr(artifacts(record))


def test_no_store_is_none_and_an_empty_one_is_empty(tmp_path):
    assert read(tmp_path / "mlruns") is None
    (tmp_path / "mlruns" / ".trash").mkdir(parents=True)
    record = read(tmp_path / "mlruns")
    assert (record.metrics, record.params, record.runs, record.notes) == ({}, {}, [], [])


def test_no_link_is_followed_anywhere(tmp_path, outside):
    root = tmp_path / "mlruns"
    run = make_run(root)
    for folder in ("metrics", "params", "tags", "artifacts"):
        os.symlink(outside / "secret", run / folder / "stolen")
        os.symlink(outside, run / folder / "server")
    os.symlink(outside / "mlruns" / "0", root / "1")  # an experiment
    os.symlink(outside / "mlruns" / "0" / "other", root / "0" / "other")  # a run
    record = read(root)
    assert "31337" not in everything(record) and record.runs == ["0/abc"]
    assert steps_and_values(record) == {"loss": [(1, 0.5)]}
    assert record.params == record.tags == {}
    # two links in each of the 4 folders, the experiment, the run
    assert len([n for n in record.notes if "symbolic link" in n]) == 2 * 4 + 2


def test_linked_folders_of_a_run_or_the_store_itself_are_not_read(tmp_path, outside):
    root = tmp_path / "mlruns"
    run = root / "0" / "abc"
    (run / "tags").mkdir(parents=True)
    (run / "tags" / "team").write_text("fraud")
    other = outside / "mlruns" / "0" / "other"
    (other / "artifacts" / "key").write_text(SECRET)
    (other / "params" / "key").write_text(SECRET)
    for folder in ("params", "metrics", "artifacts"):
        os.symlink(other / folder, run / folder)
    record = read(root)
    assert record.tags == {"team": "fraud"} and record.metrics == record.params == {}
    assert "31337" not in everything(record)
    assert record.notes == [
        "mlflow store: the params of run '0/abc' are behind a symbolic link: not read",
        "mlflow store: the metrics of run '0/abc' are behind a symbolic link: not read",
        "mlflow store: the artifacts of run '0/abc' are behind a symbolic link: not collected",
    ]

    os.symlink(outside / "mlruns", tmp_path / "linked")
    record = read(tmp_path / "linked")
    assert record.runs == [] and record.notes == [
        "mlflow store: linked is a symbolic link or not a folder: not read"
    ]


def test_fifos_are_skipped_without_blocking(tmp_path):
    root = tmp_path / "mlruns"
    run = make_run(root)
    (run / "meta.yaml").unlink()
    for path in ("meta.yaml", "metrics/stuck", "params/stuck", "tags/stuck", "artifacts/stuck"):
        os.mkfifo(run / path)
    result = {}
    reader = threading.Thread(target=lambda: result.update(r=read(root)), daemon=True)
    reader.start()
    reader.join(timeout=30)
    assert not reader.is_alive(), "the reader blocked on a FIFO"
    record = result["r"]
    assert steps_and_values(record) == {"loss": [(1, 0.5)]}
    assert len([n for n in record.notes if "not a regular file" in n]) == 3
    assert artifacts(record) == {}


def test_a_huge_metric_file_is_read_up_to_max_bytes_in_bounded_memory(tmp_path):
    root = tmp_path / "mlruns"
    run = make_run(root)
    block = "".join(f"17000000{i:05} {i}.25 {i}\n" for i in range(10_000)).encode()
    with open(run / "metrics" / "big", "wb") as big:
        while big.tell() < 50_000_000:
            big.write(block)
    (run / "metrics" / "z").write_text("1 1 1\n")  # after the big file: not read
    tracemalloc.start()
    record = read(root, max_bytes=100_000)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 5_000_000
    assert list(record.metrics) == ["big"]  # not loss, not z
    points = record.metrics["big"]
    assert 3000 < len(points) < 100_000 // 20
    assert all(p.value == p.step + 0.25 for p in points)  # no line cut by the limit
    assert "mlflow store: read 100000 bytes, the limit: the rest of the store was not read" in (
        record.notes
    )


def test_points_stop_at_max_points_and_files_at_max_files(tmp_path, monkeypatch):
    root = tmp_path / "mlruns"
    run = make_run(root)
    for name in ("a", "b", "c"):
        (run / "metrics" / name).write_text("".join(f"1 {i} {i}\n" for i in range(10)))
        (run / "params" / name).write_text(name)
    record = read(root, max_points=15)
    assert [len(points) for points in record.metrics.values()] == [10, 5]
    assert "mlflow store: more than 15 metric points: the others were not read" in record.notes
    monkeypatch.setattr(mlflow_store, "MAX_FILES", 2)
    record = read(root)
    assert record.params == {"a": "a", "b": "b"} and record.metrics == {}
    assert any("more than 2 metric, param and tag files" in n for n in record.notes)


def test_malformed_lines_are_skipped_and_the_good_ones_kept(tmp_path):
    run = make_run(tmp_path / "mlruns")
    lines = [
        b"1700000000000 0.5 1",
        b"not a line",
        b"1700000000001 0.25 2",
        b"1700000000002 abc 3",
        b"1700000000003 0.125",  # an old mlflow's line: no step
        b"1 2 3 4",
        b"1 1e999999999999999999999 5",
        b"9" * 5000,
        b"\xff\xfe\x00 1 2",
        b"1700000000004 nan 4 dataset 0123abcd",
        b"1 1_0 6",
        b"",
        b"1700000000005 -1e-05 99999999999999999999",
        b"1700000000006 3 7\r",
        b"1700000000007 0.2",  # no newline: being written, 0.25 perhaps
    ]
    (run / "metrics" / "loss").write_bytes(b"\n".join(lines))
    record = read(tmp_path / "mlruns")
    points = record.metrics["loss"]
    assert [(p.step, p.value) for p in points if not math.isnan(p.value)] == [
        (1, 0.5),
        (2, 0.25),
        (0, 0.125),
        (5, math.inf),
        (7, 3.0),
    ]
    assert points[1].timestamp == 1700000000.001 and math.isnan(points[4].value)
    assert record.notes == [
        "mlflow store: metric file 'loss' line 2 is not 'timestamp value step': skipped",
        "mlflow store: metric file 'loss' line 4 is not 'timestamp value step': skipped",
        "mlflow store: metric file 'loss' line 6 is not 'timestamp value step': skipped",
        "mlflow store: metric file 'loss' ends in an unfinished line: skipped",
        "mlflow store: metric file 'loss': 5 more bad lines skipped",
    ]


def test_garbage_values_and_names_are_skipped_or_cleaned_with_a_note(tmp_path):
    root = tmp_path / "mlruns"
    run = make_run(root)
    (run / "meta.yaml").write_bytes(b"\xff\x00" * 1000)
    (run / "params" / "binary").write_bytes(b"\xffok\x00")
    (run / "params" / "huge").write_bytes(b"x" * 1_000_000)
    (run / "tags" / "mlflow.user").write_text("root")
    folder = os.fsencode(run)
    for where, name in [(b"metrics", b"\xff"), (b"params", b"caf\xe9"), (b"artifacts", b"\xfe")]:
        with open(os.path.join(folder, where, name), "wb") as f:
            f.write(SECRET.encode())
    (run / "tags" / "new\nline").write_text("v")
    os.symlink("/nowhere", os.path.join(folder, b"artifacts", b"\xfd\n"))
    record = read(root)
    assert steps_and_values(record) == {"loss": [(1, 0.5)]}
    assert record.params == {"binary": "\ufffdok\ufffd"} and record.tags == {}
    assert artifacts(record) == {}
    notes = record.notes
    assert any("'binary' is not UTF-8 text" in n for n in notes)
    assert any("'huge' is over 32000 bytes" in n for n in notes)
    assert any("metrics/\\xff: its name is not UTF-8" in n for n in notes)
    assert any("name 'new\\nline' is too long or unprintable" in n for n in notes)
    assert any("artifacts/\\xfe: its name is not UTF-8" in n for n in notes)
    assert any("artifacts/\\xfd\\n: its name is not UTF-8" in n for n in notes)
    for note in notes:
        assert note.isprintable() and note.encode("utf-8")


def test_a_tree_too_deep_to_walk_is_noted_not_raised(tmp_path):
    root = tmp_path / "mlruns"
    run = make_run(root)
    fd = os.open(run / "metrics", os.O_RDONLY)
    for _ in range(3000):
        os.mkdir("d", dir_fd=fd)
        fd, parent = os.open("d", os.O_RDONLY, dir_fd=fd), fd
        os.close(parent)
    os.close(fd)
    try:
        record = read(root)
        assert steps_and_values(record) == {"loss": [(1, 0.5)]}
        # the walk stops where paths get longer than a manifest holds, long before the stack
        assert any("/d/d/: its path is longer than 1000 bytes" in n for n in record.notes)
    finally:  # shutil.rmtree (and so pytest) recurses too: flatten the tree first
        top = run / "metrics" / "d"
        while (top / "d").exists():
            os.rename(top / "d", run / "metrics" / "next")
            os.rmdir(top)
            os.rename(run / "metrics" / "next", top)


def test_runs_merge_by_start_time_and_a_later_run_wins(tmp_path):
    root = tmp_path / "mlruns"
    later, earlier = make_run(root, "a", started=2000), make_run(root, "b", started=1000)
    (later / "metrics" / "loss").write_text("2000 0.25 2\n")
    (later / "metrics" / "x").mkdir()
    (later / "metrics" / "x" / "y").write_text("2000 1 1\n")
    for folder, lr in ((earlier, "0.1"), (later, "0.2")):
        (folder / "params" / "lr").write_text(lr)
        (folder / "artifacts" / "model.txt").write_text(lr)
    (earlier / "artifacts" / "plots").write_text("a file here, a folder in the later run")
    (later / "artifacts" / "plots").mkdir()
    (later / "artifacts" / "plots" / "loss.png").write_text("png")
    deleted = make_run(root, "c", started=3000, experiment="7")
    (deleted / "meta.yaml").write_text("start_time: 3000\nlifecycle_stage: deleted\n")
    record = read(root)
    assert record.runs == ["0/b", "0/a"]
    assert steps_and_values(record) == {"loss": [(1, 0.5), (2, 0.25)], "x/y": [(1, 1.0)]}
    assert record.params == {"lr": "0.2"}
    assert artifacts(record) == {"model.txt": b"0.2", "plots/loss.png": b"png"}
    assert record.notes == [
        "mlflow store: run '7/c' was deleted: not read",
        "mlflow store: skipped artifact 'plots': a file and a folder of one name in two runs",
    ]

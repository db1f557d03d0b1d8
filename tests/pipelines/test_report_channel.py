"""The report channel, attacked: package code runs in the bootstrap's own process, so it can find
the runner's report pipe among its open files and write anything to it. Each test is such a run,
for real (bubblewrap, the runner in this process, as a worker runs it): the run ends as its own
code says, the worker's memory stays bounded, its timeline stays the bootstrap's and its score
is evaluate()'s alone."""

import io
import textwrap
import threading
import time

import pytest

from datasets.services import dataset_create, dataset_file_put
from packages.services import package_create
from pipelines.runner.run import run_pipeline
from pipelines.services import pipeline_run_create
from sandbox.reports import MAX_LINE_BYTES, Reports
from tests.conftest import upload
from tests.factories import package_zip
from tests.pipelines.sandboxing import log_of

pytestmark = [
    pytest.mark.usefixtures("sandbox_available"),
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("runs_stay_here"),
]

# Package code's way to the pipe: every open descriptor it may write to, tried in turn (a write
# that fails, on the pipe the runner closed or on anything else, is shrugged off).
FORGE = """\
import os


def forge(data, chunk=1 << 20):
    for fd in range(3, 64):
        try:
            for start in range(0, len(data), chunk):
                os.write(fd, data[start : start + chunk])
        except OSError:
            pass

"""

PHASES = ["python", "import", "__init__"]


def package(*, train="pass", evaluate="return 0.5", save="pass", process_data="pass") -> str:
    """train.py: Main's methods with these bodies (forge() at hand)."""
    methods = {
        "process_data(self, data_directory)": process_data,
        "train(self, data_directory)": train,
        "evaluate(self, evaluation_directory)": evaluate,
        "save(self)": save,
    }
    source = FORGE + "class Main:\n    def __init__(self):\n        pass\n"
    for signature, body in methods.items():
        source += f"\n    def {signature}:\n" + textwrap.indent(body, " " * 8) + "\n"
    return source


def run_package(project, user, source, *, type="train", max_run_seconds=None):
    package_create(
        project=project,
        user=user,
        name="boot",
        file=upload(content=package_zip(**{"train.py": source})),
    )
    dataset = dataset_create(project=project, user=user, name="d")
    dataset_file_put(user=user, dataset=dataset, path="a.csv", fileobj=io.BytesIO(b"1,2\n"))
    run = pipeline_run_create(
        project=project,
        user=user,
        type=type,
        package="boot",
        version="1.0",
        dataset="d",
        max_run_seconds=max_run_seconds,
    )
    run_pipeline(run)
    run.refresh_from_db()
    return run


def resident_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


class PeakMemory:
    """This process's (the worker's, running the run) resident memory, sampled while the block
    runs: its highest value over what it was before."""

    def __enter__(self):
        self.before = self.peak = resident_bytes()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self):
        while not self.done.wait(0.02):
            self.peak = max(self.peak, resident_bytes())

    def __exit__(self, *exc):
        self.done.set()
        self.thread.join()

    @property
    def grew(self) -> int:
        return self.peak - self.before


def phase_names(run) -> list[str]:
    names = [phase["name"] for phase in run.phases]
    return names[names.index("python") :]


def test_a_million_forged_timeline_events_leave_the_timeline_and_the_worker_as_they_were(
    db, project, bob
):
    forged = b'{"event": "start", "call": "train", "t": 1.0}\n'
    forged += b'{"event": "end", "call": "x%d", "t": 2.0}\n'
    source = package(train=f"forge(b''.join({forged!r} % i for i in range(500_000)))")
    with PeakMemory() as memory:
        run = run_package(project, bob, source)
    assert run.status == "successful", run.failure_reason
    assert memory.grew < 60 * 2**20, f"the worker grew by {memory.grew / 2**20:.0f} MB"
    # past the limit the pipe was closed: what the bootstrap said after that is lost too, and
    # train, which never said it ended, lasts until the package's process did
    assert phase_names(run) == [*PHASES, "train", "upload"]
    assert len(str(run.phases)) < 2000
    log = log_of(run)
    assert log.count("report pipe") == 1, log  # said once, however much more came


def test_a_flood_without_newlines_is_dropped_as_it_streams(db, project, bob):
    # 200 MB in one line, 1 MB at a time: the runner reads what the limit allows, then stops
    source = package(
        train='block = b"[" * (1 << 20)\nfor _ in range(200):\n    forge(block)\nprint("flooded")'
    )
    started = time.monotonic()
    with PeakMemory() as memory:
        run = run_package(project, bob, source, max_run_seconds=60)
    assert run.status == "successful", run.failure_reason
    assert time.monotonic() - started < 30
    assert memory.grew < 60 * 2**20, f"the worker grew by {memory.grew / 2**20:.0f} MB"
    assert phase_names(run) == [*PHASES, "train", "upload"]
    log = log_of(run)
    assert "flooded" in log and log.count("report pipe") == 1, log


def test_the_score_of_a_full_run_is_evaluates_alone(db, project, bob):
    score = b'{"event": "score", "value": 1e308}\n'
    end = b'{"event": "end", "call": "evaluate", "t": 1.0}\n'
    run = run_package(
        project,
        bob,
        package(
            process_data=f"forge({end + score!r})",  # before evaluate: not its score
            train=f"forge({score!r})",
            save=f"forge({score + end + score!r})",  # after: evaluate's was said already
        ),
        type="full",
    )
    assert run.status == "successful", run.failure_reason
    assert run.score == 0.5
    assert phase_names(run) == [*PHASES, "process_data", "train", "evaluate", "save", "upload"]


def test_a_forged_score_inside_evaluate_is_not_its_score(db, project, bob):
    run = run_package(
        project,
        bob,
        package(evaluate='forge(b\'{"event": "score", "value": 1e308}\\n\')\nreturn 0.25'),
        type="full",
    )
    assert run.status == "successful", run.failure_reason
    assert run.score == 0.25


def test_a_training_run_has_no_score_whatever_it_reports(db, project, bob):
    score = b'{"event": "score", "value": 1e308}\n{"event": "end", "call": "evaluate", "t": 1.0}\n'
    run = run_package(project, bob, package(train=f"forge({score * 3!r})"))
    assert run.status == "successful", run.failure_reason
    assert run.score is None


def test_forged_times_stay_within_the_run(db, project, bob):
    times = b'{"event": "end", "call": "train", "t": 1e300}\n'
    run = run_package(project, bob, package(train=f"forge({times!r})"))
    assert run.status == "successful", run.failure_reason
    spans = [(phase["start"], phase["end"]) for phase in run.phases]
    assert all(start <= end <= time.time() for start, end in spans), spans


def test_a_line_too_long_is_dropped_piece_by_piece_and_the_next_one_is_read():
    spawned_at = time.time() - 10
    reports = Reports([["train", "./data"]], spawned_at=spawned_at, note=print)
    # the long line would say that the package's code started when its process did
    assert reports.feed(b'{"event": "start", "call": "import", "t": 1, "x": "')
    for _ in range(MAX_LINE_BYTES // 1000 + 5):  # longer than a line may be, as it streams
        assert reports.feed(b"y" * 1000)
        assert len(reports.partial) <= MAX_LINE_BYTES
    now = time.time()
    assert reports.feed(b'"}\n{"event": "start", "call": "import", "t": %f}\n' % now)
    assert reports.timeline.open_call == ("import", pytest.approx(now))

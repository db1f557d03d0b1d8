"""The bootstrap: what runs in the package's process before and around its code. It loads
nothing heavy before the package's code (its imports are every run's start), and its hand-written
reports carry any text the package's exception says."""

import pytest

from tests.pipelines.sandboxing import files_of, run_here

pytestmark = [
    pytest.mark.usefixtures("sandbox_available"),
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("runs_stay_here"),
]

HEAVY = ("json", "re", "traceback", "ctypes", "linecache", "tokenize")


def run_package(project, user, source):
    return run_here(project, user, None, name="boot", source=source)


def test_the_package_starts_with_none_of_the_heavy_modules_loaded(db, project, bob):
    run = run_package(
        project,
        bob,
        f"""\
import sys
LOADED = " ".join(m for m in {HEAVY!r} if m in sys.modules)
import os


class Main:
    def __init__(self):
        pass

    def train(self, data_directory):
        os.makedirs(os.environ["artifacts_directory"], exist_ok=True)
        with open(os.path.join(os.environ["artifacts_directory"], "loaded.txt"), "w") as f:
            f.write(LOADED or "none")

    def evaluate(self, evaluation_directory):
        return 1.0

    def save(self):
        pass
""",
    )
    assert run.status == "successful", run.failure_reason
    assert files_of(run.artifacts)["loaded.txt"] == b"none"
    names = [phase["name"] for phase in run.phases]
    assert names[names.index("python") :] == [
        "python",
        "import",
        "__init__",
        "train",
        "save",
        "upload",
    ]


def test_a_reason_keeps_quotes_backslashes_and_any_script(db, project, bob):
    message = 'say "hi" \\ to the ünïcode ✓ 数据\tend'
    run = run_package(
        project,
        bob,
        f"""\
class Main:
    def __init__(self):
        pass

    def train(self, data_directory):
        raise ValueError({message!r})

    def evaluate(self, evaluation_directory):
        return 1.0

    def save(self):
        pass
""",
    )
    assert run.status == "failed"
    assert run.failure_reason == 'ValueError: say "hi" \\ to the ünïcode ✓ 数据\tend'


def test_garbage_the_package_writes_to_the_report_pipe_changes_nothing(db, project, bob):
    # the attack: the package finds the runner's report pipe among its open files and writes
    # lines that are not reports, a report of no known kind, and a report without its fields
    run = run_package(
        project,
        bob,
        """\
import os


class Main:
    def __init__(self):
        pass

    def train(self, data_directory):
        for fd in range(3, 64):
            try:
                os.write(fd, b'{"event": "start"}\\n\\x00{{{not json\\n{"event": "boom"}\\n'
                         + b'{"event": "start", "call": ["x"], "t": 1}\\n'
                         + b'{"event": "end", "call": "train", "t": "soon"}\\n'
                         + b'{"event": "score", "value": "high"}\\n'
                         + b"[" * 100000 + b"\\n" + b"x" * 200000 + b"\\n")
            except OSError:
                pass

    def evaluate(self, evaluation_directory):
        return 1.0

    def save(self):
        pass
""",
    )
    assert run.status == "successful", run.failure_reason
    names = [phase["name"] for phase in run.phases]
    assert names[names.index("python") :] == [
        "python",
        "import",
        "__init__",
        "train",
        "save",
        "upload",
    ]
    assert all(isinstance(phase["end"], float) for phase in run.phases)
    assert run.score is None

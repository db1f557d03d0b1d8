"""The traceback that failed a run, taken from its log and cleaned for its page; and the
host's paths taken out of any text a package's author reads (a run's reason, a skill's).

The log keeps what the process printed, word for word; the page shows the traceback under the
failure reason the way the package's author wants to read it: without the runner's own frames
(pipelines/runner/bootstrap.py runs as "<string>" and calls the package through `_timed`) and
with the paths of the run's workspace shown relative to the package (`train.py`, not
`/srv/aicenter/workspaces/run-7-k2j4/package/train.py`). Where the platform keeps its data,
workspaces and environments on the server is no business of a package's author: pages show
none of it."""

import re

from django.conf import settings

HEADER = "Traceback (most recent call last):"
CHAINED = (
    "During handling of the above exception, another exception occurred:",
    "The above exception was the direct cause of the following exception:",
)
LOG_TIME = re.compile(r"^\d\d:\d\d:\d\d\.\d{3} ")  # RunLog's time at the start of each line
RUNNER_FRAME = re.compile(r'^  File "<string>", line \d+, in ')
# Where the environment's libraries and Python's own modules live on the worker: only the part
# from site-packages/ (or python3.x/) on means anything to a user.
LIBRARY_PREFIX = re.compile(r"/[^\s\"']*/(?=(?:site|dist)-packages/)")
STDLIB_PREFIX = re.compile(r'(?<=File ")/[^"]*?/(?=python3\.\d+/)')


def failure_traceback(log: str, *, run_id: int) -> str:
    """The last traceback in `log` (a chained one whole), cleaned for the run's page; "" when
    the log has none."""
    lines = [LOG_TIME.sub("", line) for line in log.splitlines()]
    headers = [i for i, line in enumerate(lines) if line == HEADER]
    if not headers:
        return ""
    start = _chain_start(lines, headers)
    end = headers[-1] + 1
    while end < len(lines) and lines[end].startswith(" "):  # the frames of the last one
        end += 1
    # then the exception, which may take several lines, up to the platform's next line
    while end < len(lines) and lines[end].strip() and not lines[end].startswith("[aicenter]"):
        end += 1
    workspace = run_workspace(run_id)
    kept, in_runner_frame = [], False
    for line in lines[start:end]:
        if RUNNER_FRAME.match(line):
            in_runner_frame = True  # its source lines (if any) go with it
            continue
        if in_runner_frame and line.startswith("    "):
            continue
        in_runner_frame = False
        kept.append(package_relative(line, workspace=workspace))
    return "\n".join(kept)


def run_workspace(run_id: int) -> re.Pattern:
    """The run's workspace, wherever the worker had it, with its package folder."""
    return re.compile(rf"/[^\s\"']*?/run-{run_id}-[^/\s\"']+/(?:package/)?")


def package_relative(text: str, *, workspace: re.Pattern | str | None) -> str:
    """`text` with the host's paths as the package's author knows them: the `workspace`'s
    (its folder, or a pattern of it) relative to the package, an environment's libraries
    from site-packages/ on and its other files from its own folder on, Python's modules from
    python3.x/ on, anything else of the data dir as <data dir>."""
    if isinstance(workspace, str):
        workspace = re.compile(re.escape(workspace.rstrip("/")) + "/(?:package/)?")
    if workspace is not None:
        text = workspace.sub("", text)
    text = LIBRARY_PREFIX.sub("", text)
    text = STDLIB_PREFIX.sub("", text)
    text = _environments().sub("", text)
    return text.replace(str(settings.DATA_DIR), "<data dir>")


def _environments() -> re.Pattern:
    """An environment's folder (`<ENVIRONMENTS_DIR>/<key>/`): read when asked, as tests move it."""
    return re.compile(re.escape(str(settings.ENVIRONMENTS_DIR)) + r"/[^/\s\"']+/")


def _chain_start(lines: list[str], headers: list[int]) -> int:
    """The first traceback of the chain the last one ends ("During handling of the above
    exception…"): the user needs the whole story, the first error is often the real one."""
    start = headers[-1]
    for header in reversed(headers[:-1]):
        before = start - 1
        while before > header and not lines[before].strip():
            before -= 1
        if lines[before] not in CHAINED:
            break
        start = header
    return start

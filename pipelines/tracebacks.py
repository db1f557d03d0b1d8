"""The traceback that failed a run, taken from its log and cleaned for its page.

The log keeps what the process printed, word for word; the page shows the traceback under the
failure reason the way the package's author wants to read it: without the runner's own frames
(sandbox/bootstrap.py runs as "<string>" and calls the package through `_timed`) and
with the paths of the run's workspace shown relative to the package (`train.py`, not
`/srv/aicenter/workspaces/run-7-k2j4/package/train.py`)."""

import re

HEADER = "Traceback (most recent call last):"
CHAINED = (
    "During handling of the above exception, another exception occurred:",
    "The above exception was the direct cause of the following exception:",
)
LOG_TIME = re.compile(r"^\d\d:\d\d:\d\d\.\d{3} ")  # RunLog's time at the start of each line
RUNNER_FRAME = re.compile(r'^  File "<string>", line \d+, in ')
# Where the environment's libraries and Python's own modules live on the worker: only the part
# from site-packages/ (or python3.x/) on means anything to a user.
LIBRARY_PREFIX = re.compile(r'(?<=File ")/[^"]*/(?=(?:site|dist)-packages/)')
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
    workspace = re.compile(rf"/[^\s\"']*?/run-{run_id}-[^/\s\"']+/(?:package/)?")
    kept, in_runner_frame = [], False
    for line in lines[start:end]:
        if RUNNER_FRAME.match(line):
            in_runner_frame = True  # its source lines (if any) go with it
            continue
        if in_runner_frame and line.startswith("    "):
            continue
        in_runner_frame = False
        line = workspace.sub("", line)
        kept.append(STDLIB_PREFIX.sub("", LIBRARY_PREFIX.sub("", line)))
    return "\n".join(kept)


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

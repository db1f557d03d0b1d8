"""The server's paths taken out of what a package's author reads (a run's failure reason and
traceback, a skill's load failure): where the platform keeps its data, workspaces and
environments is no business of theirs, and a path relative to their package is the one they
know (`train.py`, not `/srv/aicenter/workspaces/run-7-k2j4/package/train.py`)."""

import re

from django.conf import settings

# Where an environment's libraries and Python's own modules live on the machine: only the part
# from site-packages/ (or python3.x/) on means anything to a user.
LIBRARY_PREFIX = re.compile(r"/[^\s\"']*/(?=(?:site|dist)-packages/)")
STDLIB_PREFIX = re.compile(r'(?<=File ")/[^"]*?/(?=python3\.\d+/)')


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

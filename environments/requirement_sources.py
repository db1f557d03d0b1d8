"""Where a package's requirements come from is the operator's choice, not the package's.

A requirements.txt may name packages, versions, extras, markers and hashes: the worker installs
them from the package index the operator configured. Any line that would change where packages
come from (or how the installer behaves) is refused, naming the line:

- option lines (`-i/--index-url`, `--extra-index-url`, `-f/--find-links`, `--trusted-host`,
  `-e/--editable`, `-r`/`-c` nested files, and every other option);
- direct URLs (`name @ https://…`, bare `http(s)://…`, `git+…`) and local paths (`./x`, `/x`,
  `file:…`, a `.whl` or archive name);
- per-requirement options other than `--hash` (which only narrows what is accepted).

Lines are read as pip and uv read them: a trailing backslash joins the next line, `#` at the
start or after whitespace begins a comment. Checked at upload and again before every build (a
version trained by a run carries the requirements.txt the run left).
"""

import re
from dataclasses import dataclass

from packaging.requirements import InvalidRequirement, Requirement

COMMENT = re.compile(r"(^|\s+)#.*$")
# Names the installers take for a local file to install, not for a project on the index.
ARCHIVE_SUFFIXES = (".whl", ".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz", ".tar.xz")
NOTE = (
    "Only package names, versions, extras, markers and --hash are allowed: packages come from "
    "the package index the operator configured (who may allow such lines with "
    "AICENTER_REQUIREMENTS_ALLOW_SOURCES=true)."
)


@dataclass(frozen=True)
class RefusedLine:
    number: int  # of the line in the text checked (its first, for a joined line)
    text: str
    why: str

    def message(self, *, numbered: bool = True) -> str:
        where = f"requirements.txt line {self.number}" if numbered else "requirements.txt"
        shown = self.text if len(self.text) <= 200 else self.text[:200] + "…"
        return f"{where}: '{shown}' {self.why}."


def logical_lines(text: str):
    """(number, line) of each requirement line, joined and without comments, as pip reads them."""
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if not pending:
            start = number
        if raw.endswith("\\"):
            pending += raw[:-1]
            continue
        line = COMMENT.sub("", pending + raw).strip()
        pending = ""
        if line:
            yield start, line
    if line := COMMENT.sub("", pending).strip():
        yield start, line


def _why_refused(line: str) -> str:
    """Why a requirement line is refused, or '' when it only names what to install."""
    if line.startswith("-"):
        return "is an option, which may change where packages come from"
    words = line.split()
    first = next((i for i, word in enumerate(words) if word.startswith("-")), len(words))
    options = iter(words[first:])
    for option in options:
        if option == "--hash":
            next(options, None)  # its value
        elif not option.startswith("--hash="):
            return f"carries the option {option}"
    try:
        requirement = Requirement(" ".join(words[:first]))
    except InvalidRequirement:
        return "is a URL or a path, not a package name"
    if requirement.url:
        return "installs from a URL or a path instead of the package index"
    if requirement.name.lower().endswith(ARCHIVE_SUFFIXES):
        return "names a file to install instead of a package on the index"
    return ""


def refused_lines(text: str) -> list[RefusedLine]:
    """Every line of a requirements.txt that changes where packages come from."""
    refused = []
    for number, line in logical_lines(text):
        if why := _why_refused(line):
            refused.append(RefusedLine(number, line, why))
    return refused


def refusals(text: str, *, numbered: bool = True) -> list[str]:
    """What to tell the user about a requirements.txt: each refused line, then what is allowed
    (nothing when every line is fine)."""
    messages = [line.message(numbered=numbered) for line in refused_lines(text)]
    return [*messages, NOTE] if messages else []


URL = re.compile(r"(?:git\+|hg\+|svn\+|bzr\+)?(https?://[^\s;#'\"]+)")


def source_urls(text: str) -> list[str]:
    """The http(s) URLs a requirements.txt names (for an operator who allows such lines: the
    builds may then reach their hosts)."""
    return [match.group(1) for _, line in logical_lines(text) for match in URL.finditer(line)]

"""How a run's log is written and shown so that its package can't pass for the platform.

A log is text, one line per line of output, each starting with the time it came
("HH:MM:SS.mmm "): the logs API serves it as it is (text/plain), the run's page shows it.
The platform's own lines follow the time with "[aicenter] " (PLATFORM_MARK), and only they:
which lines are the platform's is decided by who writes them (RunLog.platform, never the
package's output), not by what they say. So:

- a line of the package's output that would start with the mark is written with a backslash
  before it ("\\[aicenter] Successful"): shown as it was printed, and never as the platform's;
- what a terminal or a browser would act on instead of showing is made visible: control
  characters as their Unicode symbols (ESC as "␛", so a colour code reads "␛[31m"), C1 controls
  and the characters that reorder or break lines invisibly as "\\x9b", "\\u202e"; nothing is
  dropped, so nothing is hidden. A line ends with "\\n" only (a "\\r" of a progress bar ends one);
- the page (logs.log_html) marks a line as the platform's when it starts the log, or follows a
  newline, with the time and the mark: no text of the package's can be there.
"""

import re

# Tabs and newlines stay; every other control character, and what reorders or breaks lines in a
# browser without showing (bidirectional overrides, line and paragraph separators), is shown.
HIDDEN = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")
# In a platform line (one line, whatever it quotes), newlines and returns are shown too.
HIDDEN_IN_A_LINE = re.compile(f"[\n\r{HIDDEN.pattern[1:-1]}]")
PLATFORM_LINE = re.compile(r"^\d\d:\d\d:\d\d\.\d{3} \[aicenter\] [^\n]*", re.MULTILINE)


def symbol(match: re.Match) -> str:
    character = match.group()
    code = ord(character)
    if code < 0x20:
        return chr(0x2400 + code)  # the Control Pictures block: ␀ … ␟
    if code == 0x7F:
        return "\u2421"  # ␡
    return repr(character)[1:-1]  # \x9b, \u202e


def visible(text: str) -> str:
    """The package's output as a log holds it: line ends as "\\n", controls made visible."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return HIDDEN.sub(symbol, text)


def visible_line(text: str) -> str:
    """Text on one line of the platform's (a reason, a file name): nothing in it breaks it."""
    return HIDDEN_IN_A_LINE.sub(symbol, text)

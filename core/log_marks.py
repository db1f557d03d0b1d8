"""The mark that starts the platform's own lines in a log ("[aicenter] …"), and how a line of
a package's output (a run's, or its environment build's installer's) is kept from passing for
one: it gets a backslash first. Shared by run logs and the environment builds' records."""

PLATFORM_MARK = "[aicenter] "


def as_output(piece: str) -> str:
    """The start of a line of the package's output, never taken for the platform's: one that
    starts with the mark, or with what may become it as more comes, gets a backslash first."""
    mark = PLATFORM_MARK.rstrip()
    if piece.startswith(mark) or (mark.startswith(piece.rstrip("\n")) and "\n" not in piece):
        return "\\" + piece
    return piece


def marked_as_output(text: str, *, at_line_start: bool) -> tuple[str, bool]:
    """`text` (a piece of output that continues where the last ended) with each of its lines
    that starts with the mark escaped; and whether it ends at the start of a line."""
    pieces = []
    for piece in text.splitlines(keepends=True):
        pieces.append(as_output(piece) if at_line_start else piece)
        at_line_start = piece.endswith("\n")
    return "".join(pieces), at_line_start

"""The JSON API's error body, for every status an operation can answer besides success."""

from ninja import Schema


class ErrorOut(Schema):
    """What went wrong; for invalid input (400, 409, 422) each field's messages too."""

    detail: str
    errors: dict[str, list[str]] = {}


# What a query parameter's pattern asks for, in words: pydantic's own message only quotes the
# regular expression. The 422 handler (aicenter/api.py) says this instead.
PATTERN_HINTS: dict[str, str] = {}


def pattern(regex: str, hint: str) -> str:
    """`regex`, for Query(pattern=…), remembered with the sentence a person reads instead."""
    PATTERN_HINTS[regex] = hint
    return regex

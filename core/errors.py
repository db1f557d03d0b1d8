"""The errors vocabulary: the JSON API's error body, for every status an operation can answer
besides success, and the two kinds of invalid input it answers 409 instead of 400."""

from django.core.exceptions import ValidationError
from ninja import Schema

DUPLICATE, CONFLICT = "duplicate", "conflict"


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


def name_taken(message: str) -> ValidationError:
    """The error for a name that already exists: a form error on the pages, 409 in the API
    (which tells it from other invalid input by its code)."""
    return ValidationError(message, code=DUPLICATE)


def conflict(message: str) -> ValidationError:
    """The error for a change the thing's present state refuses (runs use it, it is still
    running, it has already finished): said like any error on the pages, 409 in the API, as
    the request itself was valid."""
    return ValidationError(message, code=CONFLICT)


def is_conflict(error: ValidationError) -> bool:
    """Every problem in `error` is a name that already exists or a state that refuses it."""
    if hasattr(error, "error_dict"):
        problems = [e for errors in error.error_dict.values() for e in errors]
    else:
        problems = error.error_list
    return bool(problems) and all(e.code in (DUPLICATE, CONFLICT) for e in problems)

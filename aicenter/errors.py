"""The JSON API's error body, for every status an operation can answer besides success."""

from ninja import Schema


class ErrorOut(Schema):
    """What went wrong; for invalid input (400, 409, 422) each field's messages too."""

    detail: str
    errors: dict[str, list[str]] = {}

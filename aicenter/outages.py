"""What a request answers when something it needs is away: the database, Redis, the storage,
or space on the disk. A client must tell "try again later" from a bug, so every API path
answers JSON 503 with `Retry-After` (507 when the disk is full: retrying won't help until
space is freed) and pages show a styled "temporarily unavailable" page. Anything else that
escapes a view is a 500, JSON under /api/ and a styled page elsewhere.

Django calls `server_error` (the project's handler500) inside the `except` block that caught
the exception, wherever it was raised (a view, a middleware, the session or auth lookup), so
the exception is still at hand in sys.exc_info() to be classified."""

import errno
import logging
import sys

import redis
from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, JsonResponse
from django.template.loader import render_to_string

logger = logging.getLogger(__name__)
RETRY_AFTER_SECONDS = 10
API_PREFIX = "/api/"
REDIS_AWAY = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
DISK_FULL = {errno.ENOSPC, errno.EDQUOT}
MESSAGES = {
    "database": "The database can't be reached right now; nothing was changed. Try again in a "
    "few seconds.",
    "redis": "The queue (Redis) can't be reached right now. Try again in a few seconds.",
    "storage": "File storage can't be reached right now; nothing was stored. Try again in a "
    "few seconds.",
    "disk full": "The server's disk is full; nothing was stored. An operator must free space "
    "before uploads can be stored again.",
}


def _storage_errors() -> tuple:
    try:
        from botocore.exceptions import ConnectionError as BotoConnectionError
        from botocore.exceptions import ConnectTimeoutError, ReadTimeoutError
    except ImportError:  # pragma: no cover - boto3 is a dependency
        return ()
    return (BotoConnectionError, ConnectTimeoutError, ReadTimeoutError)


STORAGE_AWAY = _storage_errors()


def outage_of(error: BaseException | None) -> str | None:
    """Which outage `error` (or an exception it was raised from) tells of, if any."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, (OperationalError, InterfaceError)):
            return "database"
        if isinstance(error, REDIS_AWAY):
            return "redis"
        if isinstance(error, OSError) and error.errno in DISK_FULL:
            return "disk full"
        if isinstance(error, STORAGE_AWAY) or (
            isinstance(error, OSError) and error.errno == errno.EIO
        ):
            return "storage"
        error = error.__cause__ or error.__context__
    return None


def outage_response(request, outage: str) -> HttpResponse:
    status = 507 if outage == "disk full" else 503
    detail = MESSAGES[outage]
    if request.path.startswith(API_PREFIX):
        response = JsonResponse({"detail": detail, "unavailable": outage}, status=status)
    else:
        html = render_to_string(
            "error_page.html",
            {"title": "Temporarily unavailable", "message": detail, "retry": status == 503},
        )
        response = HttpResponse(html, status=status)
    if status == 503:
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def server_error(request, *args, **kwargs) -> HttpResponse:
    """The handler500: an outage gets its 503/507, anything else a 500 that says so."""
    error = sys.exc_info()[1]
    outage = outage_of(error)
    if outage:
        logger.warning("%s %s: %s unavailable (%r)", request.method, request.path, outage, error)
        return outage_response(request, outage)
    detail = "Something went wrong on the server; it has been logged."
    if request.path.startswith(API_PREFIX):
        return JsonResponse({"detail": detail}, status=500)
    html = render_to_string(
        "error_page.html", {"title": "Server error", "message": detail, "retry": False}
    )
    return HttpResponse(html, status=500)

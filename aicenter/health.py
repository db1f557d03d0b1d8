"""`GET /healthz` for load balancers and orchestrators: is this web server able to serve, that
is, are the database, Redis and the storage reachable from it, and has its data disk more free
space than the reserve (core/disk_space.py)? 200 with each one's "ok" and the free space,
or 503 naming what is not. Answered first, before the host check, sessions and the rest: a
load balancer probes by address, with no cookie, often over plain http."""

import time

import django_rq
from django.core.files.storage import default_storage
from django.db import connection
from django.http import JsonResponse

from core.disk_space import MB, data_disk_space

PATH = "/healthz"
# A name nothing stores: asking whether it exists is a real round trip to the storage.
PROBE = "healthz-probe"


def _database():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _redis():
    client = django_rq.get_connection("default")
    try:
        client.ping()
    finally:
        client.close()


def _storage():
    default_storage.exists(PROBE)


CHECKS = {"database": _database, "redis": _redis, "storage": _storage}


def health() -> tuple[bool, dict]:
    """Each check's answer ("ok", or what went wrong: the exception's class, never its text,
    which may hold an address or a name) and the time it took."""
    answers, healthy = {}, True
    for name, check in CHECKS.items():
        began = time.perf_counter()
        try:
            check()
            answer = "ok"
        except Exception as error:  # noqa: BLE001 - anything but "ok" is unhealthy
            answer, healthy = f"unreachable ({type(error).__name__})", False
        answers[name] = answer
        answers[f"{name}_ms"] = round((time.perf_counter() - began) * 1000, 1)
    space = data_disk_space()
    answers["disk"] = f"low: {space.problem()}" if space.low else "ok"
    answers["disk_free_mb"] = space.free // MB
    answers["disk_reserve_mb"] = space.reserve // MB
    return healthy and not space.low, answers


class HealthCheckMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path_info.rstrip("/") != PATH or request.method not in ("GET", "HEAD"):
            return self.get_response(request)
        healthy, answers = health()
        response = JsonResponse({"status": "ok" if healthy else "unhealthy", **answers})
        response.status_code = 200 if healthy else 503
        response["Cache-Control"] = "no-store"
        return response

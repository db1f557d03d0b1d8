#!/usr/bin/env python
"""ML Skills' speed, measured. Run from the repository root with the venv's Python:

    .venv/bin/python bench/skills_bench.py [--mlflow /tmp/mlflow-venv/bin/python]
        [--calls 2000] [--seconds 10] [--concurrency 8]

A trivial skill (the package `echo`, whose predict returns its input) deployed as a real one:
a real `manage.py skillhost` (its replicas sandboxed as always) and the production web server
that `manage.py start` runs (waitress, 8 threads), on this machine's Redis and database. Called
through the HTTP API with a small JSON input (90 bytes):

1. Sequential calls on one keep-alive connection, by the skill's key (X-API-Key) and by a
   member's bearer token: p50, p90, p99 (target p50 ≤ 10 ms, p99 ≤ 50 ms).
2. Two replicas (a PATCH through the API), `--concurrency` threads each on its own keep-alive
   connection for `--seconds`: calls per second and failed calls (target ≥ 300 calls/s, none
   failed).
3. What a call costs on its way, to tell the platform's share from the floor: the same HTTP
   calls to a bare WSGI app on waitress (the HTTP floor), the call's Redis commands answered
   by a thread of this process (the Redis floor), a call put through Redis to the real skill
   host and replica without HTTP (skills.channel.send), and the SQL queries and Redis commands
   of one call through the Django stack in this process.
4. MLflow's scoring server on this machine, in this run: `mlflow models serve --env-manager
   local` of a python_function model whose predict returns its input, its /invocations called
   alike with the same input ({"inputs": <the input>}, answered {"predictions": <it>}):
   sequentially (its default, one worker), and at the same concurrency with one worker and
   with two (as our two replicas; uvicorn's multi-worker mode stalls keep-alive answers ~40 ms
   on delayed ACKs, so its one-worker figures are the fair ones); ratios ours / MLflow. Needs a
   Python with mlflow (`--mlflow`, a venv of its own: mlflow is no dependency of the project;
   `mlflow models serve` runs `uvicorn` from that venv's bin); skipped without.

It uses its own data directory (SQLite and the embedded Redis unless DATABASE_URL / REDIS_URL
are set; a DATABASE_URL's database must hold no skill), so it never touches your instance.
"""

import argparse
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import closing
from pathlib import Path

import django

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
SCRATCH = Path(tempfile.mkdtemp(prefix="aicenter-skills-bench-"))
os.environ["AICENTER_DATA_DIR"] = str(SCRATCH / "data")  # its own instance, never yours
# the settings require one, of 50 characters or more
os.environ.setdefault("SECRET_KEY", "benchmark-only-not-a-secret-abcdefghijklmnopqrstuvw")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aicenter.settings")
django.setup()

import redis  # noqa: E402
from django.conf import settings  # noqa: E402  (the models need django.setup() first)
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.files.uploadedfile import SimpleUploadedFile  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from http_calls import WARM_CALLS, Target, concurrent, sequential  # noqa: E402
from mlflow_scoring import MlflowScoring, mlflow_model, mlflow_version  # noqa: E402
from pipeline_bench import free_port  # noqa: E402
from processes import Processes, wait_http  # noqa: E402
from skills_report import show_concurrent, show_floor, show_sequential, summary  # noqa: E402

from core.embedded_redis import ensure_embedded_redis, stop  # noqa: E402
from core.models import Membership, Project  # noqa: E402
from core.tokens import api_token_create  # noqa: E402
from packages.services import package_create  # noqa: E402
from skills import channel  # noqa: E402
from skills.models import Skill  # noqa: E402
from skills.services import skill_create  # noqa: E402
from tests.factories import package_zip  # noqa: E402

ECHO = """\
class Main:
    def __init__(self):
        pass

    def predict(self, input):
        return input
"""
# MLflow's side: the same predict as a python_function model, saved to argv[1].
# The HTTP floor: a WSGI app that answers the body it got, on the same waitress.
BARE_WSGI = """\
import sys

import waitress


def app(environ, start_response):
    size = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(size)
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]


waitress.serve(app, listen=sys.argv[1], threads=8, _quiet=True)
"""
INPUT = json.dumps(
    {"invoice": "INV-2024-000042", "vendor": "ACME Corp", "total": 1234.56, "currency": "EUR"}
).encode()
PROJECT = "default"
SKILL = "echo"
PREDICT = f"/api/v1/projects/{PROJECT}/skills/{SKILL}/predict"
WEB_THREADS = 8  # as aicenter/management/commands/start.py runs waitress


def setup():
    """The instance: a user with a token, the package `echo` and its skill (1 replica)."""
    call_command("migrate", verbosity=0)
    if Skill.objects.exists():
        raise SystemExit("DATABASE_URL's database holds skills: give the benchmark an empty one.")
    ensure_embedded_redis()
    user = get_user_model().objects.create_user(f"bench-{uuid.uuid4().hex[:6]}", password="x")
    project = Project.objects.get(slug=PROJECT)
    Membership.objects.create(project=project, user=user, role=Membership.ADMIN)
    token = api_token_create(user=user, name="skills bench").token
    zipped = SimpleUploadedFile("echo.zip", package_zip(**{"main.py": ECHO}))
    package_create(project=project, user=user, name="echo", file=zipped, input_type="json")
    skill = skill_create(
        user=user, project=project, name=SKILL, package="echo", version="1.0", replicas=1
    )
    return user, token, skill


def api(port, token, method, path, body=None):
    with closing(http.client.HTTPConnection("127.0.0.1", port, timeout=30)) as client:
        client.request(
            method,
            f"/api/v1/projects/{PROJECT}{path}",
            body=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        response = client.getresponse()
        answer = response.read()
        if response.status >= 300:
            raise SystemExit(f"{method} {path}: {response.status} {answer[:500]!r}")
        return json.loads(answer)


def wait_available(port, token, replicas, host, seconds=900):
    """Until the skill is available with `replicas` replicas up (the first start builds the
    package's environment)."""
    began = time.monotonic()
    while time.monotonic() - began < seconds:
        if host.poll() is not None:
            raise SystemExit(f"the skill host exited: see {host.log_path}")
        found = api(port, token, "GET", f"/skills/{SKILL}")
        if found["status"] == "failed":
            raise SystemExit(f"the skill failed: {found['reason']}")
        if found["status"] == "available" and found["replicas_up"] >= replicas:
            return time.monotonic() - began
        time.sleep(0.2)
    raise SystemExit(f"the skill was not available within {seconds} s: see {host.log_path}")


def redis_floor(calls):
    """The Redis commands of one call (the web server's: replicas up?, push, wait, count the
    call; the skill host's: pop, answer, expire), answered by a thread of this process: the
    least a call through Redis costs here. Milliseconds per call."""
    url = settings.REDIS_URL
    caller, answerer = redis.Redis.from_url(url), redis.Redis.from_url(url)
    requests = f"bench:{uuid.uuid4().hex}:requests"
    stopping = threading.Event()

    def answer():
        while not stopping.is_set():
            popped = answerer.blpop([requests], timeout=0.2)
            if popped:
                header, body = channel.decode(popped[1], to=requests)
                channel.answer(answerer, header["id"], {"status": 200, "type": "text"}, body)

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    times = []
    for index in range(WARM_CALLS + calls):
        began = time.perf_counter()
        caller.zcount("bench:ready", time.time(), "+inf")
        call_id = uuid.uuid4().hex
        caller.rpush(requests, channel.encode({"id": call_id, "deadline": 0}, INPUT, to=requests))
        reply = caller.blpop([channel.reply_key(call_id)], timeout=30)
        channel.decode(reply[1], to=channel.reply_key(call_id))
        caller.rpush("bench:calls", b"{}")
        if index >= WARM_CALLS:
            times.append((time.perf_counter() - began) * 1000)
    stopping.set()
    thread.join()
    caller.delete("bench:calls")
    return times


def through_skill_host(skill, calls):
    """A call put through Redis to the real skill host and replica, as the web server puts it
    (skills.channel.send), without HTTP or Django's request handling. Milliseconds per call."""
    times = []
    for index in range(WARM_CALLS + calls):
        began = time.perf_counter()
        header, answer = channel.send(skill.pk, INPUT, timeout=30)
        if index >= WARM_CALLS:
            times.append((time.perf_counter() - began) * 1000)
        assert header.get("status") == 200 and answer == INPUT, (header, answer)
    return times


def work_per_call(headers):
    """The SQL queries and Redis commands of one call through the Django stack (the test
    client, in this process, to the real skill host)."""
    commands = []
    execute = redis.Redis.execute_command

    def counted(self, *args, **options):
        commands.append(args[0])
        return execute(self, *args, **options)

    client = Client(headers=headers, SERVER_NAME="localhost")
    client.post(PREDICT, INPUT, content_type="application/json")  # warm
    redis.Redis.execute_command = counted
    try:
        with CaptureQueriesContext(connection) as queries:
            response = client.post(PREDICT, INPUT, content_type="application/json")
    finally:
        redis.Redis.execute_command = execute
    assert response.status_code == 200, response.content
    return [q["sql"] for q in queries.captured_queries], commands


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mlflow", help="a Python with mlflow installed (MLflow's side)")
    parser.add_argument("--calls", type=int, default=2000, help="sequential calls per measure")
    parser.add_argument("--seconds", type=float, default=10, help="of each concurrent measure")
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    processes = Processes(SCRATCH)
    try:
        run(args, processes)
    finally:
        processes.stop_all()
        if settings.EMBEDDED_REDIS:
            stop(settings.DATA_DIR)
        shutil.rmtree(SCRATCH, ignore_errors=True)


def run(args, processes):
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    print(
        f"ML Skills benchmark at commit {commit or '?'}: {os.cpu_count()} cores, "
        f"{connection.vendor} (DB_CONN_MAX_AGE {settings.DATABASES['default']['CONN_MAX_AGE']}), "
        f"{'embedded Redis' if settings.EMBEDDED_REDIS else 'Redis at REDIS_URL'}; "
        f"{args.calls} sequential calls, {args.concurrency} callers for {args.seconds:g} s",
        flush=True,
    )
    print(f"  load average before: {os.getloadavg()[0]:.2f} (other work skews the figures)")
    user, token, skill = setup()
    mlflow_python = args.mlflow and Path(args.mlflow)
    if mlflow_python and not mlflow_python.exists():
        raise SystemExit(f"--mlflow {mlflow_python}: no such file")
    if mlflow_python:  # while nothing else runs: it takes seconds of CPU
        print(f"Saving the MLflow model (mlflow {mlflow_version(mlflow_python)})…", flush=True)
        model = mlflow_model(mlflow_python, SCRATCH)

    manage = [sys.executable, str(ROOT / "manage.py")]
    host = processes.start("skillhost", [*manage, "skillhost"], cwd=ROOT)
    port = free_port()
    web = processes.start(
        "waitress",
        [
            sys.executable, "-m", "waitress", f"--listen=127.0.0.1:{port}",
            f"--threads={WEB_THREADS}", "aicenter.wsgi:application",
        ],
        cwd=ROOT,
    )  # fmt: skip
    wait_http(port, 60, web, "the web server", web.log_path)
    print("Waiting for the skill (the first start builds the package's environment)…", flush=True)
    took = wait_available(port, token, 1, host)
    print(f"  available after {took:.1f} s")

    by_key = Target(port, PREDICT, INPUT, {"X-API-Key": skill.api_key}, json.loads(INPUT))
    by_token = Target(port, PREDICT, INPUT, {"Authorization": f"Bearer {token}"}, by_key.expected)
    ours = {}
    print("\n1. Sequential calls through the HTTP API (one skill host, one replica, waitress):")
    ours["key"] = sequential(by_key, args.calls)
    show_sequential("by X-API-Key", ours["key"])
    ours["token"] = sequential(by_token, args.calls)
    show_sequential("by bearer token", ours["token"])

    print("\n   Where a call's time goes (the same input; p50 and p99 of the same count):")
    bare_port = free_port()
    bare_script = SCRATCH / "bare_wsgi.py"
    bare_script.write_text(BARE_WSGI)
    bare = processes.start(
        "bare-wsgi", [sys.executable, str(bare_script), f"127.0.0.1:{bare_port}"]
    )
    wait_http(bare_port, 30, bare, "the bare WSGI app", bare.log_path)
    floor = sequential(Target(bare_port, "/", INPUT, {}, json.loads(INPUT)), args.calls)
    processes.stop(bare)
    print(
        f"  {'HTTP floor: a bare WSGI app on waitress, this client':58} "
        f"p50 {floor['p50']:6.2f} ms  p99 {floor['p99']:6.2f} ms"
    )
    show_floor(
        "Redis floor: the call's Redis commands, a thread answering", redis_floor(args.calls)
    )
    show_floor("skill host + replica, through Redis, no HTTP (channel.send)",
               through_skill_host(skill, args.calls))  # fmt: skip
    for label, headers in (("by key", by_key.headers), ("by token", by_token.headers)):
        queries, commands = work_per_call(headers)
        sql = f"{len(queries)} SQL quer{'y' if len(queries) == 1 else 'ies'}"
        print(
            f"  one call {label} in Django: {sql}, {len(commands)} Redis commands "
            f"({', '.join(commands)}); the skill host's: BLPOP, RPUSH+EXPIRE"
        )
        for query in queries:
            print(f"    {query[:110]}…")

    print(f"\n2. Two replicas, {args.concurrency} callers on their own keep-alive connections:")
    api(port, token, "PATCH", f"/skills/{SKILL}", {"replicas": 2})
    wait_available(port, token, 2, host)
    ours["concurrent"] = concurrent(by_key, args.concurrency, args.seconds)
    show_concurrent("by X-API-Key", ours["concurrent"])
    ours["concurrent_token"] = concurrent(by_token, args.concurrency, args.seconds)
    show_concurrent("by bearer token", ours["concurrent_token"])
    processes.stop(web)
    processes.stop(host)

    theirs = {}
    if mlflow_python:
        print("\n3. MLflow's scoring server, the same calls to /invocations:")
        with MlflowScoring(mlflow_python, processes, model, workers=1) as server:
            theirs["sequential"] = sequential(server.target(INPUT), args.calls)
            show_sequential("sequential, 1 worker (its default)", theirs["sequential"])
            theirs["concurrent_1"] = concurrent(
                server.target(INPUT), args.concurrency, args.seconds
            )
            show_concurrent(f"{args.concurrency} callers, 1 worker", theirs["concurrent_1"])
        with MlflowScoring(mlflow_python, processes, model, workers=2) as server:
            theirs["concurrent_2"] = concurrent(
                server.target(INPUT), args.concurrency, args.seconds
            )
            show_concurrent(f"{args.concurrency} callers, 2 workers", theirs["concurrent_2"])
        if theirs["concurrent_2"]["p50"] > 30:
            print(
                "    (uvicorn's multi-worker mode leaves Nagle's algorithm on: an answer on a "
                "keep-alive\n     connection waits ~40 ms for the client's delayed ACK; its "
                "one-worker figures are the fair ones)"
            )
    else:
        print("\n3. MLflow: skipped (give --mlflow PYTHON, a Python with mlflow installed)")

    summary(args, ours, theirs)
    print(f"\nLoad average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

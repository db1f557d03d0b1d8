#!/usr/bin/env python
"""ML Logs at 1,000,000 events, measured. Run from the repository root with the
venv's Python:

    .venv/bin/python bench/logs_bench.py [--events 1000000] [--requests 30]

A project with `--events` events over the last year (bulk-inserted, oldest first, as
core.events.record writes them: time and id grow together): mostly pipelines starting and
finishing, skills' prediction counts, packages, datasets, recurring pipelines and members; a
third done by "system", the rest by 20 users. Then, through Django's test client in this
process (server time: the view, its queries and the template), `--requests` times each after
one warm-up, median and p95 and the number of queries:

- the ML Logs page: the first page, a filter by category (common and rare), by actor (a user,
  and "system"), by object (one pipeline; a name alone), a time range (a week half a year ago;
  the last 30 days; everything before six months ago), free-text search (a common word, and a
  word no event holds: the worst case, every event read), a deep page (its cursor half-way
  down the year) and the one its "Next" link leads to;
- the JSON API: the first 100, a filter with a cursor deep down;
- the CSV export: the first 10,000 rows of the stream (header included).

Goal: p95 ≤ 150 ms for each. It uses its own data directory (SQLite and the embedded Redis
unless DATABASE_URL / REDIS_URL are set); with DATABASE_URL it uses that database, which must
hold no events, e.g.

    createdb -h 127.0.0.1 -U postgres bench_mllogs
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_mllogs \
        .venv/bin/python bench/logs_bench.py
    dropdb -h 127.0.0.1 -U postgres bench_mllogs
"""

import argparse
import os
import random
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import django

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SCRATCH = Path(tempfile.mkdtemp(prefix="aicenter-logs-bench-"))
os.environ["AICENTER_DATA_DIR"] = str(SCRATCH / "data")  # its own instance, never yours
# the settings require one, of 50 characters or more
os.environ.setdefault("SECRET_KEY", "benchmark-only-not-a-secret-abcdefghijklmnopqrstuvw")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aicenter.settings")
django.setup()

from django.conf import settings  # noqa: E402  (the models need django.setup() first)
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402

from bench import pages_bench  # noqa: E402
from bench.pages_bench import next_link, settle  # noqa: E402
from core.embedded_redis import stop  # noqa: E402
from core.models import (  # noqa: E402
    Event,  # noqa: E402
    Membership,
    Project,
)
from core.tokens import api_token_create  # noqa: E402
from governance.selectors import event_cursor  # noqa: E402
from packages.models import Package, PackageVersion  # noqa: E402

GOAL = 150  # p95, ms
USERS = 20
PACKAGES = [f"model_{i:02}" for i in range(20)]
DATASETS = [f"dataset_{i:02}" for i in range(10)]
SKILLS = [f"skill_{i}" for i in range(5)]
RARE_WORD = "zebrafish"  # in no event: text search reads them all


def _pipeline(rng, n, user):
    run = rng.randint(1, 150_000)
    key = {"object_type": "pipeline", "object_key": str(run), "object_name": f"Pipeline {run}"}
    key["url"] = f"/p/default/pipelines/{run}/"
    if n % 3 == 0:
        return "started", None, key, f"Started on worker-{rng.randint(1, 8)}", {}
    if n % 3 == 1:
        status = rng.choice(["successful"] * 8 + ["failed", "killed"])
        seconds = rng.randint(5, 900)
        data = {"status": status, "reason": "", "duration_seconds": seconds}
        return "finished", None, key, f"{status.capitalize()} in {seconds} s", data
    return "created", user, key, f"Train {rng.choice(PACKAGES)} 1.0 on a dataset", {}


def _other(rng, category, user):
    """(action, actor, object fields, message, data) of a non-pipeline event."""
    if category == "skill":
        name = rng.choice(SKILLS)
        key = {"object_type": "skill", "object_key": name, "object_name": name}
        count = rng.randint(1, 500)
        return "predictions", None, key, f"{count} predictions, 0 errors", {"count": count}
    if category == "package":
        name = rng.choice(PACKAGES)
        version = f"{name} 1.{rng.randint(0, 40)}"
        key = {"object_type": "version", "object_key": version, "object_name": version}
        return "validated", user, key, f"Version {version} accepted", {"version": version}
    if category == "dataset":
        name = rng.choice(DATASETS)
        key = {"object_type": "dataset", "object_key": name, "object_name": name}
        files = rng.randint(1, 400)
        return "files_uploaded", user, key, f"{files} files uploaded", {"count": files}
    if category == "schedule":
        pk = rng.randint(1, 10)
        key = {"object_type": "schedule", "object_key": str(pk), "object_name": f"nightly {pk}"}
        return "fired", None, key, "Started a pipeline run", {}
    who = f"user{rng.randint(0, USERS - 1):02}"
    key = {"object_type": "member", "object_key": who, "object_name": who}
    return "role_changed", user, key, f"{who} is now a data scientist", {"role": "viewer"}


# share of the events per category (the rest: pipeline)
CATEGORIES = [("skill", 0.15), ("package", 0.08), ("dataset", 0.08), ("schedule", 0.05)]
RARE_CATEGORY = ("member", 0.005)


def make_events(project, users, total, seed=14):
    """`total` events over the last year, oldest first, in batches of 10,000."""
    rng = random.Random(seed)
    began = datetime.now(UTC) - timedelta(days=365)
    step = timedelta(days=365) / total
    for start in range(0, total, 10_000):
        events = []
        for n in range(start, min(total, start + 10_000)):
            user = rng.choice(users)
            draw, category = rng.random(), "pipeline"
            for name, share in [*CATEGORIES, RARE_CATEGORY]:
                if draw < share:
                    category = name
                    break
                draw -= share
            if category == "pipeline":
                action, actor, key, message, data = _pipeline(rng, n, user)
            else:
                action, actor, key, message, data = _other(rng, category, user)
            events.append(
                Event(
                    project=project,
                    time=began + step * n,
                    category=category,
                    action=action,
                    actor=actor,
                    actor_name=actor.username if actor else Event.SYSTEM,
                    message=message,
                    data=data,
                    **key,
                )
            )
        Event.objects.bulk_create(events, batch_size=2000)


class Table(pages_bench.Table):
    """pages_bench's table, every row against the ML Logs goal."""

    def measure(self, label, call):
        return self.measure_call(label, call, GOAL)

    def get(self, label, client, url, headers=None):
        def call():
            response = client.get(url, headers=headers or {})
            assert response.status_code == 200, (url, response.status_code, response.content[:300])
            assert b"No events match" not in response.content, url
            return response

        return self.measure(label, call)


def csv_head(client, url, rows=10_000):
    """The first `rows` rows of the streamed CSV (and its header); the rest is never read."""
    response = client.get(url)
    assert response.status_code == 200 and response.streaming
    lines = 0
    for chunk in response.streaming_content:
        lines += chunk.count(b"\n")
        if lines > rows:
            break
    response.close()
    assert lines > rows, lines
    return response


def bench(table, client, project, token):
    base = f"/p/{project.slug}/logs/"
    ids = Event.objects.filter(project=project).order_by("id").values_list("id", flat=True)
    half_way = event_cursor(before=False, event_id=(ids.first() + ids.last()) // 2)
    pipeline = Event.objects.filter(project=project, object_type="pipeline").latest("id")
    now = datetime.now(UTC)
    week_start = (now - timedelta(days=182)).date()
    pages = [
        ("first page", ""),
        ("category=dataset (8 %)", "?category=dataset"),
        ("category=member (0.5 %)", "?category=member"),
        ("actor=user07", "?actor=user07"),
        ("actor=system", "?actor=system"),
        (f"object=pipeline:{pipeline.object_key}", f"?object=pipeline:{pipeline.object_key}"),
        ("object=model_03 (a name: its 41 versions)", "?object=model_03"),
        ("object=dataset_04", "?object=dataset_04"),
        (
            "a week half a year ago (since & until)",
            f"?since={week_start}&until={week_start + timedelta(days=6)}",
        ),
        ("the last 30 days (since)", f"?since={(now - timedelta(days=30)).date()}"),
        ("before six months ago (until)", f"?until={(now - timedelta(days=183)).date()}"),
        (
            "category=pipeline, a week half a year ago",
            f"?category=pipeline&since={week_start}&until={week_start + timedelta(days=6)}",
        ),
        ("text search q=worker-3 (common)", "?q=worker-3"),
        (f"text search q={RARE_WORD} (in no event)", f"?q={RARE_WORD}"),
        ("text search q=killed, actor=system", "?q=killed&actor=system"),
    ]
    print(f"\nThe ML Logs page ({table.requests} requests each; median / p95):")
    for label, query in pages:
        if RARE_WORD in query:  # nothing matches: the empty state is the answer
            table.measure(label, lambda q=query: client.get(base + q))
            continue
        table.get(label, client, base + query)
    response = table.get("a deep page (cursor half-way down)", client, f"{base}?cursor={half_way}")
    if url := next_link(base, response):
        table.get("the page after it (its Next link)", client, url)
    filtered = f"{base}?category=dataset&cursor={half_way}"
    table.get("category=dataset, a deep page", client, filtered)
    api = f"/api/v1/projects/{project.slug}/logs"
    headers = {"Authorization": f"Bearer {token}"}
    print("\nThe API:")
    table.get("API first 100", client, api + "?limit=100", headers)
    table.get("API actor=system, limit=500", client, api + "?actor=system&limit=500", headers)
    deep = f"{api}?category=pipeline&cursor={half_way}"
    table.get("API category=pipeline, a deep cursor", client, deep, headers)
    print("\nThe CSV export:")
    export = base + "export.csv"
    table.measure("CSV: the first 10,000 rows", lambda: csv_head(client, export))
    table.measure(
        "CSV category=pipeline: the first 10,000 rows",
        lambda: csv_head(client, export + "?category=pipeline"),
    )


def setup():
    call_command("migrate", verbosity=0)
    if Event.objects.exists():
        raise SystemExit("DATABASE_URL's database holds events: give the benchmark an empty one.")
    project = Project.objects.get(slug="default")
    users = []
    for index in range(USERS):
        user = get_user_model().objects.create_user(f"user{index:02}", password="bench")
        Membership.objects.create(project=project, user=user, role=Membership.ADMIN)
        users.append(user)
    # the packages, with versions 1.0 to 1.40 (deleted ones: a name alone finds their events)
    packages = Package.objects.bulk_create(
        [Package(project=project, name=name, language="3.11") for name in PACKAGES]
    )
    gone = datetime.now(UTC)
    PackageVersion.with_deleted.bulk_create(
        [
            PackageVersion(package=package, major=1, minor=minor, deleted_at=gone)
            for package in packages
            for minor in range(41)
        ]
    )
    return project, users


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=30, help="timed requests per page")
    try:
        args = parser.parse_args()
        project, users = setup()
        load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
        print(f"Database: {connection.vendor}; {os.cpu_count()} cores; load average {load}")
        began = time.perf_counter()
        make_events(project, users, args.events)
        settle()
        print(f"{args.events:,} events made in {time.perf_counter() - began:.0f} s (bulk_create)")
        token = api_token_create(user=users[0], name="logs bench").token
        client = Client(SERVER_NAME="localhost")
        client.force_login(users[0])
        table = Table(args.requests)
        bench(table, client, project, token)
        load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
        print(f"\n{connection.vendor}, {args.events:,} events; load average at the end: {load}\n")
        print(table.markdown())
    finally:
        if settings.EMBEDDED_REDIS:
            stop(settings.DATA_DIR)
        shutil.rmtree(SCRATCH, ignore_errors=True)


if __name__ == "__main__":
    main()

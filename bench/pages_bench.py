#!/usr/bin/env python
"""Pages at 100,000 runs, measured. Run from the repository root with the venv's
Python:

    .venv/bin/python bench/pages_bench.py [--runs 100000] [--files 10000] [--requests 30]

1. The pipelines list of a project with `--runs` runs (made with bulk_create: a year of runs of
   20 packages, mostly successful, some failed, killed or unfinished, bursts submitted in the
   same second, a third with a `loss` metric, some fired by a recurring pipeline): the first
   page, a deep page (the 1,000th of 50 runs) and the one its "next" link leads to, each filter
   the list offers (status, type, package, recurring pipeline), each order (score, a metric
   column, sorted by it), filters with a deep page, and the htmx poll. Deep pages are asked
   for by number (`?page=N`, the links of old) and then through the page's own "next" link
   (a cursor).
2. The same runs through the JSON API list (`GET …/pipelines`): first 100, offset 50,000 (and
   the page its `Link: rel="next"` leads to, when it answers one), filtered, filtered and deep.
3. A run whose artifacts are a tree of `--files` files (10 folders of 400 images, 100 epochs of
   plots, checkpoints, logs four levels down, a flat folder of 4,000 predictions): its root, a
   folder of folders, a folder of 400 files and its second page, the flat folder and its last
   page, the deepest folder; the same tree as a dataset through the
   dataset browser (it shares the file tree); the API's listing of one folder.

Each page is fetched through Django's test client in this process (server time: the view, its
queries and the template), `--requests` times after one warm-up: median and p95, the number of
queries, and whether the goal (p95 ≤ 100 ms for a list page, ≤ 50 ms for a folder) is met.

It uses its own data directory (SQLite and the embedded Redis unless DATABASE_URL / REDIS_URL
are set); with DATABASE_URL it uses that database, which must hold no runs, e.g.

    createdb -h 127.0.0.1 -U postgres aicenter_pagesbench
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/aicenter_pagesbench \
        .venv/bin/python bench/pages_bench.py
"""

import argparse
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from html import unescape
from pathlib import Path

import django

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SCRATCH = Path(tempfile.mkdtemp(prefix="aicenter-pages-bench-"))
os.environ["AICENTER_DATA_DIR"] = str(SCRATCH / "data")  # its own instance, never yours
# the settings require one, of 50 characters or more
os.environ.setdefault("SECRET_KEY", "benchmark-only-not-a-secret-abcdefghijklmnopqrstuvw")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aicenter.settings")
django.setup()

from django.conf import settings  # noqa: E402  (the models need django.setup() first)
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.files.uploadedfile import SimpleUploadedFile  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from bench.pages_data import make_outputs, make_runs  # noqa: E402
from bench.percentiles import p95  # noqa: E402
from bench.pipeline_bench import TRAIN  # noqa: E402
from core.embedded_redis import stop  # noqa: E402
from core.models import Membership, Project  # noqa: E402
from core.tokens import api_token_create  # noqa: E402
from datasets.services import dataset_create  # noqa: E402
from packages.services import package_create  # noqa: E402
from pipelines.models import PipelineRun  # noqa: E402
from tests.factories import package_zip  # noqa: E402

LIST_GOAL, FOLDER_GOAL = 100, 50  # p95, ms
PACKAGES = 20


def timed(call, times):
    """Milliseconds of `times` calls, after one to warm caches."""
    call()
    values = []
    for _ in range(times):
        began = time.perf_counter()
        call()
        values.append((time.perf_counter() - began) * 1000)
    return values


def settle():
    """After a bulk insert, what autovacuum soon does on PostgreSQL: statistics for the planner
    and the visibility map that index-only scans need."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
    else:
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")


def setup():
    """The instance: a user, 20 packages, a dataset and a recurring pipeline."""
    call_command("migrate", verbosity=0)
    if PipelineRun.objects.exists():
        raise SystemExit("DATABASE_URL's database holds runs: give the benchmark an empty one.")
    user = get_user_model().objects.create_user("bench", password="bench")
    project = Project.objects.get(slug="default")
    Membership.objects.create(project=project, user=user, role=Membership.ADMIN)
    for index in range(PACKAGES):
        zipped = SimpleUploadedFile("p.zip", package_zip(**{"train.py": TRAIN}))
        package_create(project=project, user=user, name=f"model_{index:02}", file=zipped)
    dataset_create(project=project, user=user, name="invoices")
    return project, user


NEXT_LINK = re.compile(r'<a[^>]*href="([^"]*)"[^>]*>\s*(?:Next|Older)', re.S)


def next_link(base, response):
    """The page its "next" link leads to (a cursor or the next number), or None."""
    found = NEXT_LINK.search(response.content.decode())
    if not found:
        return None
    href = unescape(found.group(1))
    return base + href if href.startswith("?") else href


def api_next(response):
    """The URL in a `Link: <…>; rel="next"` header, or None."""
    link = response.headers.get("Link", "")
    found = re.search(r'<([^>]+)>;\s*rel="next"', link)
    return found.group(1) if found else None


class Table:
    def __init__(self, requests):
        self.requests = requests
        self.rows = []

    def measure(self, label, client, url, goal, headers=None):
        headers = headers or {}

        def get():
            response = client.get(url, headers=headers)
            assert response.status_code == 200, (url, response.status_code, response.content[:300])
            return response

        return self.measure_call(label, get, goal)

    def measure_call(self, label, call, goal):
        """Time `call` (a request, or any work) `requests` times; its queries counted once."""
        with CaptureQueriesContext(connection) as queries:
            response = call()
        count = len(queries)  # read now: the next request empties the log it slices
        values = timed(call, self.requests)
        row = (label, statistics.median(values), p95(values), count, goal)
        self.rows.append(row)
        met = "met" if row[2] <= goal else "MISSED"
        print(
            f"  {label:58} {row[1]:7.1f} / {row[2]:7.1f} ms  {row[3]:3} queries  "
            f"≤ {goal} ms: {met}",
            flush=True,
        )
        return response

    def markdown(self):
        lines = ["| page | median / p95 | queries | goal |", "|---|---|---|---|"]
        for label, median, high, count, goal in self.rows:
            met = "met" if high <= goal else "**missed**"
            lines.append(f"| {label} | {median:.1f} / {high:.1f} ms | {count} | ≤ {goal}: {met} |")
        return "\n".join(lines)


def bench_list(table, client, project, schedule):
    base = f"/p/{project.slug}/pipelines/"
    busiest = project.packages.order_by("name").first().name
    rare = project.packages.order_by("-name").first().name
    print(f"\n1. The pipelines list ({table.requests} requests each; median / p95):")
    table.measure("first page", client, base, LIST_GOAL)
    deep = table.measure("page 1,000 (`?page=1000`)", client, base + "?page=1000", LIST_GOAL)
    if url := next_link(base, deep):
        table.measure("the page after it (its next link)", client, url, LIST_GOAL)
    table.measure("htmx poll of the first page", client, base, LIST_GOAL, {"HX-Request": "true"})
    pages = [
        ("status=failed", "?status=failed"),
        ("status=running (rare)", "?status=running"),
        ("type=evaluate", "?type=evaluate"),
        (f"package={busiest} (busiest)", f"?package={busiest}"),
        (f"package={rare} (rarest)", f"?package={rare}"),
        ("recurring pipeline", f"?schedule={schedule.pk}"),
        ("status=failed&type=full", "?status=failed&type=full"),
        ("sort=-score", "?sort=-score"),
        ("sort=score", "?sort=score"),
        ("metric column", "?metric=loss"),
        ("sorted by the metric", "?metric=loss&sort=-metric"),
        ("status=failed, `page=100`", "?status=failed&page=100"),
        (f"package={busiest}, `page=300`", f"?package={busiest}&page=300"),
        ("sort=-score, `page=1000`", "?sort=-score&page=1000"),
        ("sorted by the metric, `page=500`", "?metric=loss&sort=-metric&page=500"),
    ]
    for label, query in pages:
        response = table.measure(label, client, base + query, LIST_GOAL)
        if "page=" in query and (url := next_link(base, response)):
            table.measure(f"{label}: its next link", client, url, LIST_GOAL)


def bench_api(table, client, project, token):
    api = f"/api/v1/projects/{project.slug}/pipelines"
    busiest = project.packages.order_by("name").first().name
    headers = {"Authorization": f"Bearer {token}"}
    print(f"\n2. The JSON API's list ({table.requests} requests each):")
    table.measure("API first 100", client, api, LIST_GOAL, headers)
    deep = table.measure("API offset=50000", client, api + "?offset=50000", LIST_GOAL, headers)
    if url := api_next(deep):
        table.measure("API: its Link rel=next", client, url, LIST_GOAL, headers)
    table.measure("API status=failed", client, api + "?status=failed", LIST_GOAL, headers)
    table.measure(f"API package={busiest}", client, f"{api}?package={busiest}", LIST_GOAL, headers)
    table.measure(
        "API status=failed&offset=10000",
        client,
        api + "?status=failed&offset=10000",
        LIST_GOAL,
        headers,
    )


def bench_folders(table, client, project, run, dataset, token):
    output = f"/p/{project.slug}/pipelines/{run.pk}/artifacts/"
    browse = f"/p/{project.slug}/datasets/{dataset.name}/"
    print(f"\n3. Folders of a {run.artifacts.entries.count():,}-file tree:")
    folders = [
        ("root", ""),
        ("images/ (10 folders)", "?path=images"),
        ("images/class_07/ (files)", "?path=images/class_07"),
        ("images/class_07/, page 2", "?path=images/class_07&page=2"),
        ("predictions/ (4,000 files)", "?path=predictions"),
        ("predictions/, its last page", "?path=predictions&page=40"),
        ("logs/2025/11/27/ (deepest)", "?path=logs/2025/11/27"),
    ]
    for label, query in folders:
        table.measure(f"artifacts {label}", client, output + query, FOLDER_GOAL)
    table.measure(
        "artifacts, a file previewed",
        client,
        output + "?path=images/class_07&file=images/class_07/img_00003.png",
        FOLDER_GOAL,
    )
    for label, query in folders[:3]:
        table.measure(f"dataset {label}", client, browse + query, FOLDER_GOAL)
    api = f"/api/v1/projects/{project.slug}/pipelines/{run.pk}/artifacts?prefix=images/class_07"
    headers = {"Authorization": f"Bearer {token}"}
    table.measure("API artifacts of one folder (prefix=)", client, api, FOLDER_GOAL, headers)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=30, help="timed requests per page")
    parser.add_argument("--only", choices=["list", "api", "folders"], help="one part only")
    try:
        args = parser.parse_args()
        project, user = setup()
        print(f"Database: {connection.vendor}; {os.cpu_count()} cores")
        began = time.perf_counter()
        schedule = make_runs(project, user, args.runs)
        run, dataset = make_outputs(project, user, args.files)
        settle()
        print(
            f"{args.runs:,} runs and two trees of {args.files:,} files made in "
            f"{time.perf_counter() - began:.0f} s (bulk_create)"
        )
        token = api_token_create(user=user, name="pages bench").token
        client = Client(SERVER_NAME="localhost")
        client.force_login(user)
        table = Table(args.requests)
        if args.only in (None, "list"):
            bench_list(table, client, project, schedule)
        if args.only in (None, "api"):
            bench_api(table, client, project, token)
        if args.only in (None, "folders"):
            bench_folders(table, client, project, run, dataset, token)
        print(f"\n{connection.vendor}, {args.runs:,} runs, {args.files:,} files:\n")
        print(table.markdown())
    finally:
        if settings.EMBEDDED_REDIS:
            stop(settings.DATA_DIR)
        shutil.rmtree(SCRATCH, ignore_errors=True)


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""Runs found by an expression (`?filter=`, MLflow's syntax) at 100,000 runs, measured. Run
from the repository root with the venv's Python:

    .venv/bin/python bench/search_bench.py [--runs 100000] [--requests 30]

The runs are pages_bench's (a year of runs of 20 packages, made with bulk_create), each with a
metric `accuracy` (uniform in 0..1), a param `n_estimators` (one of 50, 100, 200, 500), a tag
`team` (one of vision, nlp, fraud, ops) and, for a third, a metric `loss`. Each filter is
asked for through the JSON API (`GET …/pipelines?filter=…`, 50 runs) and the pipelines list
(`/p/…/pipelines/?filter=…`, with its count), `--requests` times after one warm-up: median and
p95 in ms, the ratio of the p95 to the unfiltered list's p95 measured in the same run, the
number of queries and whether the goal (p95 ≤ 100 ms for an indexed metric) is met. The load
average is printed before and after: on a busy machine every figure is higher.

It uses its own data directory (SQLite and the embedded Redis unless DATABASE_URL / REDIS_URL
are set; with DATABASE_URL, an empty database)."""

import argparse
import os
import random
import shutil
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script, from anywhere
# isort: split
from bench.pages_bench import SCRATCH, make_runs, p95, settle, setup, timed  # sets Django up

# isort: split
from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from core.embedded_redis import stop  # noqa: E402
from core.services import api_token_create  # noqa: E402
from pipelines.models import MetricSeries, PipelineRun, RunParam, RunTag  # noqa: E402

GOAL = 100  # p95, ms
TREES, TEAMS = ["50", "100", "200", "500"], ["vision", "nlp", "fraud", "ops"]
FILTERS = [
    ("metrics.accuracy > 0.9", "a metric, 10 % of the runs"),
    ("metrics.accuracy > 0.5", "a metric, half the runs"),
    ("metrics.accuracy > 0.9995", "a metric, 1 run in 2,000"),
    ("metrics.accuracy <= 0.1 and status = 'failed'", "a metric and the status"),
    ('params.n_estimators = "200"', "a param, a quarter"),
    ('tags.team = "vision"', "a tag, a quarter"),
    (
        'metrics.accuracy > 0.9 and params.n_estimators = "200" and tags.team = "vision"',
        "metric, param and tag",
    ),
    ('tags.team LIKE "vis%"', "a tag by prefix"),
    ("metrics.loss < 0.05", "a metric a third of the runs have"),
]


def add_tracking(project, seed=24):
    """Each run's accuracy, n_estimators and team, in bulk."""
    rng = random.Random(seed)
    ids = list(PipelineRun.objects.filter(project=project).values_list("pk", "created_at"))
    for start in range(0, len(ids), 10_000):
        chunk = ids[start : start + 10_000]
        MetricSeries.objects.bulk_create(
            [
                MetricSeries(
                    run_id=pk,
                    project=project,
                    run_created_at=created,
                    name="accuracy",
                    count=1,
                    last=rng.random(),
                )
                for pk, created in chunk
            ],
            batch_size=2000,
        )
        RunParam.objects.bulk_create(
            [
                RunParam(run_id=pk, project=project, key="n_estimators", value=rng.choice(TREES))
                for pk, _ in chunk
            ],
            batch_size=2000,
        )
        RunTag.objects.bulk_create(
            [
                RunTag(run_id=pk, project=project, key="team", value=rng.choice(TEAMS))
                for pk, _ in chunk
            ],
            batch_size=2000,
        )


class Table:
    def __init__(self, requests):
        self.requests, self.rows, self.baseline = requests, [], {}

    def measure(self, label, where, client, url, headers=None):
        def get():
            response = client.get(url, headers=headers or {})
            assert response.status_code == 200, (url, response.status_code, response.content[:300])
            return response

        with CaptureQueriesContext(connection) as queries:
            get()
        count = len(queries)
        values = timed(get, self.requests)
        high = p95(values)
        base = self.baseline.setdefault(where, high)
        row = (label, where, statistics.median(values), high, high / base, count)
        self.rows.append(row)
        met = "met" if high <= GOAL else "MISSED"
        print(
            f"  {where:4} {label:52} {row[2]:7.1f} / {high:7.1f} ms  ×{row[4]:4.1f}  "
            f"{count:2} queries  ≤ {GOAL} ms: {met}",
            flush=True,
        )

    def markdown(self):
        lines = [
            "| filter | where | median / p95 | × unfiltered p95 | queries | goal |",
            "|---|---|---|---|---|---|",
        ]
        for label, where, median, high, ratio, count in self.rows:
            met = "met" if high <= GOAL else "**missed**"
            lines.append(
                f"| `{label}` | {where} | {median:.1f} / {high:.1f} ms | {ratio:.1f} | {count} "
                f"| ≤ {GOAL}: {met} |"
            )
        return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=30, help="timed requests per filter")
    try:
        args = parser.parse_args()
        project, user = setup()
        print(f"Database: {connection.vendor}; {os.cpu_count()} cores")
        began = time.perf_counter()
        make_runs(project, user, args.runs)
        add_tracking(project)
        settle()
        print(f"{args.runs:,} runs made in {time.perf_counter() - began:.0f} s (bulk_create)")
        token = api_token_create(user=user, name="search bench").token
        client = Client(SERVER_NAME="localhost")
        client.force_login(user)
        headers = {"Authorization": f"Bearer {token}"}
        api = f"/api/v1/projects/{project.slug}/pipelines?limit=50"
        page = f"/p/{project.slug}/pipelines/"
        print(f"\nLoad average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print(f"Filters ({args.requests} requests each; median / p95; × the unfiltered p95):")
        table = Table(args.requests)
        table.measure("(none: the unfiltered list)", "API", client, api, headers)
        table.measure("(none: the unfiltered list)", "page", client, page)
        for expression, what in FILTERS:
            label = f"{expression}  ({what})"
            query = urlencode({"filter": expression})
            table.measure(label, "API", client, f"{api}&{query}", headers)
            table.measure(label, "page", client, f"{page}?{query}")
        print(f"Load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print(f"\n{connection.vendor}, {args.runs:,} runs:\n")
        print(table.markdown())
    finally:
        if settings.EMBEDDED_REDIS:
            stop(settings.DATA_DIR)
        shutil.rmtree(SCRATCH, ignore_errors=True)


if __name__ == "__main__":
    main()

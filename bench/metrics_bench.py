#!/usr/bin/env python
"""Metrics, measured. Run from the repository root with the venv's Python:

    .venv/bin/python bench/metrics_bench.py [--points 100000] [--repeat 3] [--runs 100000]
        [--mlflow /tmp/mlflow-venv/bin/python]

1. What logging 100,000 points through metrics_file costs a run: the same package run through
   the runner in this process, as a worker runs it (environment, sandbox, the file read at the
   log's rhythm and stored in batches), logging nothing or a point a step (the file kept open
   and a line written at a time with json.dumps or formatted by hand, opened per point, or
   buffered; and the same writes to a file the platform does not read, which tells the
   platform's share from the package's own), interleaved: wall time, and CPU time, which other
   load on the machine does not change; points stored, batches, database writes.
2. GET …/metrics?max_points=1000 of a run with 100,000 points of one metric, and of five.
3. Compare of 10 runs × 5 metrics × 100,000 points; one metric of the 10 overlaid.
4. The pipelines list at 100,000 runs, with a metric column, sorted by it, by score.
5. MLflow's tracking server (SQLite backend) on this machine, in this run: the same loop logged
   with log_batch; reading a metric and comparing 10 runs through its REST API; ratios. Needs a
   Python with mlflow (`--mlflow`, e.g. a venv with `pip install mlflow`); skipped without.

Server times are the Django test client's in this process (median and p95); next to MLflow both
sides are timed alike, over loopback HTTP (ours on manage.py runserver). It uses its own data
directory; with DATABASE_URL it uses that database, which must hold no runs.
"""

import argparse
import io
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import django

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
SCRATCH = Path(tempfile.mkdtemp(prefix="aicenter-metrics-bench-"))
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
from metrics_reference import (  # noqa: E402  the same loop and curves on both sides
    METRICS,
    PARAMETERS,
    TRAIN,
    MlflowServer,
    compared_points,
    http_get,
    runserver,
)
from percentiles import p95  # noqa: E402

from core.embedded_redis import stop  # noqa: E402
from core.models import Membership, Project  # noqa: E402
from core.tokens import api_token_create  # noqa: E402
from datasets.services import dataset_create, dataset_file_put  # noqa: E402
from packages.services import package_create  # noqa: E402
from pipelines.metrics import metrics_append  # noqa: E402
from pipelines.models import MetricSeries, PipelineRun  # noqa: E402
from pipelines.runner import metrics_file  # noqa: E402
from pipelines.start import pipeline_start  # noqa: E402
from tests.factories import package_zip  # noqa: E402


def timed(call, times):
    """Milliseconds of `times` calls (5 if one takes a second), after one to warm caches."""
    began = time.perf_counter()
    call()
    times = times if time.perf_counter() - began < 1 else min(times, 5)
    values = []
    for _ in range(times):
        began = time.perf_counter()
        call()
        values.append((time.perf_counter() - began) * 1000)
    return values


def show(label, values, target=None):
    median = statistics.median(values)
    line = f"  {label:50} median {median:7.1f} ms  p95 {p95(values):7.1f} ms"
    if target:
        line += f"  target ≤ {target} ms: {'met' if p95(values) <= target else 'MISSED'}"
    print(line)
    return median


def settle():
    """After a bulk insert, what autovacuum soon does on PostgreSQL: statistics for the planner
    (without them a fresh table of 100,000 runs is read whole for the newest 50)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")


def run_log(run):
    return "".join(run.log_chunks.order_by("seq").values_list("text", flat=True))


def setup():
    """The instance: a user, the package `curves` and the dataset `tiny`."""
    call_command("migrate", verbosity=0)
    if PipelineRun.objects.exists():
        raise SystemExit("DATABASE_URL's database holds runs: give the benchmark an empty one.")
    settings.PIPELINE_QUEUE_IMMEDIATE = True  # a run starts in this process: the runner, timed
    user = get_user_model().objects.create_user("bench", password="bench")
    project = Project.objects.get(slug="default")
    Membership.objects.create(project=project, user=user, role=Membership.ADMIN)
    zipped = SimpleUploadedFile("p.zip", package_zip(**{"train.py": TRAIN}))
    package_create(project=project, user=user, name="curves", file=zipped)
    dataset = dataset_create(project=project, user=user, name="tiny")
    dataset_file_put(user=user, dataset=dataset, path="x.csv", fileobj=io.BytesIO(b"1\n"))
    return project, user


def bench_logging(project, user, points, repeat):
    """1. The same run logging nothing, then logging every step, through the runner."""
    batches, stored = [], metrics_file.metrics_append

    def counted(run_id, new):  # the worker's batches, counted and timed, not changed
        began = time.perf_counter()
        stored(run_id, new)
        batches.append((sum(map(len, new.values())), time.perf_counter() - began))

    metrics_file.metrics_append = counted
    writes = []

    def count_writes(execute, sql, params, many, context):
        if "pipelines_metric" in sql and not sql.lstrip().upper().startswith("SELECT"):
            writes.append(sql.split()[0].upper())
        return execute(sql, params, many, context)

    def start(way):
        parameters = {"logging": way, "points": str(points)}
        worker = time.process_time()  # CPU seconds: the machine's other load can't change them
        run = pipeline_start(
            project=project, user=user, type="train", package="curves", version="1.0",
            dataset="tiny", parameters=parameters,
        )  # fmt: skip
        worker = time.process_time() - worker
        run.refresh_from_db()
        assert run.status == PipelineRun.SUCCESSFUL, run.failure_reason
        train = next(p for p in run.phases if p["name"] == "train")
        return {
            "wall": (run.finished_at - run.started_at).total_seconds(),
            "train": train["end"] - train["start"],
            "package": float(re.search(r"CPU ([0-9.]+)", run_log(run)).group(1)),
            "worker": worker,
            "run": run,
        }

    ways = ["nothing", "kept_open", "formatted", "buffered", "each_point", "unread"]
    start("nothing")  # builds the package's environment, warms the page cache
    results = {way: [] for way in ways}
    for _ in range(repeat):  # interleaved: a busy moment of the machine hits every way alike
        for way in ways:
            del batches[:], writes[:]
            with connection.execute_wrapper(count_writes):
                results[way].append(start(way) | {"batches": list(batches), "writes": len(writes)})
    metrics_file.metrics_append = stored

    def median(way, key):
        return statistics.median(result[key] for result in results[way])

    print(f"\n1. A run logging {points:,} points through metrics_file (median of {repeat}):")
    print(
        f"  {'':12} {'run (started → ended)':>22} {'added':>8} {'µs/point':>9} {'train()':>8}"
        f" {'CPU: package':>13} {'worker':>7}"
    )
    base, added = median("nothing", "wall"), {}
    for way in ways:
        wall = median(way, "wall")
        added[way] = wall - base
        verdict = "  met" if wall <= base * 1.05 else "  MISSED"
        verdict = "" if way in ("nothing", "unread") else verdict
        print(
            f"  {way.replace('_', ' '):12} {wall:12.2f} s {wall / base:7.3f}× "
            f"{wall - base:+7.2f} s {(wall - base) / points * 1e6:7.1f} "
            f"{median(way, 'train'):7.2f} s {median(way, 'package'):11.2f} s "
            f"{median(way, 'worker'):5.2f} s{verdict}"
        )
    step = median("nothing", "train") / points * 1e6
    print(f"  (target ≤ 5 % more wall time; train() of the baseline: {step:.0f} µs a step)")
    share = added["kept_open"] - added["unread"]
    print(
        f"  the platform's share (kept open, minus the same writes to a file it does not read): "
        f"{share:+.2f} s ({share / base:+.1%}); the rest is the package's own json.dumps and write"
    )
    for way in ways[1:-1]:
        last = results[way][-1]
        series, flushes = last["run"].metrics.get(name="loss"), last["batches"]
        print(
            f"  {way.replace('_', ' ')}: {series.count:,} points stored in {series.chunk_count} "
            f"chunks; {len(flushes)} batches (largest {max(n for n, _ in flushes):,} points), "
            f"{last['writes']} database writes, {sum(t for _, t in flushes):.2f} s storing"
        )
    return results["kept_open"][-1]["run"], added


def make_runs(project, user, count):
    """`count` successful runs of the package `curves`, made in bulk (no points)."""
    package = project.packages.get(name="curves")
    same = {
        "project": project,
        "package": package,
        "version": package.versions.get(major=1, minor=0),
    }
    same |= {"created_by": user, "status": "successful", "parameters": PARAMETERS}
    runs = [
        PipelineRun(**same, logged_params=PARAMETERS, score=(index * 7919 % 1000) / 1000)
        for index in range(count)
    ]
    return PipelineRun.objects.bulk_create(runs, batch_size=1000)


def bench_reads(client, headers, one_metric_run, compared, requests, points):
    """2 and 3, server time in this process."""
    api = "/api/v1/projects/default/pipelines"

    def get(url):
        response = client.get(url, **headers)
        assert response.status_code == 200, response.content[:300]
        return response

    print(f"\n2. GET …/metrics?max_points=1000, server time ({requests} requests):")
    whole = f"{api}/{one_metric_run.pk}/metrics"
    one = f"{whole}?max_points=1000"
    five = f"{api}/{compared[0].pk}/metrics?max_points=1000"
    show(f"1 metric of {points:,} points", timed(lambda: get(one), requests), 100)
    show(f"5 metrics of {points:,} points each", timed(lambda: get(five), requests), 100)
    with CaptureQueriesContext(connection) as queries:
        sizes = {name: len(series) for name, series in get(five).json()["metrics"].items()}
    print(f"  points answered: {sizes}, {len(queries)} queries")
    show(f"(no max_points: 1 metric, all {points:,} points)", timed(lambda: get(whole), 5))

    ids = ",".join(str(run.pk) for run in compared)
    print(f"\n3. Compare of 10 runs × 5 metrics × {points:,} points ({requests} requests):")
    show(
        "GET …/compare?ids=(10 runs)", timed(lambda: get(f"{api}/compare?ids={ids}"), requests), 300
    )
    overlay = [f"{api}/{run.pk}/metrics?names=loss&max_points=1000" for run in compared]
    show(
        "overlay: loss of the 10 runs (10 × max_points=1000)",
        timed(lambda: [get(url) for url in overlay], requests),
    )


def bench_list(client, project, user, total, requests):
    """4. The pipelines list with `total` runs."""
    url = f"/p/{project.slug}/pipelines/"
    pages = [
        ("newest first", ""),
        ("last page", "?page=99999"),
        ("metric column", "?metric=loss"),
        ("sorted by the metric", "?metric=loss&sort=-metric"),
        ("sorted by score", "?sort=-score"),
    ]

    def queries(query):
        with CaptureQueriesContext(connection) as captured:
            response = client.get(url + query)
        assert response.status_code == 200, response.status_code
        return len(captured)

    small = {label: queries(query) for label, query in pages}
    count = PipelineRun.objects.count()
    print(f"\n4. The pipelines list: adding {total - count:,} runs…", flush=True)
    began = time.perf_counter()
    for start in range(count, total, 10_000):
        runs = make_runs(project, user, min(10_000, total - start))
        series = [MetricSeries.of(r, "loss", count=9, last=r.score, min=0) for r in runs]
        MetricSeries.objects.bulk_create(series, batch_size=1000)
    settle()
    print(f"  {total:,} runs made in {time.perf_counter() - began:.0f} s (bulk_create)")
    for label, query in pages:
        values = timed(lambda query=query: client.get(url + query), requests)
        show(f"{label} {query}", values, 150)
        print(f"  {'':50} queries: {small[label]} at {count} runs, {queries(query)} at {total:,}")


def bench_mlflow(python, points, repeat, requests, token, added, compared, logged):
    """5. The same against MLflow's tracking server, both over loopback HTTP."""
    print(f"\n5. MLflow's tracking server ({python}), SQLite store, same machine:", flush=True)
    (SCRATCH / "mlflow").mkdir()
    server, url = runserver(ROOT / "manage.py")
    api = f"{url}/api/v1/projects/default/pipelines"
    auth = {"Authorization": f"Bearer {token}"}
    try:
        with MlflowServer(python, SCRATCH / "mlflow") as mlflow:
            logging = mlflow.log_loop(points, repeat)
            base = statistics.median(logging["times"]["nothing"])
            theirs = statistics.median(logging["times"]["log_batch"]) - base
            print(
                f"  the same loop logging {points:,} points through log_batch (1000 a call), "
                f"median of {repeat}: {base:.2f} s + {theirs:.2f} s ({1 + theirs / base:.2f}×)"
            )
            for way in ("kept_open", "formatted", "buffered", "each_point"):
                print(
                    f"  ours ({way.replace('_', ' ')}): +{added[way]:.2f} s, "
                    f"ours/MLflow {added[way] / theirs:.3f}"
                )
            began = time.perf_counter()
            runs = [compared_points(points, run) for run in range(len(compared))]
            experiment, ids = mlflow.compared_runs(runs, PARAMETERS)
            print(
                f"  (10 × 5 × {points:,} points written into MLflow's tables in "
                f"{time.perf_counter() - began:.0f} s)"
            )
            run_id, first = logging["run_id"], ids[0]
            assert len(json.loads(http_get(mlflow.history(run_id, "loss")))["metrics"]) == points
            assert len(json.loads(mlflow.search(experiment, ids))["runs"]) == len(compared)
            our_ids = ",".join(str(run.pk) for run in compared)
            overlay = [f"{api}/{run.pk}/metrics?names=loss&max_points=1000" for run in compared]
            pairs = [
                ("a metric, all its points (get-history)",
                 lambda: http_get(f"{api}/{logged.pk}/metrics", auth),
                 lambda: http_get(mlflow.history(run_id, "loss"))),
                ("a metric, 1000 points (bulk-interval)",
                 lambda: http_get(f"{api}/{logged.pk}/metrics?max_points=1000", auth),
                 lambda: http_get(mlflow.sampled([run_id], "loss"))),
                ("5 metrics, 1000 points each (5 × bulk-interval)",
                 lambda: http_get(f"{api}/{compared[0].pk}/metrics?max_points=1000", auth),
                 lambda: [http_get(mlflow.sampled([first], name)) for name in METRICS]),
                ("compare 10 runs (runs/search)",
                 lambda: http_get(f"{api}/compare?ids={our_ids}", auth),
                 lambda: mlflow.search(experiment, ids)),
                ("overlay: loss of 10 runs (1 bulk-interval)",
                 lambda: [http_get(url, auth) for url in overlay],
                 lambda: http_get(mlflow.sampled(ids, "loss"))),
            ]  # fmt: skip
            print(
                f"  {'over loopback HTTP, median':50} {'ours':>9} {'MLflow':>9} {'ours/MLflow':>12}"
            )
            for label, our_call, their_call in pairs:
                mine = statistics.median(timed(our_call, requests))
                other = statistics.median(timed(their_call, requests))
                print(f"  {label:50} {mine:6.1f} ms {other:6.1f} ms {mine / other:11.2f}")
    finally:
        server.terminate()
        server.wait()
    print("  (MLflow's runs/search has each metric's last value; ours also min, max and steps)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each way (part 1)")
    parser.add_argument("--requests", type=int, default=40, help="timed requests (parts 2–5)")
    parser.add_argument("--runs", type=int, default=100_000, help="runs in the list (part 4)")
    parser.add_argument("--mlflow", help="a Python with mlflow installed (part 5)")
    try:
        args = parser.parse_args()
        project, user = setup()
        print(f"Database: {connection.vendor}; {os.cpu_count()} cores")
        logged, added = bench_logging(project, user, args.points, args.repeat)
        compared = make_runs(project, user, 10)
        began = time.perf_counter()
        for index, run in enumerate(compared):
            metrics_append(run.pk, compared_points(args.points, index))
        settle()
        print(
            f"\n(10 runs × 5 metrics × {args.points:,} points stored with metrics_append in "
            f"{time.perf_counter() - began:.1f} s)"
        )
        token = api_token_create(user=user, name="metrics bench").token
        client = Client(SERVER_NAME="localhost")
        headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
        bench_reads(client, headers, logged, compared, args.requests, args.points)
        if args.mlflow:
            bench_mlflow(
                args.mlflow, args.points, args.repeat, args.requests, token, added, compared, logged
            )
        else:
            print("\n5. MLflow: skipped (give --mlflow PYTHON, a Python with mlflow installed)")
        client.force_login(user)
        bench_list(client, project, user, args.runs, args.requests)
    finally:
        if settings.EMBEDDED_REDIS:
            stop(settings.DATA_DIR)
        shutil.rmtree(SCRATCH, ignore_errors=True)


if __name__ == "__main__":
    main()

"""A run's metrics: points logged by package code (the metrics_file, or MLflow's store), stored
as packed chunks with a summary per metric; read back whole or downsampled, and compared
across runs from the summaries alone."""

import math
import sys
from array import array
from datetime import UTC, datetime

import psycopg
from django.db import connection, transaction

from pipelines.models import MetricChunk, MetricSeries, PipelineRun

# Points per stored chunk once a run has ended (while it runs, each flush writes its own).
CHUNK_POINTS = 1000
# A series is (step int64, value float64, time float64) per point, packed little-endian.
_SWAP = sys.byteorder != "little"


def pack(steps, values, times) -> bytes:
    parts = [array("q", steps), array("d", values), array("d", times)]
    if _SWAP:
        for part in parts:
            part.byteswap()
    return b"".join(part.tobytes() for part in parts)


def unpack(chunks) -> tuple[array, array, array]:
    """The steps, values and times of consecutive chunks [(count, data), …]: one copy each."""
    parts = []
    for code, start in (("q", 0), ("d", 8), ("d", 16)):
        part = array(code)  # PostgreSQL hands back memoryviews, SQLite bytes: both slice alike
        part.frombytes(
            b"".join(memoryview(data)[start * n : (start + 8) * n] for n, data in chunks)
        )
        if _SWAP:
            part.byteswap()
        parts.append(part)
    return parts[0], parts[1], parts[2]


def _chunks(steps, values, times):
    for start in range(0, len(steps), CHUNK_POINTS):
        end = start + CHUNK_POINTS
        yield (
            end - start if end <= len(steps) else len(steps) - start,
            pack(steps[start:end], values[start:end], times[start:end]),
        )


def metrics_append(run_id: int, points: dict[str, list[tuple]]) -> None:
    """Store new points, {name: [(step or None, value, time), …]} in logged order, and bring
    each metric's summary up to date. A point without a step gets the one after its metric's
    last step (0 for the first)."""
    if not points:
        return
    with transaction.atomic():
        existing = {
            series.name: series
            for series in MetricSeries.objects.select_for_update().filter(
                run_id=run_id, name__in=list(points)
            )
        }
        run = None
        chunks = []
        for name, new in points.items():
            series = existing.get(name)
            if series is None:  # a new metric: its row carries the run's keys (the list's)
                run = run or PipelineRun.objects.only("project", "created_at").get(pk=run_id)
                series = MetricSeries.of(run, name)
                series.save(force_insert=True)
            steps, values, times = [], [], []
            step = series.last_step
            for given, value, moment in new:
                step = given if given is not None else (0 if step is None else step + 1)
                steps.append(step)
                values.append(value)
                times.append(moment)
                if math.isfinite(value):
                    series.min = value if series.min is None else min(series.min, value)
                    series.max = value if series.max is None else max(series.max, value)
            series.count += len(steps)
            series.last, series.last_step = values[-1], steps[-1]
            for count, data in _chunks(steps, values, times):
                chunks.append(
                    MetricChunk(series=series, seq=series.chunk_count, count=count, data=data)
                )
                series.chunk_count += 1
            series.last = series.last if math.isfinite(series.last) else None
            series.save()
        MetricChunk.objects.bulk_create(chunks)


def metrics_compact(run_id: int) -> None:
    """Once a run has ended: rewrite a series written in many small flushes as full chunks.
    One at least half full on average is left as it is: reading it costs at most twice the
    rows, rewriting it would delay the run's end."""
    for series in MetricSeries.objects.filter(run_id=run_id):
        if series.chunk_count <= 2 * math.ceil(series.count / CHUNK_POINTS):
            continue
        steps, values, times = _points(series)
        with transaction.atomic():
            series.chunks.all().delete()
            chunks = [
                MetricChunk(series=series, seq=seq, count=count, data=data)
                for seq, (count, data) in enumerate(_chunks(steps, values, times))
            ]
            MetricChunk.objects.bulk_create(chunks)
            series.chunk_count = len(chunks)
            series.save(update_fields=["chunk_count"])


def _points(series) -> tuple[array, array, array]:
    return unpack(list(series.chunks.order_by("seq").values_list("count", "data")))


def downsample(count: int, values, max_points: int) -> list[int]:
    """Indices of at most `max_points` points (at least 2) that keep a series' shape: the first
    and the last, and between them the lowest and the highest point of each equal bucket."""
    if count <= max_points:
        return list(range(count))
    buckets = (max_points - 2) // 2  # two points each
    inner, kept = count - 2, [0]
    for bucket in range(buckets):
        start = 1 + bucket * inner // buckets
        end = 1 + (bucket + 1) * inner // buckets
        if start >= end:
            continue
        stretch = values[start:end]  # a slice: min, max and index run in C, not key calls
        low, high = _first(stretch, min(stretch)), _first(stretch, max(stretch))
        kept += sorted({start + low, start + high})
    kept.append(count - 1)
    return kept


def _first(stretch, value) -> int:
    """Where `value` first is in `stretch`. A NaN (equal to nothing) is only ever min's or max's
    answer when it comes first."""
    return stretch.index(value) if value == value else 0


def _number(value: float) -> float | None:
    return value if math.isfinite(value) else None  # JSON has no NaN or infinity


def metric_points(run, *, names=None, max_points: int | None = None) -> dict[str, list[dict]]:
    """{name: [{"step", "value", "time"}, …]} for the run's metrics (those in `names`, if
    given), each downsampled to at most `max_points` points."""
    series = run.metrics.all()
    if names:
        series = series.filter(name__in=names)
    found = {s.pk: s.name for s in series}
    if not found:
        return {}
    chunks = {pk: [] for pk in found}
    rows = MetricChunk.objects.filter(series_id__in=found).order_by("series_id", "seq")
    for series_id, count, data in _fetched(rows.values_list("series_id", "count", "data")):
        chunks[series_id].append((count, data))
    answer = {}
    for pk, name in sorted(found.items(), key=lambda item: item[1]):
        steps, values, times = unpack(chunks[pk])
        kept = downsample(len(steps), values, max_points) if max_points else range(len(steps))
        answer[name] = [
            {
                "step": steps[i],
                "value": _number(values[i]),
                "time": datetime.fromtimestamp(times[i], UTC).isoformat(),
            }
            for i in kept
        ]
    return answer


def _fetched(query):
    """The rows of `query`. On PostgreSQL they are fetched in binary: psycopg would otherwise
    receive the chunks' bytea as hex text, twice the bytes and nearly twice the time."""
    if connection.vendor != "postgresql":
        return query
    sql, params = query.query.sql_with_params()
    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as cursor:  # Django's own binds client-side
        cursor.execute(sql, params, binary=True)
        return cursor.fetchall()


def metric_summaries(run_ids) -> dict[int, dict[str, dict]]:
    """{run id: {name: {"last", "min", "max", "steps"}}} from the summaries alone (one query)."""
    answer = {run_id: {} for run_id in run_ids}
    rows = MetricSeries.objects.filter(run_id__in=answer).values_list(
        "run_id", "name", "last", "min", "max", "count"
    )
    for run_id, name, last, low, high, count in rows.order_by("run_id", "name"):
        answer[run_id][name] = {"last": last, "min": low, "max": high, "steps": count}
    return answer

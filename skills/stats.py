"""A skill's calls, counted: the web server that made a call pushes a record onto a Redis list
(no database write on the call's path); skill hosts store them in batches, as the newest
calls of each skill and as counts and a latency histogram per minute.

ML Logs get one "predictions" event per skill per minute that had calls, written once the
minute is over: a minute's calls may be stored in several batches, by several hosts, and an
event is never changed. A minute is over when it ended MINUTE_SETTLE_SECONDS ago and no call
of it waits in the list any more; its row's `logged` flag, set in the event's transaction,
makes the event once only, whichever host gets there (rows locked, the flag re-checked).
Calls stored later still than that (a host that popped them, then stalled past the settle
time) count on the pages but not in the event."""

import collections
import json
import logging
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import redis
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from core import events
from core.signatures import BadSignature, sign, verified
from skills import channel
from skills.models import Skill, SkillCall, SkillMinute

logger = logging.getLogger(__name__)
# Records are signed (core.signatures): ones someone else pushed count no call.
CALLS_KEY = f"{channel.PREFIX}:calls"
# Upper edges of the latency histogram's buckets (ms); a last bucket holds the slower ones.
LATENCY_BUCKETS_MS = (1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 70, 100, 150, 200, 300, 500, 700)
LATENCY_BUCKETS_MS += (1000, 2000, 5000, 10000, 30000, 60000)
# Calls kept one by one per skill (the rest only as counts).
RECENT_CALLS = 100
# Records stored per batch.
BATCH = 5000
# An input is kept (when the project keeps them) up to this many characters.
INPUT_CHARS = 2000
# Counts per minute are kept this long, and pruned this often.
MINUTES_KEPT = timedelta(days=30)
PRUNE_EVERY_SECONDS = 3600
_pruned_at = 0.0
# A minute is logged this long after its end at the earliest: a call's record is pushed just
# after its time is taken, another host may be committing a batch of it, and clocks of web
# servers and hosts differ by a little.
MINUTE_SETTLE_SECONDS = 30
# Minutes logged per transaction (the next tick takes the rest).
LOG_BATCH = 500


@dataclass
class Call:
    status: int = 0
    input: bytes = b""


@contextmanager
def timed(skill):
    """Time a call to `skill` and record it (its status and input as the block sets them)."""
    call, began = Call(), time.perf_counter()
    try:
        yield call
    finally:
        record = {
            "skill": skill.pk,
            "time": time.time(),
            "ms": (time.perf_counter() - began) * 1000,
            "status": call.status or 500,
        }
        if skill.project.keep_skill_inputs and call.input:
            record["input"] = call.input[:INPUT_CHARS].decode("utf-8", errors="replace")
        try:
            channel.connection().rpush(CALLS_KEY, sign(json.dumps(record).encode(), to=CALLS_KEY))
        except redis.RedisError:
            pass  # a call not counted is better than a call failed


def call_record(item: bytes) -> dict | None:
    """A record from the list, field by field (None if any is not as timed() writes it). A
    call's status comes from the skill's replica through its host: one record that isn't as it
    should be must cost only itself, never the batch of every skill's calls it came in."""
    try:
        record = json.loads(item)
    except (ValueError, RecursionError):
        return None
    if not isinstance(record, dict):
        return None
    skill, moment, ms = record.get("skill"), record.get("time"), record.get("ms")
    status, given = record.get("status"), record.get("input", "")
    if not (type(skill) is int and type(status) is int and 100 <= status <= 599):
        return None
    if not (_number(moment) and _number(ms) and ms >= 0 and isinstance(given, str)):
        return None
    try:
        datetime.fromtimestamp(moment, UTC)
    except (OverflowError, ValueError, OSError):
        return None
    kept = {"skill": skill, "time": float(moment), "ms": float(ms), "status": status}
    return {**kept, "input": given[:INPUT_CHARS]} if given else kept


def _number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def bucket(ms: float) -> int:
    for index, edge in enumerate(LATENCY_BUCKETS_MS):
        if ms <= edge:
            return index
    return len(LATENCY_BUCKETS_MS)


def record_calls(*, now: float | None = None) -> int:
    """Store the calls recorded since the last time (a skill host does this every tick), then
    log the minutes that are over (`now`, epoch seconds, is for tests)."""
    stored = _store_calls()
    log_finished_minutes(now=now)
    return stored


def _store_calls() -> int:
    global _pruned_at  # noqa: PLW0603 - once an hour per process is enough
    if time.monotonic() - _pruned_at > PRUNE_EVERY_SECONDS:
        _pruned_at = time.monotonic()
        SkillMinute.objects.filter(minute__lt=timezone.now() - MINUTES_KEPT).delete()
    items = channel.connection().lpop(CALLS_KEY, BATCH) or []
    records = _verified(items)
    skills = set(
        Skill.objects.filter(pk__in={r["skill"] for r in records}).values_list("pk", flat=True)
    )
    records = [r for r in records if r["skill"] in skills]  # deleted meanwhile: dropped
    if not records:
        return 0
    minutes = {}
    for record in records:
        moment = datetime.fromtimestamp(record["time"], UTC)
        key = (record["skill"], moment.replace(second=0, microsecond=0))
        counts = minutes.setdefault(key, [0, 0, [0] * (len(LATENCY_BUCKETS_MS) + 1)])
        counts[0] += 1
        counts[1] += record["status"] >= 400
        counts[2][bucket(record["ms"])] += 1
    newest = collections.defaultdict(list)  # only these are kept one by one
    for record in reversed(records):
        if len(newest[record["skill"]]) < RECENT_CALLS:
            newest[record["skill"]].append(record)
    with transaction.atomic():
        SkillCall.objects.bulk_create(
            SkillCall(
                skill_id=r["skill"],
                time=datetime.fromtimestamp(r["time"], UTC),
                milliseconds=r["ms"],
                status=r["status"],
                input=r.get("input", ""),
            )
            for kept in newest.values()
            for r in kept
        )
        for (skill_id, minute), (calls, errors, latencies) in minutes.items():
            row, _ = SkillMinute.objects.select_for_update().get_or_create(
                skill_id=skill_id, minute=minute
            )
            row.calls += calls
            row.errors += errors
            old = row.latencies or [0] * len(latencies)
            row.latencies = [a + b for a, b in zip(old, latencies, strict=False)]
            row.save()
    for skill_id in skills:
        oldest_kept = (
            SkillCall.objects.filter(skill_id=skill_id)
            .order_by("-time")
            .values_list("time", flat=True)[RECENT_CALLS - 1 : RECENT_CALLS]
        )
        if oldest_kept:
            SkillCall.objects.filter(skill_id=skill_id, time__lt=oldest_kept[0]).delete()
    return len(records)


def _verified(items: list[bytes]) -> list[dict]:
    """The records among `items` that a web server of this installation pushed, each as
    call_record() reads it."""
    records, dropped = [], 0
    for item in items:
        try:
            record = call_record(verified(item, to=CALLS_KEY))
        except BadSignature:
            record = None
        if record:
            records.append(record)
        else:  # the others of the batch are stored all the same
            dropped += 1
    if dropped:
        logger.warning("dropped %d call records not signed here or not well-formed", dropped)
    return records


def log_finished_minutes(*, now: float | None = None) -> int:
    """One ML Logs "predictions" event (by the system) per minute of a skill's calls that is
    over and not logged yet; returns how many."""
    over = (now if now is not None else time.time()) - MINUTE_SETTLE_SECONDS
    # the minutes that ended by then: those starting a minute before it, or earlier
    unlogged = SkillMinute.objects.filter(logged=False)
    if not unlogged.filter(minute__lte=datetime.fromtimestamp(over - 60, UTC)).exists():
        return 0  # most ticks: one read of a small index, no write lock taken
    oldest_waiting = channel.connection().lindex(CALLS_KEY, 0)  # the list is oldest first
    if waiting := _verified([oldest_waiting] if oldest_waiting is not None else []):
        over = min(over, waiting[0]["time"])
    before = datetime.fromtimestamp(over - 60, UTC)
    with transaction.atomic():
        rows = list(
            SkillMinute.objects.select_for_update(of=("self",))
            .select_related("skill__project")
            .filter(logged=False, minute__lte=before)
            .order_by("minute")[:LOG_BATCH]
        )
        if not rows:
            return 0
        SkillMinute.objects.filter(pk__in=[row.pk for row in rows]).update(logged=True)
        for row in rows:
            _record_minute(row)
    return len(rows)


def _record_minute(row) -> None:
    skill, project = row.skill, row.skill.project
    calls = f"{row.calls} call{'s' if row.calls != 1 else ''}"
    failed = f", {row.errors} failed" if row.errors else ""
    events.record(
        project=project,
        category="skill",
        action="predictions",
        object_type="skill",
        object_key=skill.name,
        object_name=skill.name,
        url=reverse("skill-detail", args=[project.slug, skill.name]),
        message=f"{calls}{failed} in the minute {row.minute:%H:%M} UTC",
        data={"minute": row.minute.isoformat(), "count": row.calls, "errors": row.errors},
    )


def skill_stats(skill_ids, *, hours: int = 1) -> dict[int, dict]:
    """Calls, failed calls and p50 latency (ms, a bucket's upper edge) of the last `hours`."""
    since = timezone.now() - timedelta(hours=hours)
    found = {pk: {"calls": 0, "errors": 0, "p50_ms": None, "hist": None} for pk in skill_ids}
    for skill_id, calls, errors, latencies in SkillMinute.objects.filter(
        skill_id__in=list(skill_ids), minute__gte=since
    ).values_list("skill_id", "calls", "errors", "latencies"):
        entry = found[skill_id]
        entry["calls"] += calls
        entry["errors"] += errors
        entry["hist"] = [
            a + b for a, b in zip(entry["hist"] or [0] * len(latencies), latencies, strict=False)
        ]
    for entry in found.values():
        hist = entry.pop("hist")
        if hist and entry["calls"]:
            seen = 0
            for index, count in enumerate(hist):
                seen += count
                if seen * 2 >= entry["calls"]:
                    edges = LATENCY_BUCKETS_MS
                    entry["p50_ms"] = edges[index] if index < len(edges) else edges[-1]
                    break
    return found

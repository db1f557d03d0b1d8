"""A run's timeline: how long each phase took, from queued to outputs stored."""

from pipelines.models import PipelineRun

PHASE_LABELS = {
    "queued": ("Queued", "waiting"),
    "environment": ("Python environment", "platform"),
    "materialise": ("Package and data in place", "platform"),
    "python": ("Python started", "platform"),
    "import": ("import train", "code"),
    "__init__": ("Main()", "code"),
    "process_data": ("process_data()", "code"),
    "train": ("train()", "code"),
    "evaluate": ("evaluate()", "code"),
    "save": ("save()", "code"),
    "upload": ("Outputs stored", "platform"),
}


def run_timeline(run) -> dict | None:
    """The run's phases as rows for a bar chart, and where the time went."""
    phases = [p for p in run.phases or [] if p.get("end") is not None]
    if not phases:
        return None
    first = min(p["start"] for p in phases)
    last = max(p["end"] for p in phases)
    total = max(last - first, 1e-6)
    rows, spent = [], {"waiting": 0.0, "platform": 0.0, "code": 0.0}
    for phase in phases:
        label, kind = PHASE_LABELS.get(phase["name"], (phase["name"], "code"))
        seconds = phase["end"] - phase["start"]
        spent[kind] += seconds
        rows.append(
            {
                "label": label,
                "kind": kind,
                "seconds": seconds,
                "offset": phase["start"] - first,
                "left": 100 * (phase["start"] - first) / total,
                "width": max(100 * seconds / total, 0.4),
            }
        )
    reason = run.failure_reason
    if (
        run.status == PipelineRun.FAILED
        and not reason.startswith("platform error")
        and "has no method" not in reason  # a call missing from train.py never started
    ):
        # the package's call that raised (or ran out of time): the last one of its code
        failed = [row for row in rows if row["kind"] == "code"][-1:]
        for row in failed:
            row["failed"] = True
    return {"rows": rows, "total": total, **spent}

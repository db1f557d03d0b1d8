"""What may stop a delete: only live work. A queued or running pipeline run would fail for
lack of the files it is about to read; a finished one only keeps its history, which outlives
the thing (the package's, the dataset's row stays as a tombstone the run still names)."""

from core.errors import conflict


def refuse_live_runs(thing: str, runs) -> None:
    """Refuse to delete `thing` (e.g. "Package classifier") while any of `runs`, the pipeline
    runs that use it, is unfinished."""
    if live := sorted({run.pk for run in runs if not run.is_finished}):
        raise conflict(
            f"{thing} can't be deleted while pipeline run(s) {', '.join(map(str, live))} "
            "use it (scheduled, queued or running): kill them or wait until they finish. "
            "Finished runs don't stop a delete: they keep their history."
        )

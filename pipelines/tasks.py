"""RQ entry points: load the run by id and hand it to the runner. Nothing else lives here."""

from pipelines.runner import run_pipeline


def execute_run(run_id: int) -> None:
    run_pipeline(run_id)

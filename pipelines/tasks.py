"""RQ entry points: load by id and hand over to the runner or the scheduler. Nothing else."""

from core.queue import wait_for_moment
from pipelines.runner.run import run_pipeline
from pipelines.schedules import schedule_fire


def execute_run(run_id: int, not_before: float | None = None) -> None:
    wait_for_moment(not_before)  # a scheduled run: RQ wakes it up to a second early
    run_pipeline(run_id, go_ahead=True)


def fire_schedule(schedule_id: int, due: int) -> None:
    schedule_fire(schedule_id, due)

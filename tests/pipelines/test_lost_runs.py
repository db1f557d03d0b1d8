"""A run the sweeper ended as lost while its worker was only cut off (a network link down for
longer than AICENTER_LOST_AFTER): the worker comes back, and the sweeper's verdict stands. Its
code is stopped, nothing of it becomes a version, and the two writers of its log don't collide.
(tests/multihost/ shows the same with a real link going down between machines.)"""

import threading
import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from packages.models import PackageVersion
from pipelines import transitions
from pipelines.logs import RunLog, run_log_text
from pipelines.models import PipelineRun
from tests.conftest import classifier_and_invoices
from tests.pipelines.sandboxing import run_here

pytestmark = [pytest.mark.django_db(transaction=True)]
REASON = (
    "worker lost: worker-b:2 stopped sending heartbeats 6 s ago (killed, or its machine went down)"
)


def a_training_run(project, user):
    """A run of the classifier on the invoices, as its worker sees it before claiming it."""
    classifier_and_invoices(project, user)
    package = project.packages.get()
    return PipelineRun.objects.create(
        project=project,
        package=package,
        version=package.versions.get(),
        type=PipelineRun.TRAIN,
        created_by=user,
    )


def test_a_late_finish_keeps_the_sweepers_verdict_and_makes_no_version(project, bob):
    run = a_training_run(project, bob)
    transitions.claim(run, status=PipelineRun.RUNNING)
    run.refresh_from_db()
    assert transitions.lost(run, reason=REASON) is not None
    lost_at = PipelineRun.objects.get(pk=run.pk).finished_at
    made = []

    ended = transitions.finish(
        run, status=PipelineRun.SUCCESSFUL, new_version=lambda: made.append(1)
    )

    assert ended == (PipelineRun.FAILED, REASON)
    assert made == []
    run.refresh_from_db()
    assert (run.status, run.failure_reason, run.finished_at) == ("failed", REASON, lost_at)
    assert run.results["run_summary"]["end_at"] == int(lost_at.timestamp())


def test_two_writers_of_one_log_take_turns_instead_of_failing(project, bob):
    run = a_training_run(project, bob)
    worker, sweeper = RunLog(run), RunLog(run)  # both read the same next number
    worker.write("epoch 1\n")
    worker.flush()
    sweeper.platform("Failed: worker lost")
    sweeper.flush()  # its number was taken by the worker's chunk
    worker.write("epoch 2\n")
    worker.flush()  # and now the worker's is taken by the sweeper's

    text, last = run_log_text(run)
    assert last == 3
    lines = [line.split(" ", 1)[1] for line in text.splitlines()]
    assert lines == ["epoch 1", "[aicenter] Failed: worker lost", "epoch 2"]


def test_the_log_of_a_run_just_claimed_is_written_without_a_read(project, bob):
    run = a_training_run(project, bob)
    log = RunLog(run, new=True)  # its worker's: the run has no log yet
    log.write("epoch 1\n")
    with CaptureQueriesContext(connection) as queries:
        log.flush()
    assert [query["sql"].split()[0] for query in queries] == ["INSERT"]


def test_a_new_log_whose_first_number_was_taken_takes_the_next(project, bob):
    run = a_training_run(project, bob)
    sweeper = RunLog(run)
    sweeper.platform("Failed: worker lost")
    sweeper.flush()  # chunk 1, before the worker's first write
    worker = RunLog(run, new=True)
    worker.write("epoch 1\n")
    worker.flush()

    text, last = run_log_text(run)
    assert last == 2
    lines = [line.split(" ", 1)[1] for line in text.splitlines()]
    assert lines == ["[aicenter] Failed: worker lost", "epoch 1"]


@pytest.mark.usefixtures("sandbox_available", "runs_stay_here")
def test_the_code_of_a_run_found_lost_is_stopped_and_its_end_stays_the_sweepers(project, bob):
    def sweep_it_as_lost():
        # the sweeper, on another machine, while this worker's heartbeats don't get through
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            run = PipelineRun.objects.filter(status=PipelineRun.RUNNING).first()
            if run and run.process_group:  # its code runs
                transitions.lost(run, reason=REASON)
                return
            time.sleep(0.05)

    sweeper = threading.Thread(target=sweep_it_as_lost)
    sweeper.start()
    began = time.monotonic()
    run = run_here(project, bob, "time.sleep(60)", save="(OUT / 'saved.txt').write_text('no')")
    sweeper.join()

    assert time.monotonic() - began < 20  # stopped within the kill grace, not after 60 s
    assert (run.status, run.failure_reason) == ("failed", REASON)
    assert not PackageVersion.objects.filter(package__name="attack", minor=1).exists()
    text, _ = run_log_text(run)
    assert "Failed: worker lost" in text

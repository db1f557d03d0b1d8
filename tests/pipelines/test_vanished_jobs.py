"""Queued runs whose jobs vanished from Redis go back in their order, ahead of runs queued
since, and an outage's losses are not held against them: only jobs lost while Redis and the
database were there count toward the limit of three. (The sweeper's part, on the suite's
Redis; tests/pipelines/test_database_outage.py has workers and a database really stopped.)"""

from datetime import timedelta

import django_rq
import pytest
from django.utils import timezone
from rq.job import Job

from pipelines import outages
from pipelines.models import PipelineRun
from pipelines.sweeper import requeue_vanished_runs
from tests.conftest import classifier_and_invoices, classifier_run

pytestmark = pytest.mark.django_db(transaction=True)  # runs reach Redis once committed


@pytest.fixture
def queued(project, bob):
    """queued(n): n runs queued on the gpu queue (no worker of the suite takes them), old
    enough for the sweeper to look at, oldest first."""
    classifier_and_invoices(project, bob)
    redis = django_rq.get_connection("gpu")
    redis.delete(outages.OUTAGE_SEEN_KEY)  # no database outage known

    def make(count):
        runs = [classifier_run(project, bob, gpu=True) for _ in range(count)]
        for age, run in zip(range(count + 10, 10, -1), runs, strict=True):
            PipelineRun.objects.filter(pk=run.pk).update(
                created_at=timezone.now() - timedelta(seconds=age)
            )
        return runs

    return make


def lose(run) -> None:
    """Its job gone from Redis, as a job is that a worker dropped."""
    run.refresh_from_db()
    redis = django_rq.get_connection("gpu")
    Job.fetch(run.job_id, connection=redis).delete()


def in_the_queue() -> list[int]:
    """The runs of the gpu queue's jobs, in the order workers will take them."""
    return [job.args[0] for job in django_rq.get_queue("gpu").get_jobs()]


def test_runs_lost_when_redis_restarted_go_back_first_in_their_order_uncounted(queued):
    outages.last_outage()  # a sweep before: Redis as it was is known
    runs = queued(3)
    redis = django_rq.get_connection("gpu")
    for run in runs:  # Redis restarted empty: its jobs and everything else are gone
        lose(run)
    redis.delete(outages.REDIS_SERVER_KEY)
    (since,) = queued(1)  # queued after the restart: its job is there

    requeue_vanished_runs()

    assert in_the_queue() == [run.pk for run in runs] + [since.pk]
    again = list(PipelineRun.objects.filter(pk__in=[run.pk for run in runs]).order_by("pk"))
    assert [(run.enqueue_count, run.lost_count) for run in again] == [(2, 0)] * 3


def test_only_jobs_lost_while_everything_was_up_count_and_the_third_fails_the_run(queued):
    outages.last_outage()
    (run,) = queued(1)
    # a worker found the database unreachable after the run was queued: the loss may be its
    django_rq.get_connection("gpu").set(outages.OUTAGE_SEEN_KEY, timezone.now().timestamp())
    lose(run)
    requeue_vanished_runs()
    run.refresh_from_db()
    assert (run.status, run.enqueue_count, run.lost_count) == ("queued", 2, 0)

    for lost in (1, 2):  # then lost with everything up: counted
        lose(run)
        requeue_vanished_runs()
        run.refresh_from_db()
        assert (run.status, run.lost_count) == ("queued", lost)
    lose(run)
    requeue_vanished_runs()
    run.refresh_from_db()
    assert run.status == "failed"
    assert run.failure_reason.startswith("its job was lost from Redis 3 times")

"""Redis write access is not the worker's rights: with nothing but a connection to Redis (what
a build that reached Redis on the network had), an attacker queues jobs for the session's real
worker (`manage.py rqworker pipelines`). None of them runs or is unpickled; the worker says so
in its log and runs the next legitimate run as usual.

The attacker is a process of its own with plain `rq` (no Django, none of the platform's code):
RQ's own pickle serializer, RQ's own enqueue."""

import subprocess
import sys
import textwrap
import time
import uuid

import pytest
from django.conf import settings

from core import queue
from pipelines.models import PipelineRun
from tests.conftest import classifier_and_invoices, classifier_run, wait_for, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

ATTACKER = textwrap.dedent(
    """
    import hashlib, hmac, json, os, sys
    from datetime import datetime, timezone

    from redis import Redis
    from rq import Queue

    url, how, job_id, ran, read = sys.argv[1:]
    redis = Redis.from_url(url)


    class Gadget:
        # unpickled, it runs a command: RQ's pickle serializer reads a job's meta as it
        # fetches the job, before anything else
        def __reduce__(self):
            return (os.system, (f"touch {read}",))


    class WrongKey:
        # the platform's format (64 hex digits of HMAC-SHA256, then JSON), signed with a key
        # that isn't the installation's
        @staticmethod
        def dumps(obj):
            payload = json.dumps(obj).encode()
            return hmac.new(b"a guess", payload, hashlib.sha256).hexdigest().encode() + payload

        loads = staticmethod(json.loads)


    command = f"touch {ran}"
    if how == "pickle":
        Queue("pipelines", connection=redis).enqueue(
            "os.system", command, job_id=job_id, meta={"gadget": Gadget()}
        )
    elif how == "pickle-at":  # through the scheduler that every worker runs
        Queue("pipelines", connection=redis).enqueue_at(
            datetime.now(timezone.utc), "os.system", command, job_id=job_id,
            meta={"gadget": Gadget()},
        )
    elif how == "wrong-key":
        Queue("pipelines", connection=redis, serializer=WrongKey).enqueue(
            "os.system", command, job_id=job_id
        )
    elif how == "unreadable":  # a job RQ can't parse: today it stops the worker
        redis.hset(f"rq:job:{job_id}", mapping={"data": b"x", "status": "no-such-status"})
        redis.rpush("rq:queue:pipelines", job_id)
    """
)


def attack(how, tmp_path):
    """The attacker queues one job (`how`); returns its id and the files that would prove it
    ran (its function) or was unpickled (its meta)."""
    job_id = f"attack-{how}-{uuid.uuid4().hex[:8]}"
    ran, read = tmp_path / f"{job_id}-ran", tmp_path / f"{job_id}-read"
    subprocess.run(
        [sys.executable, "-c", ATTACKER, settings.REDIS_URL, how, job_id, str(ran), str(read)],
        check=True,
        env={"PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    return job_id, ran, read


def refused(worker, job_id) -> bool:
    return f"refused job {job_id} from queue pipelines" in worker.log_path.read_text(
        errors="replace"
    )


def assert_a_legitimate_run_succeeds(project, user):
    run = wait_for(classifier_run(project, user), timeout=120)
    assert run.status == PipelineRun.SUCCESSFUL, run.failure_reason


@pytest.mark.parametrize("how", ["pickle", "pickle-at"])
def test_a_pickled_job_never_runs_nor_is_unpickled(how, worker, project, bob, tmp_path):
    classifier_and_invoices(project, bob)
    job_id, ran, read = attack(how, tmp_path)

    wait_until(lambda: refused(worker, job_id) or ran.exists() or read.exists(), 30, "no sign")
    assert_a_legitimate_run_succeeds(project, bob)  # queued after it: the worker took it

    assert not read.exists(), "the worker (or its scheduler) unpickled the attacker's job"
    assert not ran.exists(), "the worker ran the attacker's job"
    assert refused(worker, job_id)
    assert worker.poll() is None


def test_a_job_signed_with_another_key_never_runs(worker, project, bob, tmp_path):
    classifier_and_invoices(project, bob)
    job_id, ran, _ = attack("wrong-key", tmp_path)

    wait_until(lambda: refused(worker, job_id), 30, "the worker never said it refused the job")
    assert_a_legitimate_run_succeeds(project, bob)
    assert not ran.exists()
    line = next(
        line for line in worker.log_path.read_text().splitlines() if f"refused job {job_id}" in line
    )
    assert "signature doesn't verify" in line
    assert not queue.connection("pipelines").exists(f"rq:job:{job_id}")  # deleted, not kept


def test_a_job_rq_cant_read_is_refused_and_the_worker_goes_on(worker, project, bob, tmp_path):
    classifier_and_invoices(project, bob)
    job_id, _, _ = attack("unreadable", tmp_path)

    wait_until(lambda: refused(worker, job_id), 30, "the worker never said it refused the job")
    time.sleep(0.5)
    assert worker.poll() is None, "the worker stopped"
    assert_a_legitimate_run_succeeds(project, bob)

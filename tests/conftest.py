import contextlib
import io
import itertools
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3
import django_rq
import pytest
import redis
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import OperationalError, connection
from django.db.backends.base.operations import BaseDatabaseOperations
from django.test import Client
from moto.server import ThreadedMotoServer
from rq import Worker
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.registry import (
    CanceledJobRegistry,
    DeferredJobRegistry,
    FailedJobRegistry,
    FinishedJobRegistry,
    ScheduledJobRegistry,
)

from core.models import Membership, Project
from core.tokens import api_token_create
from datasets.services import dataset_create, dataset_file_put
from packages.services import package_create
from pipelines.models import PipelineRun
from pipelines.worker_counts import forget_worker_counts
from tests.factories import package_zip

# The session's package index, the operator's for the builds (fixture `package_index`).
pytest_plugins = ["tests.package_index"]

# A transactional test's teardown empties every table with one TRUNCATE, while the session's
# workers sweep: PostgreSQL may pick the TRUNCATE as a deadlock's victim. It is tried again
# (its transaction rolled back whole), as Django's own flush would be if run again.
FLUSH_ATTEMPTS = 5


def _flush_retrying_deadlocks(execute_sql_flush):
    def flush(self, sql_list):
        for attempt in range(FLUSH_ATTEMPTS):
            try:
                return execute_sql_flush(self, sql_list)
            except OperationalError as error:
                if "deadlock detected" not in str(error) or attempt == FLUSH_ATTEMPTS - 1:
                    raise
                time.sleep(0.1 * (attempt + 1))

    return flush


BaseDatabaseOperations.execute_sql_flush = _flush_retrying_deadlocks(
    BaseDatabaseOperations.execute_sql_flush
)


def requires(available: bool, what: str) -> None:
    """Skip a test that needs a tool this machine lacks; under CI=true, where every tool must
    be there, fail it instead, so a missing install step can't pass for a green run."""
    if available:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true and {what}")
    pytest.skip(what)


@pytest.fixture(autouse=True)
def _clean_storage(settings):
    """Each test starts with empty local storage, so 'nothing stored' can be checked."""
    yield
    shutil.rmtree(settings.DATA_DIR / "storage", ignore_errors=True)


@pytest.fixture
def project(db):
    return Project.objects.create(slug="alpha", name="Alpha")


def _user(django_user_model, username, project=None, role=None):
    user = django_user_model.objects.create_user(username=username, password="pw-" + username)
    if project and role:
        Membership.objects.create(project=project, user=user, role=role)
    return user


@pytest.fixture
def alice(django_user_model, project):
    """Project admin of Alpha."""
    return _user(django_user_model, "alice", project, Membership.ADMIN)


@pytest.fixture
def bob(django_user_model, project):
    """Data scientist in Alpha."""
    return _user(django_user_model, "bob", project, Membership.DATA_SCIENTIST)


@pytest.fixture
def vera(django_user_model, project):
    """Viewer in Alpha: reads only."""
    return _user(django_user_model, "vera", project, Membership.VIEWER)


@pytest.fixture
def charlie(django_user_model, db):
    """In no project: must see nothing of Alpha."""
    return _user(django_user_model, "charlie")


class ApiClient(Client):
    """The test client, authenticated with a real API token and speaking JSON."""

    made = itertools.count(1)  # a token's name is unique per user: one per client

    def __init__(self, user):
        token = api_token_create(user=user, name=f"test client {next(self.made)}").token
        super().__init__(headers={"Authorization": f"Bearer {token}"})

    def post_json(self, path, data):
        return self.post(path, data, content_type="application/json")

    def patch_json(self, path, data):
        return self.patch(path, data, content_type="application/json")


@pytest.fixture
def api_as():
    return ApiClient


@pytest.fixture
def pages_as(client):
    def login(user):
        client.force_login(user)
        return client

    return login


@pytest.fixture
def runs_stay_here(monkeypatch):
    """Runs created stay out of Redis, for tests that execute them with the runner in this
    process (run_pipeline): a worker started by another test must not claim them first."""
    monkeypatch.setattr("pipelines.services.pipeline_run_enqueue", lambda *, run: None)


def upload(name="package.zip", content=None, **overrides):
    return SimpleUploadedFile(name, content if content is not None else package_zip(**overrides))


def classifier_and_invoices(project, user, *, content=b"1,2\n"):
    """What a run needs, made through the services: the package `classifier` 1.0 (the
    factory's zip) and the dataset `invoices` holding one file, a.csv."""
    package_create(project=project, user=user, name="classifier", file=upload())
    dataset = dataset_create(project=project, user=user, name="invoices")
    dataset_file_put(user=user, dataset=dataset, path="a.csv", fileobj=io.BytesIO(content))
    return dataset


def classifier_run(project, user, **fields):
    """A training run of classifier 1.0 on invoices (see classifier_and_invoices), created
    through the service; `fields` change or add inputs."""
    from pipelines.services import pipeline_run_create

    inputs = {"type": "train", "package": "classifier", "version": "1.0", "dataset": "invoices"}
    return pipeline_run_create(project=project, user=user, **{**inputs, **fields})


def stored_files():
    """Every file under local storage (blobs included)."""
    root = settings.DATA_DIR / "storage"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


# Real RQ workers against the real Redis (embedded, or REDIS_URL), shared by tests/pipelines
# and tests/e2e. They run `manage.py rqworker` in their own processes on the test database,
# so the tests that use them need committed data: transactional_db.


def start_worker(*queues, name=None, env=None, new_session=False):
    """`manage.py rqworker` on the test database; its output goes to a log in the data dir,
    quoted when it does not start. `env` adds variables; `new_session` puts it in a process
    group of its own (so a test can kill the worker with everything it started)."""
    arguments = ["rqworker", *queues] + (["--name", name] if name else [])
    return start_manage(arguments, log="worker", env=env, new_session=new_session)


def start_manage(arguments, *, log, env=None, new_session=False, wrapper=()):
    """`manage.py <arguments>` in its own process on the test database, its output in a log
    in the data dir (`process.log_path`); `wrapper` is a command that runs it (as another
    user, say)."""
    env = {**os.environ, **(env or {})}
    env["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    env["AICENTER_TEST_DATABASE_NAME"] = connection.settings_dict["NAME"]
    command = [*wrapper, sys.executable, str(settings.BASE_DIR / "manage.py"), *arguments]
    log_path = settings.DATA_DIR / f"{log}-{time.monotonic_ns()}.log"
    with open(log_path, "wb") as out:
        process = subprocess.Popen(
            command,
            env=env,
            cwd=settings.BASE_DIR,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=new_session,
        )
    process.log_path, process.own_group = log_path, new_session
    return process


def log_tail(process, lines=30):
    path = getattr(process, "log_path", None)
    if path is None or not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def alive(pid: int) -> bool:
    """Running, not a zombie waiting for a parent that doesn't reap it."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in ("Z", "X")


def worker_alive(worker: Worker) -> bool:
    """False for a worker of this machine whose process is gone: a SIGKILLed worker can't
    unregister, and RQ keeps its key for minutes. Another machine's worker can't be checked."""
    if worker.hostname != socket.gethostname() or not worker.pid:
        return True
    return alive(worker.pid)


def free_port() -> int:
    """A TCP port on loopback that nothing listens on (for a server the test starts)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_workers(count, queue="pipelines", timeout=30, process=None):
    connection_ = django_rq.get_connection(queue)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(
                f"the worker exited with code {process.returncode}:\n{log_tail(process)}"
            )
        listening = [
            w
            for w in Worker.all(connection=connection_)
            if queue in w.queue_names() and worker_alive(w)
        ]
        if len(listening) >= count:
            return
        time.sleep(0.1)
    tail = log_tail(process) if process is not None else ""
    raise TimeoutError(f"{count} worker(s) on {queue} did not start in {timeout} s\n{tail}")


def stop(process):
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if getattr(
        process, "own_group", False
    ):  # what it started and left (a job's process) goes with it
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


_FINISHED_WITH = (
    FinishedJobRegistry,
    FailedJobRegistry,
    DeferredJobRegistry,
    ScheduledJobRegistry,
    CanceledJobRegistry,
)


def end_workers_of_earlier_sessions() -> None:
    """At the session's start no worker of ours exists yet: a live `rqworker` registered in
    the test Redis is an earlier session's, left behind, which would take this session's runs
    (a GPU run would not wait for a GPU worker). End it."""
    for worker in Worker.all(connection=django_rq.get_connection("pipelines")):
        if worker.hostname != socket.gethostname() or not worker.pid or not alive(worker.pid):
            continue
        try:
            command = Path(f"/proc/{worker.pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"rqworker" in command:
            os.kill(worker.pid, signal.SIGKILL)
            worker.register_death()


def redis_forget_earlier_tests() -> None:
    """Redis as a test expects to find it: no worker registered whose process is gone (a
    SIGKILLed GPU worker would count as a GPU worker for the rest of the session), and no job
    an earlier test left queued, scheduled or finished. The session's worker and its job, if it
    is still busy with an earlier test's run, are left alone."""
    connection = django_rq.get_connection("pipelines")
    for worker in Worker.all(connection=connection):
        if not worker_alive(worker):
            if job_id := worker.get_current_job_id():
                _delete_job(job_id, connection)
            worker.register_death()
    for name in settings.RQ_QUEUES:
        queue = django_rq.get_queue(name)
        queue.empty()
        for registry_class in _FINISHED_WITH:
            registry = registry_class(name, connection=queue.connection)
            for job_id in registry.get_job_ids(cleanup=False):
                _delete_job(job_id, queue.connection)
            queue.connection.delete(registry.key)


def _delete_job(job_id, connection):
    try:
        Job.fetch(job_id, connection=connection).delete()
    except (NoSuchJobError, ValueError):  # gone, or its execution record gone meanwhile
        pass


@pytest.fixture(autouse=True)
def _redis_clean():
    """Each test's Redis state is its own (see redis_forget_earlier_tests), and so are the
    worker counts this process keeps for a few seconds."""
    try:
        redis_forget_earlier_tests()
    except redis.ConnectionError:
        pass  # no Redis running: nothing of an earlier test's is in it
    forget_worker_counts()


@pytest.fixture(scope="session")
def worker(django_db_setup, django_db_blocker, package_index):
    """One warm `manage.py rqworker pipelines` for the session (builds see the session's
    package index)."""
    # Before it starts: a job left in a shared Redis by an earlier session names a run id that
    # this session's fresh database may give to another run, and its workers would take ours.
    end_workers_of_earlier_sessions()
    redis_forget_earlier_tests()
    with django_db_blocker.unblock():
        # its own process group, so that stopping it at the end stops whatever it started,
        # and nothing of it still holds the test database when that is dropped
        process = start_worker("pipelines", new_session=True)
        wait_for_workers(1, process=process)
    yield process
    stop(process)


@pytest.fixture
def second_worker(worker, django_db_blocker):
    with django_db_blocker.unblock():
        process = start_worker("pipelines", new_session=True)
        wait_for_workers(2, process=process)
    yield process
    stop(process)


def wait_for(run, *, statuses=PipelineRun.FINISHED, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if run.status in statuses:
            if os.environ.get("AICENTER_TEST_SHOW_LOGS"):
                print("".join(run.log_chunks.order_by("seq").values_list("text", flat=True)))
            return run
        time.sleep(0.05)
    raise TimeoutError(f"run {run.pk} still {run.status} after {timeout} s")


def wait_until(check, timeout, message):
    """Poll `check()` until it is true; return when (time.monotonic()), or fail with `message`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return time.monotonic()
        time.sleep(0.05)
    raise AssertionError(message)


@pytest.fixture
def tmp_path(request):
    """A fresh folder that package code in its sandbox sees too, at the same path (the test
    settings' SANDBOX_SHARED_DIRS): tests hand files to runs and runs leave notes in it."""
    (shared,) = settings.SANDBOX_SHARED_DIRS
    shared.mkdir(parents=True, exist_ok=True)
    shared.chmod(0o777)
    name = "".join(c if c.isalnum() else "_" for c in request.node.name)[:60]
    folder = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=shared))
    folder.chmod(0o777)
    return folder


# moto's S3-compatible server, for tests of storage on S3 (and of workers that only have S3).
BUCKET = "aicenter-test"


def use_s3_storage(settings, endpoint, bucket=BUCKET) -> None:
    """This process's storage is the bucket on moto's server at `endpoint` (the `settings`
    fixture puts it back after the test)."""
    options = {
        "bucket_name": bucket,
        "endpoint_url": endpoint,
        "access_key": "testing",
        "secret_key": "testing",
        "region_name": "us-east-1",
        "file_overwrite": True,
        "default_acl": None,
    }
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": options},
    }


@pytest.fixture(scope="session")
def s3_server():
    """moto's S3 server on loopback, speaking real HTTP, with one empty bucket."""
    port = free_port()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    client.create_bucket(Bucket=BUCKET)
    yield endpoint, client
    server.stop()

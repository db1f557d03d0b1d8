"""Environment builds, attacked by hostile packages: no code a package brings runs outside its
run's sandbox, and a build's own runs as a uid of its own, refused keyrings and user namespaces.

- A wheel's .pth never runs at build time (the bytecode is compiled by an isolated Python
  without site), so it reaches neither this machine's loopback services nor any cache; it runs
  in the run's sandbox, which still gets compiled bytecode.
- Builds have no host network: the installer reaches only the operator's package index,
  through the worker's index proxy. Source builds, when allowed, too.
- Each build has its own installers' cache, gone when the build ends: nothing planted in it
  reaches another build.
- Requirement lines that change where packages come from are refused before any build (and at
  upload: tests/test_package_requirements.py).

The packages come from the session's package index (tests/package_index.py), set up as the
operator's. The sandbox tests' helpers are in tests/pipelines/sandboxing.py, their fixtures in
tests/pipelines/conftest.py."""

import importlib.util
import io
import json
import socket
import threading
from pathlib import Path

import pytest
from django.conf import settings

from datasets.services import dataset_create, dataset_file_put
from environments.builds import EnvironmentUnavailable
from environments.environments import environment_for
from environments.models import EnvironmentBuild
from environments.records import environment_key
from packages.services import package_create
from pipelines.runner.run import run_pipeline
from pipelines.services import pipeline_run_create
from sandbox import sandbox_uids
from tests.conftest import upload
from tests.factories import package_zip
from tests.package_index import PackageIndex, sdist, wheel
from tests.pipelines.sandboxing import KERNEL_ATTEMPTS, assert_kernel_refused, files_of, run_here

# Committed rows: the runner's watch thread reads the run on a connection of its own; the runs
# are executed here, never by a worker.
pytestmark = [
    pytest.mark.usefixtures("sandbox_available"),
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("runs_stay_here"),
]


class Listener:
    """A TCP server on the host's loopback, standing for Redis or PostgreSQL: it notes whoever
    reaches it."""

    def __init__(self):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.reached = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                connection, address = self.server.accept()
            except OSError:
                return
            self.reached.append(address)
            connection.close()


@pytest.fixture
def listener():
    server = Listener()
    yield server
    server.server.close()


@pytest.fixture
def shared_cache(settings):
    """Where every build's installers' cache used to be (one for all builds): a file in it that
    package code would plant into."""
    folder = settings.DATA_DIR / "installer-cache"
    folder.mkdir(exist_ok=True)
    planted = folder / "shared-by-builds.txt"
    planted.write_text("clean\n")
    planted.chmod(0o666)
    yield planted
    planted.unlink()


@pytest.fixture
def environments(settings, tmp_path):
    settings.ENVIRONMENTS_DIR = tmp_path / "environments"
    return settings.ENVIRONMENTS_DIR


# What the hostile wheel's .pth runs at every start of a Python that has it on its path: notes
# where it ran, calls "Redis" on loopback, plants into the installers' cache.
HOOK = """\
import json, os, socket, sys


def run():
    note = json.dumps({"prefix": sys.prefix, "uid": os.getuid(), "argv": sys.argv[:2]})
    for folder in (sys.prefix, SHARED):
        try:
            with open(os.path.join(folder, "pth-ran.jsonl"), "a") as out:
                out.write(note + "\\n")
        except OSError:
            pass
    try:
        socket.create_connection(("127.0.0.1", PORT), timeout=2).close()
    except OSError:
        pass
    try:
        with open(PLANTED, "a") as cache:
            cache.write("planted by a .pth\\n")
    except OSError:
        pass
"""


def evil_wheel(listener, shared_cache, shared):
    hook = (
        HOOK.replace("SHARED", repr(str(shared)))
        .replace("PORT", str(listener.port))
        .replace("PLANTED", repr(str(shared_cache)))
    )
    return wheel(
        "aicenter-evil-pth",
        "1.0",
        {
            "aicenter_evil_hook.py": hook,
            "aicenter_evil.pth": "import aicenter_evil_hook; aicenter_evil_hook.run()\n",
            "aicenter_evil_lib/__init__.py": "VERSION = 1\n",
            "aicenter_evil_lib/tests/test_it.py": "def test_it():\n    pass\n",
        },
    )


def fresh_bytecode(source: Path) -> bool:
    """Is there a .pyc for `source` that Python takes as it is (its recorded mtime and size)?"""
    compiled = Path(importlib.util.cache_from_source(str(source)))
    if not compiled.exists():
        return False
    header = compiled.read_bytes()[:16]
    if int.from_bytes(header[4:8], "little"):  # hash-based: valid as long as it matches
        return True
    stat = source.stat()
    return header[8:12] == (int(stat.st_mtime) & 0xFFFFFFFF).to_bytes(4, "little") and header[
        12:16
    ] == (stat.st_size & 0xFFFFFFFF).to_bytes(4, "little")


def test_a_wheels_pth_never_runs_at_build_time_only_in_the_run(
    package_index, listener, shared_cache, environments, tmp_path, project, bob
):
    with package_index.serving("aicenter-evil-pth", evil_wheel(listener, shared_cache, tmp_path)):
        environment = environment_for(python_version="3.11", requirements="aicenter-evil-pth==1.0")
        site_packages = environment.path / "lib" / "python3.11" / "site-packages"
        assert (site_packages / "aicenter_evil.pth").exists()  # installed, as it is
        assert not (environment.path / "pth-ran.jsonl").exists()  # never ran while building
        assert listener.reached == []
        assert shared_cache.read_text() == "clean\n"
        assert not (environment.path / ".build-cache").exists()  # its own cache, gone
        assert fresh_bytecode(site_packages / "aicenter_evil_hook.py")
        assert fresh_bytecode(site_packages / "aicenter_evil_lib" / "__init__.py")
        assert not fresh_bytecode(site_packages / "aicenter_evil_lib" / "tests" / "test_it.py")

        train = """
import aicenter_evil_hook as hook
(OUT / "hook.json").write_text(json.dumps([hook.__cached__, os.path.exists(hook.__cached__)]))
"""
        run = run_here(project, bob, train, requirements="aicenter-evil-pth==1.0\n")
    assert run.status == "successful", run.failure_reason
    # the .pth ran in the run's sandbox only: no network there, nothing of the cache
    notes = [json.loads(line) for line in (tmp_path / "pth-ran.jsonl").read_text().splitlines()]
    assert notes and all(note["uid"] not in sandbox_uids.part(sandbox_uids.BUILD) for note in notes)
    assert listener.reached == []
    assert shared_cache.read_text() == "clean\n"
    cached, exists = json.loads(files_of(run.artifacts)["hook.json"])
    assert exists and cached.startswith(str(settings.ENVIRONMENTS_DIR))


# A source build's code: what it could reach and touch, noted in the environment it builds.
SETUP_PY = """\
import json, os, socket
from pathlib import Path
from setuptools import setup


def attempt(action):
    try:
        result = action()
        return "done" if result is None or isinstance(result, int) else result
    except Exception as error:
        return f"{type(error).__name__}: {error}"[:200]


def through_the_proxy():
    proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
    if not proxy:
        return "no proxy"
    host, port = proxy.rsplit("/", 1)[-1].rsplit(":", 1)
    crlf = "\\x0d\\x0a"  # setuptools runs setup.py with every backslash-r-backslash-n replaced
    request = f"CONNECT 127.0.0.1:PORT HTTP/1.1{crlf}Host: 127.0.0.1:PORT{crlf}{crlf}"
    with socket.create_connection((host, int(port)), timeout=5) as connection:
        connection.sendall(request.encode())
        return connection.recv(200).decode(errors="replace").split(crlf)[0]


proof = {"uid": os.getuid(), "environ": sorted(os.environ)}
proof["direct"] = attempt(lambda: socket.create_connection(("127.0.0.1", PORT), timeout=3).close())
proof["through the proxy"] = attempt(through_the_proxy)
proof["data dir"] = attempt(lambda: os.listdir(DATA_DIR))
cache = os.environ.get("UV_CACHE_DIR") or os.environ.get("PIP_CACHE_DIR") or "/nowhere"
proof["planted"] = attempt(lambda: Path(cache, "planted-by-setup-py").write_text("x"))
proof["kernel"] = kernel_attempts()
Path(PROOF).write_text(json.dumps(proof))
setup(name="aicenter-evil-sdist", version="1.0", py_modules=[])
"""


def evil_sdist(listener, proof: Path):
    setup_py = KERNEL_ATTEMPTS + (
        SETUP_PY.replace("PORT", str(listener.port))
        .replace("DATA_DIR", repr(str(settings.DATA_DIR)))
        .replace("PROOF", repr(str(proof)))
    )
    return sdist("aicenter-evil-sdist", "1.0", setup_py)


def test_builds_install_wheels_only_and_say_so(package_index, listener, environments):
    key = environment_key("3.11", "aicenter-evil-sdist==1.0")
    with package_index.serving("aicenter-evil-sdist", evil_sdist(listener, environments / key)):
        with pytest.raises(EnvironmentUnavailable) as raised:
            environment_for(python_version="3.11", requirements="aicenter-evil-sdist==1.0")
    assert "dependency install failed: aicenter-evil-sdist" in raised.value.reason
    assert "AICENTER_SOURCE_BUILDS=true" in raised.value.reason
    assert listener.reached == []  # its build code never ran


def test_a_source_build_has_no_host_network_and_a_cache_of_its_own(
    package_index, listener, environments, settings
):
    settings.ENVIRONMENT_SOURCE_BUILDS = True
    requirements = "aicenter-evil-sdist==1.0"
    proof_file = environments / environment_key("3.11", requirements) / "proof.json"
    lines = []
    with package_index.serving("aicenter-evil-sdist", evil_sdist(listener, proof_file)):
        environment_for(
            python_version="3.11",
            requirements=requirements,
            log=lambda text, platform=False: lines.append(text),
        )
    assert proof_file.exists(), "".join(lines)
    proof = json.loads(proof_file.read_text())
    assert proof["direct"].startswith("ConnectionRefusedError")  # loopback is the sandbox's
    assert proof["through the proxy"].endswith("403 Forbidden")  # the index proxy: index only
    assert listener.reached == []
    assert "refused a connection to 127.0.0.1:" in "".join(lines)
    assert proof["uid"] in sandbox_uids.part(sandbox_uids.BUILD)  # a uid of its own
    assert_kernel_refused(proof["kernel"])  # no keyring, no user namespace of its own
    assert "SECRET_KEY" not in proof["environ"]
    assert not any(name.startswith(("DATABASE", "REDIS", "AWS")) for name in proof["environ"])
    # nothing of the data dir but the folders on the way to its environment (in tmp_path here)
    assert set(proof["data dir"]) <= {"environments", "shared"}
    assert proof["planted"] == "done"  # into its own cache, which is gone with the build
    assert not list(settings.DATA_DIR.rglob("planted-by-setup-py"))


def test_a_stored_version_whose_requirements_change_the_index_is_refused_at_build(
    listener, settings, project, bob
):
    elsewhere = f"http://127.0.0.1:{listener.port}/simple"
    requirements = f"six==1.16.0\n--extra-index-url {elsewhere}\nx @ {elsewhere}/x-1.0.whl\n"
    settings.REQUIREMENTS_ALLOW_SOURCES = True  # as when it was stored (or a run wrote it)
    package_create(
        project=project,
        user=bob,
        name="redirected",
        file=upload(content=package_zip(**{"requirements.txt": requirements})),
    )
    settings.REQUIREMENTS_ALLOW_SOURCES = False
    dataset = dataset_create(project=project, user=bob, name="d")
    dataset_file_put(user=bob, dataset=dataset, path="a.csv", fileobj=io.BytesIO(b"1\n"))
    run = pipeline_run_create(
        project=project, user=bob, type="train", package="redirected", version="1.0", dataset="d"
    )
    run_pipeline(run)
    run.refresh_from_db()
    assert run.status == "failed"
    assert run.failure_reason.startswith("dependency install refused: requirements.txt: ")
    assert f"'--extra-index-url {elsewhere}'" in run.failure_reason
    record = EnvironmentBuild.objects.get(versions__package__name="redirected")
    assert record.status == "failed" and f"--extra-index-url {elsewhere}" in record.detail
    assert listener.reached == []


def test_an_operator_may_allow_another_index_in_requirements(environments, settings):
    settings.REQUIREMENTS_ALLOW_SOURCES = True
    other = PackageIndex()
    try:
        with other.serving("aicenter-elsewhere", wheel("aicenter-elsewhere", "1.0", {"e.py": ""})):
            environment = environment_for(
                python_version="3.11",
                requirements=f"--extra-index-url {other.url}\naicenter-elsewhere==1.0",
            )
    finally:
        other.close()
    assert (environment.path / "lib" / "python3.11" / "site-packages" / "e.py").exists()

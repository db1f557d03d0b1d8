"""The sandbox and environment builds: wheels only by default; source builds, when allowed,
sandboxed as a uid of their own, refused keyrings and user namespaces.

The sandbox tests' helpers are in tests/pipelines/sandboxing.py, their fixtures in
tests/pipelines/conftest.py."""

import json

import pytest
from django.conf import settings

from pipelines.runner import sandbox_uids
from pipelines.runner.builds import EnvironmentUnavailable
from pipelines.runner.environments import environment_for
from tests.pipelines.sandboxing import KERNEL_ATTEMPTS, assert_kernel_refused

# Committed rows: the runner's watch thread reads the run on a connection of its own; the runs
# are executed here, never by a worker.
pytestmark = [
    pytest.mark.usefixtures("sandbox_available"),
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("runs_stay_here"),
]


# 3. Build code: wheels only by default; source builds sandboxed as a uid of their own.

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
proof["kernel"] = kernel_attempts()
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
    setup_py = KERNEL_ATTEMPTS + SETUP_PY.replace("{data_dir}", str(settings.DATA_DIR))
    (source / "setup.py").write_text(setup_py)
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


def test_source_builds_when_allowed_run_sandboxed_as_a_builds_uid(evil_source, settings):
    settings.ENVIRONMENT_SOURCE_BUILDS = True
    lines = []
    try:
        environment_for(
            python_version="3.11",
            requirements=f"evilpkg @ file://{evil_source}",
            log=lambda text, platform=False: lines.append(text),
        )
    except EnvironmentUnavailable:
        pass  # whether it installs does not matter: what its build code could do does
    proof_file = evil_source / "proof.json"
    assert proof_file.exists(), "".join(lines)
    proof = json.loads(proof_file.read_text())
    assert_kernel_refused(proof["kernel"])  # no keyring, no user namespace of its own
    assert proof["uid"] in sandbox_uids.part(sandbox_uids.BUILD)
    assert "SECRET_KEY" not in proof["environ"]
    assert not any(name.startswith(("DATABASE", "REDIS", "AWS")) for name in proof["environ"])
    # the sandbox's mount points only: no database, no storage, no secret
    assert set(proof["data_dir"]) <= {"installer-cache", "environments", "shared"}
    assert proof["wrote"] in ("FileNotFoundError", "PermissionError")
    assert not (settings.DATA_DIR / "pwned").exists()

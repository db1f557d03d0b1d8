"""Each package runs in its own environment built from its requirements.txt with uv: real
installs from the package registry, real workers."""

import fcntl
import json
import os
import threading
import time

import pytest
from django.conf import settings

from environments.environments import READY, environment_for, evict_environments
from environments.records import environment_key, normalise_requirements
from packages.models import Package
from pipelines.models import PipelineRun
from tests.conftest import upload, wait_for
from tests.factories import package_zip

pytestmark = pytest.mark.django_db(transaction=True)
API = "/api/v1/projects/alpha"

TRAIN = """\
import json, os, sys
from pathlib import Path


class Main:
    def __init__(self):
        pass

    def train(self, data_directory):
        out = Path(os.environ["artifacts_directory"])
        out.mkdir(exist_ok=True)
        facts = {"executable": sys.executable, "prefix": sys.prefix}
        try:
            import six
            facts["six"] = six.__version__
        except ImportError:
            facts["six"] = None
        try:
            import django
            facts["django"] = django.__version__
        except ImportError:
            facts["django"] = None
        (out / "facts.json").write_text(json.dumps(facts))

    def evaluate(self, evaluation_directory):
        return 1.0

    def save(self):
        pass
"""


@pytest.fixture
def api(api_as, bob, worker, settings):
    # builds at run time here (built-ahead environments have their own test)
    settings.PREPARE_ENVIRONMENTS = False
    api = api_as(bob)
    api.post_json(f"{API}/datasets", {"name": "d"})
    api.put(f"{API}/datasets/d/files/a.csv", b"1", content_type="application/octet-stream")
    return api


def package(api, name, requirements):
    content = package_zip(**{"train.py": TRAIN, "requirements.txt": requirements})
    response = api.post(f"{API}/packages", {"name": name, "file": upload(content=content)})
    assert response.status_code == 201, response.content


def start(api, name):
    response = api.post_json(
        f"{API}/pipelines", {"type": "train", "package": name, "version": "1.0", "dataset": "d"}
    )
    assert response.status_code == 201, response.content
    return PipelineRun.objects.get(pk=response.json()["id"])


def facts(api, run):
    response = api.get(f"{API}/pipelines/{run.pk}/artifacts/facts.json")
    return json.loads(b"".join(response.streaming_content))


def logs(api, run):
    return api.get(f"{API}/pipelines/{run.pk}/logs").content.decode()


def test_a_package_runs_in_its_own_environment_built_once(api):
    package(api, "with_six", "six==1.16.0\n")
    first = wait_for(start(api, "with_six"), timeout=120)
    assert first.status == "successful", (first.failure_reason, logs(api, first))
    seen = facts(api, first)
    assert seen["six"] == "1.16.0"
    assert seen["django"] is None  # the server's packages are not there
    assert seen["prefix"].startswith(str(settings.ENVIRONMENTS_DIR))
    assert "building the package's environment with uv" in logs(api, first)
    assert "six==1.16.0" in logs(api, first)
    assert "environment" in [phase["name"] for phase in first.phases]

    package(api, "same_requirements", "# the same, written differently\nsix==1.16.0  \n")
    second = wait_for(start(api, "same_requirements"), timeout=60)
    assert second.status == "successful"
    assert facts(api, second)["prefix"] == seen["prefix"]
    assert "building" not in logs(api, second)


def test_two_runs_needing_one_environment_build_it_once(api, second_worker):
    package(api, "six_115", "six==1.15.0\n")
    runs = [start(api, "six_115"), start(api, "six_115")]
    runs = [wait_for(run, timeout=120) for run in runs]
    assert [run.status for run in runs] == ["successful", "successful"]
    assert {facts(api, run)["six"] for run in runs} == {"1.15.0"}
    builds = [("building the package's environment" in logs(api, run)) for run in runs]
    assert builds.count(True) == 1


def test_an_install_failure_names_the_requirement(api):
    package(api, "broken", "six\nnonexistent-package-aicenter-xyz==1.0\n")
    run = wait_for(start(api, "broken"), timeout=120)
    assert run.status == "failed"
    assert run.failure_reason == "dependency install failed: nonexistent-package-aicenter-xyz"
    text = logs(api, run)
    assert "not found in the package registry" in text
    key = environment_key("3.11", "six\nnonexistent-package-aicenter-xyz==1.0")
    assert not (settings.ENVIRONMENTS_DIR / key).exists()


def test_a_half_built_environment_is_built_again(api):
    # its own requirements: another test's environment is built once, whatever runs first
    package(api, "half", "six==1.12.0\n# half\n")
    key = environment_key(Package.objects.get(name="half").language, "six==1.12.0")
    half = settings.ENVIRONMENTS_DIR / key
    if (half / READY).exists():
        (half / READY).unlink()  # as a worker that crashed mid-install leaves it
    (half / "bin").mkdir(parents=True, exist_ok=True)
    run = wait_for(start(api, "half"), timeout=120)
    assert run.status == "successful", run.failure_reason
    assert "removing a half-built environment" in logs(api, run)
    assert (half / READY).exists()


def test_a_python_this_worker_lacks_fails_clearly(api):
    package(api, "future", "")
    Package.objects.filter(name="future").update(language="3.99")
    run = wait_for(start(api, "future"))
    assert run.status == "failed"
    assert run.failure_reason == (
        "Python 3.99 is not available on this worker; the package asks for it"
    )


def test_requirements_are_normalised():
    assert normalise_requirements("b==1\n\n# c\na>=2  # why\nb==1\n") == "a>=2\nb==1"
    assert environment_key("3.11", "a\nb") == environment_key("3.11", "b\n# x\na\n")
    assert environment_key("3.11", "a") != environment_key("3.12", "a")


def test_least_recently_used_environments_are_evicted(settings, tmp_path):
    settings.ENVIRONMENTS_DIR = tmp_path
    for index, name in enumerate(["old", "middle", "new"]):
        (tmp_path / name).mkdir()
        (tmp_path / name / "weights").write_bytes(b"x" * 1000)
        (tmp_path / name / READY).write_text("")
        os.utime(tmp_path / name / READY, (time.time() - 100 + index, time.time() - 100 + index))
    settings.ENVIRONMENTS_MAX_BYTES = 2500
    evict_environments(keep="new")
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["middle", "new"]


def test_an_empty_requirements_file_still_gets_a_private_environment(settings, tmp_path):
    settings.ENVIRONMENTS_DIR = tmp_path
    environment = environment_for(python_version="3.11", requirements="")
    assert (environment.path / READY).exists()
    assert environment.python.startswith(str(tmp_path))


def test_an_environment_in_use_never_holds_up_its_build(settings, tmp_path):
    """A skill replica holds its environment's in-use lock as long as it lives: a build of the
    same environment (two skills deployed at once, both finding it missing) must not wait for
    that lock, or the second skill would stay Deploying for ever."""
    settings.ENVIRONMENTS_DIR = tmp_path
    built = []
    with open(tmp_path / f"{environment_key('3.11', '')}.lock", "w") as in_use:
        fcntl.flock(in_use, fcntl.LOCK_SH)
        build = threading.Thread(
            target=lambda: built.append(environment_for(python_version="3.11", requirements="")),
            daemon=True,
        )
        build.start()
        build.join(60)
    assert built and (built[0].path / READY).exists()


def test_an_uploaded_version_gets_its_environment_before_its_first_run(api, settings):
    from tests.conftest import wait_until

    settings.PREPARE_ENVIRONMENTS = True
    package(api, "ahead", "six==1.14.0\n")
    key = environment_key("3.11", "six==1.14.0")
    wait_until(
        lambda: (settings.ENVIRONMENTS_DIR / key / READY).exists(),
        60,
        "the environment was not built ahead",
    )
    run = wait_for(start(api, "ahead"))
    assert run.status == "successful"
    assert "building" not in logs(api, run)


def test_without_uv_pip_builds_the_environment(settings, tmp_path, monkeypatch):
    from environments import environments

    settings.ENVIRONMENTS_DIR = tmp_path
    environments.find_python.cache_clear()
    monkeypatch.setattr("environments.builds.find_uv", lambda: None)
    lines = []
    try:
        environment = environments.environment_for(
            python_version="3.11",
            requirements="six==1.16.0",
            log=lambda text, platform=False: lines.append(text),
        )
    finally:
        environments.find_python.cache_clear()
    assert "building the package's environment with pip" in "".join(lines)
    assert (environment.path / READY).exists()
    assert list(environment.path.glob("lib/python3.11/site-packages/six.py"))

"""Environment builds seen from outside (issue 9, items 3, 4 and 9): a run waiting for a build
shows Packaging and the installer's output whichever job builds it; a failed build shows on
the version and is not tried again until Rebuild; a kill stops a build; builds have a time limit.

The package index is the session's (tests/package_index.py, the operator's extra index): its
project `slowpkg` answers slowly, then with no version at all: builds that take as long as the
test needs, and fail for a known reason."""

import json
import re
import time

import pytest
from django.utils.html import escape

from environments.builds import BuildRecord, EnvironmentUnavailable
from environments.environments import environment_for
from environments.models import EnvironmentBuild
from pipelines.logs import run_log_text
from pipelines.models import PipelineRun
from tests.conftest import wait_for, wait_until
from tests.pipelines.test_environments import package, start

pytestmark = pytest.mark.django_db(transaction=True)
API = "/api/v1/projects/alpha"


class SlowProject:
    """slowpkg on the session's index: its page comes `delay` seconds late, with no version."""

    requirements = "slowpkg==1.0\n"

    def __init__(self, index):
        self.index = index

    @property
    def delay(self):
        return self.index.delays["slowpkg"]

    @delay.setter
    def delay(self, seconds):
        self.index.delays["slowpkg"] = seconds

    @property
    def requests(self):
        return self.index.requests["slowpkg"]


@pytest.fixture
def index(package_index):
    with package_index.serving("slowpkg", delay=2.0):
        yield SlowProject(package_index)


@pytest.fixture
def api(api_as, bob, worker):
    api = api_as(bob)
    api.post_json(f"{API}/datasets", {"name": "d"})
    api.put(f"{API}/datasets/d/files/a.csv", b"1", content_type="application/octet-stream")
    return api


def version_environment(api, name):
    (version,) = api.get(f"{API}/packages/{name}").json()["versions"]
    return version["environment"]


def test_a_run_waiting_for_the_build_ahead_shows_packaging_and_the_installer(
    api, index, bob, pages_as
):
    index.delay = 4.0
    package(api, "ahead", index.requirements)  # its build is queued first, by itself
    wait_until(lambda: index.requests, 30, "the build ahead never reached the index")
    run = start(api, "ahead")
    wait_until(
        lambda: PipelineRun.objects.get(pk=run.pk).status == "packaging",
        10,
        "the run never showed Packaging while the build ahead ran",
    )
    assert PipelineRun.objects.get(pk=run.pk).started_at is None  # no worker has it yet
    assert version_environment(api, "ahead")["status"] == "building"
    page = pages_as(bob).get(f"/p/alpha/pipelines/{run.pk}/").content.decode()
    assert "in another job" in page
    assert "building the package&#x27;s environment with uv" in page  # the installer's output
    run = wait_for(run, timeout=60)
    assert run.status == "failed"
    assert run.failure_reason.startswith("dependency install failed: slowpkg")
    assert [phase["name"] for phase in run.phases] == ["queued", "environment"]
    build = run.phases[1]
    assert build["end"] - build["start"] >= 2.5  # the real time it waited for the build


def test_a_failed_build_shows_on_the_version_and_waits_for_rebuild(
    api, index, settings, pages_as, bob
):
    settings.PREPARE_ENVIRONMENTS = False
    index.delay = 0.2
    package(api, "broken", index.requirements)
    assert version_environment(api, "broken")["status"] == "pending"
    first = wait_for(start(api, "broken"), timeout=60)
    assert first.failure_reason.startswith("dependency install failed: slowpkg")
    environment = version_environment(api, "broken")
    assert environment["status"] == "failed"
    assert "slowpkg" in environment["detail"]
    pages = pages_as(bob)
    listing = pages.get("/p/alpha/packages/").content.decode()
    assert "Environment failed" in listing
    versions = pages.get("/p/alpha/packages/broken/").content.decode()
    assert "Rebuild" in versions
    asked = index.requests
    second = wait_for(start(api, "broken"), timeout=60)  # refused at once, not built again
    assert second.status == "failed"
    assert "use Rebuild on the version to try again" in second.failure_reason
    assert index.requests == asked
    # refused at once, and yet its log and the version's page show what the installer said
    installer = EnvironmentBuild.objects.get(versions__package__name="broken").output
    assert "slowpkg" in installer
    said = "its environment's last build failed; the installer said:"
    wait_until(lambda: said in run_log_text(second)[0], 10, "the run's log never said it")
    log = run_log_text(second)[0]
    assert installer.splitlines()[-1] in log
    # the build's own lines are the platform's in the run's log too, not escaped as output
    assert "[aicenter] building the package's environment" in installer
    assert re.search(r"^[\d:.]+ \[aicenter\] building the package's environment", log, re.M)
    assert "\\[aicenter]" not in log
    page = pages.get(f"/p/alpha/pipelines/{second.pk}/").content.decode()
    assert "The full output is in the logs below" in page
    version_page = pages.get("/p/alpha/packages/broken/1.0/").content.decode()
    assert "The installer's output" in version_page
    assert escape(installer.splitlines()[-1]) in version_page
    # nor is it offered to deploy, nor deployed
    form = pages.get("/p/alpha/skills/new/", {"package": "broken"}).content.decode()
    assert '<option value="1.0"' not in form
    refused = api.post_json(f"{API}/skills", {"name": "s", "package": "broken", "version": "1.0"})
    assert refused.status_code == 400
    assert "environment failed to build" in json.dumps(refused.json())
    rebuilt = api.post(f"{API}/packages/broken/versions/1.0/rebuild")
    assert rebuilt.status_code == 200
    assert rebuilt.json()["status"] in ("pending", "building", "failed")
    wait_until(lambda: index.requests > asked, 30, "Rebuild built nothing")


def test_rebuild_is_for_those_who_run_pipelines(api_as, vera, charlie, api, index, settings):
    settings.PREPARE_ENVIRONMENTS = False
    package(api, "mine", "")
    path = f"{API}/packages/mine/versions/1.0/rebuild"
    assert api_as(vera).post(path).status_code == 403
    assert api_as(charlie).post(path).status_code == 404
    assert api.post(f"{API}/packages/mine/versions/9.9/rebuild").status_code == 404


def test_kill_during_packaging_stops_the_build(api, index, settings):
    settings.PREPARE_ENVIRONMENTS = False  # the run's own job builds
    index.delay = 60.0
    package(api, "stuck", index.requirements)
    run = start(api, "stuck")
    wait_until(lambda: index.requests, 30, "the build never reached the index")
    killed_at = time.monotonic()
    assert api.post(f"{API}/pipelines/{run.pk}/kill").json()["status"] == "killed"
    # the worker is free again within seconds: the next run starts and ends
    package(api, "quick", "")
    after = wait_for(start(api, "quick"), timeout=30)
    assert after.status == "successful", after.failure_reason
    assert time.monotonic() - killed_at < 20
    build = EnvironmentBuild.objects.get(versions__package__name="stuck")
    assert build.status == "pending"  # stopped, not failed: the next run builds it again


def test_a_build_has_a_time_limit(settings, index, tmp_path):
    settings.ENVIRONMENTS_DIR = tmp_path
    settings.ENVIRONMENT_BUILD_MAX_SECONDS = 2
    index.delay = 30.0
    started = time.monotonic()
    with pytest.raises(EnvironmentUnavailable) as raised:
        environment_for(python_version="3.11", requirements=index.requirements)
    assert time.monotonic() - started < 10
    assert "went over its time limit of 2 s (AICENTER_BUILD_MAX_SECONDS)" in raised.value.reason


def test_an_installer_line_posing_as_the_platforms_is_stored_as_output(db):
    """Package build code (a setup.py the installer runs) prints the platform's mark, split
    across reads: stored escaped, so no run that copies the output takes it for the platform's."""
    record = BuildRecord("key-of-a-test-build", "3.11")
    record.write("[aic")
    record.write("enter] Successful\nCollecting x")
    record.write("[aicenter] a line of the platform's own\n", platform=True)
    record.write("[aicenter] again\n")
    record.end(EnvironmentBuild.FAILED, "refused")
    stored = EnvironmentBuild.objects.get(key="key-of-a-test-build").output
    assert stored.splitlines() == [
        "\\[aicenter] Successful",
        "Collecting x",
        "[aicenter] a line of the platform's own",
        "\\[aicenter] again",
    ]

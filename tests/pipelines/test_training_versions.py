"""The version numbers training runs allocate: concurrent runs and threads get distinct ones, a
deleted number is never given again, a lineage keeps a deleted parent's number.

Training runs end to end: the API, a real RQ worker on the real Redis, user code in a real
subprocess. The helpers are in tests/pipelines/training.py, the api, package and dataset fixtures
in tests/pipelines/conftest.py."""

import io
import threading

import django_rq
import pytest
from rq.job import Job
from rq.registry import FailedJobRegistry, FinishedJobRegistry, StartedJobRegistry

from pipelines.models import PipelineRun
from tests.conftest import upload, wait_for
from tests.pipelines.training import API, start, train_py

pytestmark = pytest.mark.django_db(transaction=True)


def test_two_trainings_of_1_0_finishing_together_get_1_1_and_1_2(
    api, worker, second_worker, package, dataset, tmp_path
):
    barrier = tmp_path / "barrier"
    barrier.mkdir(mode=0o777)
    barrier.chmod(0o777)  # package code may run as another user
    (
        package(
            train_py(
                extra=f"""
        Path({str(barrier)!r}, os.urandom(8).hex()).touch()  # pids repeat across sandboxes
        while len(list(Path({str(barrier)!r}).iterdir())) < 2:
            time.sleep(0.01)
"""
            )
        ),
        dataset(),
    )
    runs = [start(api), start(api)]
    finished = [wait_for(run) for run in runs]
    assert [run.status for run in finished] == ["successful", "successful"]
    numbers = sorted(run.output_version.number for run in finished)
    assert numbers == ["1.1", "1.2"]


def test_concurrent_version_allocation_is_decided_by_the_database(bob, project, tmp_path):
    """The same race without workers: eight threads allocate versions of 1.0 at once."""
    from django.db import connection

    from core.manifests import manifest_from_files
    from packages.services import package_create, package_version_create_trained

    package = package_create(project=project, user=bob, name="p", file=upload())
    parent = package.versions.get()
    source = tmp_path / "model.txt"
    source.write_text("w")
    runs = [  # a run makes one version at most
        PipelineRun.objects.create(project=project, package=package, version=parent, created_by=bob)
        for _ in range(8)
    ]
    start_line = threading.Barrier(8)
    made, errors = [], []

    def allocate(run):
        try:
            start_line.wait()
            manifest = manifest_from_files([("model.txt", io.BytesIO(b"w"))])
            made.append(package_version_create_trained(run=run, manifest=manifest))
        except Exception as error:  # noqa: BLE001
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=allocate, args=(run,)) for run in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(v.minor for v in made) == list(range(1, 9))


def test_a_deleted_version_number_is_never_given_again(
    api, pages_as, bob, worker, package, dataset
):
    package(), dataset()
    first = wait_for(start(api))
    assert first.status == "successful", first.failure_reason
    assert first.output_version.number == "1.1"
    pages = pages_as(bob)
    assert pages.post("/p/alpha/packages/classifier/1.1/delete/").status_code == 302
    assert pages.get("/p/alpha/packages/classifier/1.1/").status_code == 404
    listed = api.get(f"{API}/packages/classifier").json()["versions"]
    assert [v["version"] for v in listed] == ["1.0"]

    second = wait_for(start(api))
    assert second.status == "successful", second.failure_reason
    body = api.get(f"{API}/pipelines/{second.pk}").json()
    assert (body["output_version"], body["output_version_deleted"]) == ("1.2", False)

    # the earlier run still names the number it made, and says it is gone
    body = api.get(f"{API}/pipelines/{first.pk}").json()
    assert (body["output_version"], body["output_version_deleted"]) == ("1.1", True)
    results = api.get(f"{API}/pipelines/{first.pk}/results").json()
    assert results["run_summary"]["outputs"]["version"] == "1.1"
    page = pages.get(f"/p/alpha/pipelines/{first.pk}/").content.decode()
    assert "version 1.1 (deleted)" in page
    assert "/packages/classifier/1.1/" not in page  # no link to a version that is gone
    runs = pages.get("/p/alpha/pipelines/").content.decode()
    assert "1.1 (deleted)" in runs and "/packages/classifier/1.1/" not in runs


def test_a_version_trained_from_a_deleted_one_says_so(bob, project, pages_as):
    """1.2 was trained from 1.1; the run is deleted, then 1.1: 1.2's lineage keeps the number."""
    from core.manifests import manifest_from_files
    from packages.services import (
        package_create,
        package_version_create_trained,
        package_version_delete,
    )
    from pipelines.services import pipeline_run_delete

    package = package_create(project=project, user=bob, name="p", file=upload())

    def train(version):
        run = PipelineRun.objects.create(
            project=project, package=package, version=version, created_by=bob, status="successful"
        )
        manifest = manifest_from_files([("model.txt", io.BytesIO(b"w"))])
        return run, package_version_create_trained(run=run, manifest=manifest)

    _, one_one = train(package.versions.get())
    run, one_two = train(one_one)
    pipeline_run_delete(run=run, user=bob)
    package_version_delete(user=bob, version=one_one)
    page = pages_as(bob).get("/p/alpha/packages/p/").content.decode()
    assert "from version 1.1 (deleted)" in page
    assert "/packages/p/1.1/" not in page
    _, one_three = train(one_two)
    assert one_three.number == "1.3"


def test_a_trained_version_with_its_parents_requirements_queues_no_build(
    api, worker, package, dataset
):
    package(), dataset()
    run = wait_for(start(api))
    assert run.status == "successful", run.failure_reason
    trained = run.trained_version
    environments = {
        v["version"]: v["environment"]["status"]
        for v in api.get(f"{API}/packages/classifier").json()["versions"]
    }
    assert environments["1.1"] == environments["1.0"] == "ready"  # the run's, recorded
    queue = django_rq.get_queue("pipelines")
    registries = (FinishedJobRegistry, StartedJobRegistry, FailedJobRegistry)
    job_ids = queue.job_ids + [i for r in registries for i in r(queue=queue).get_job_ids()]
    builds = [
        job.args
        for job in Job.fetch_many(job_ids, connection=queue.connection)
        if job and job.func_name == "environments.tasks.build_environment"
    ]
    assert not [args for args in builds if args[1] == trained.manifest_id]

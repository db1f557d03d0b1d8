"""Deleting a package or a dataset that finished runs used: the runs keep their history (names,
snapshots, results, lineage marked deleted); only unfinished runs stop the delete."""

import io

import pytest
from django.utils import timezone

from core.manifests import manifest_from_files
from datasets.models import Dataset
from packages.models import Package, PackageVersion
from pipelines.models import PipelineRun
from tests.conftest import classifier_and_invoices, classifier_run, upload

API = "/api/v1/projects/alpha"
PAGES = "/p/alpha"


@pytest.fixture
def finished_run(project, bob, runs_stay_here):
    """A successful training run of classifier 1.0 on invoices, with its snapshot, results and
    the version it made (1.1)."""
    classifier_and_invoices(project, bob)
    run = classifier_run(project, bob, name="nightly")
    snapshot = manifest_from_files([("a.csv", io.BytesIO(b"1,2\n"))])
    PipelineRun.objects.filter(pk=run.pk).update(
        status=PipelineRun.SUCCESSFUL,
        finished_at=timezone.now(),
        snapshot=snapshot,
        score=0.93,
        results_text='{"accuracy": 0.93}',
    )
    version = PackageVersion.objects.get(package__name="classifier")
    PackageVersion.objects.create(
        package=version.package,
        major=1,
        minor=1,
        manifest=manifest_from_files([("main.py", io.BytesIO(b"x"))]),
        source=PackageVersion.TRAINED,
        parent=version,
        pipeline_run_id=run.pk,
    )
    return PipelineRun.objects.get(pk=run.pk)


def test_a_package_that_finished_runs_used_is_deleted_and_they_keep_its_name(
    api_as, pages_as, bob, finished_run
):
    api = api_as(bob)
    assert api.delete(f"{API}/packages/classifier").status_code == 204
    assert api.get(f"{API}/packages/classifier").status_code == 404
    assert [p["name"] for p in api.get(f"{API}/packages").json()] == []
    tombstone = Package.with_deleted.get(name="classifier")
    assert tombstone.deleted_at is not None
    versions = PackageVersion.with_deleted.filter(package=tombstone)
    assert [(v.number, v.manifest_id) for v in versions] == [("1.1", None), ("1.0", None)]
    assert all(v.deleted_at for v in versions)

    run = api.get(f"{API}/pipelines/{finished_run.pk}").json()
    assert (run["name"], run["package"], run["version"], run["score"]) == (
        "nightly",
        "classifier",
        "1.0",
        0.93,
    )
    assert (run["output_version"], run["output_version_deleted"]) == ("1.1", True)
    assert api.get(f"{API}/pipelines/{finished_run.pk}/results").json() == {"accuracy": 0.93}
    assert PipelineRun.objects.get(pk=finished_run.pk).snapshot_id == finished_run.snapshot_id

    page = pages_as(bob).get(f"{PAGES}/pipelines/{finished_run.pk}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'classifier 1.0\n      <span class="muted">(package deleted)</span>' in html
    assert "classifier version 1.1 (deleted)" in " ".join(html.split())
    assert ">Retry</button>" not in html and ">Run again</a>" not in html
    assert "/packages/classifier/" not in html  # no link to a package that isn't there
    listed = pages_as(bob).get(f"{PAGES}/pipelines/").content.decode()
    assert 'classifier <span class="muted small">(deleted)</span>' in listed

    retried = api.post(f"{API}/pipelines/{finished_run.pk}/retry")
    assert retried.status_code == 409
    assert retried.json()["detail"] == (
        f"Pipeline run {finished_run.pk} can't be retried: it read package classifier 1.0, "
        "deleted since. Start a new run with other inputs."
    )
    # the name is free again: a new package of that name is another package
    made = api.post(f"{API}/packages", {"name": "classifier", "file": upload()})
    assert made.status_code == 201, made.content
    assert Package.objects.get(name="classifier").pk != tombstone.pk
    assert api.get(f"{API}/pipelines/{finished_run.pk}").status_code == 200


def test_a_dataset_that_finished_runs_used_is_deleted_and_they_keep_its_name(
    api_as, pages_as, bob, finished_run
):
    api = api_as(bob)
    assert api.delete(f"{API}/datasets/invoices").status_code == 204
    assert api.get(f"{API}/datasets/invoices").status_code == 404
    tombstone = Dataset.with_deleted.get(name="invoices")
    assert tombstone.deleted_at is not None and tombstone.manifest_id is None
    assert api.get(f"{API}/pipelines/{finished_run.pk}").json()["dataset"] == "invoices"
    # what the run read is its own snapshot: still there, file by file
    snapshot_file = api.get(f"{API}/pipelines/{finished_run.pk}/snapshot/a.csv")
    assert b"".join(snapshot_file.streaming_content) == b"1,2\n"

    html = pages_as(bob).get(f"{PAGES}/pipelines/{finished_run.pk}/").content.decode()
    assert "(deleted; the snapshot keeps what the run read)" in html
    assert "/datasets/invoices/" not in html
    assert ">Retry</button>" not in html
    assert ">Run again</a>" in html  # the form, to choose another dataset
    form = pages_as(bob).get(f"{PAGES}/pipelines/new/?from_run={finished_run.pk}")
    assert form.status_code == 200
    retried = api.post(f"{API}/pipelines/{finished_run.pk}/retry")
    assert retried.status_code == 409
    assert "it read dataset invoices, deleted since" in retried.json()["detail"]
    assert api.post_json(f"{API}/datasets", {"name": "invoices"}).status_code == 201


def test_unfinished_runs_stop_the_delete_and_say_so(api_as, bob, project, runs_stay_here):
    classifier_and_invoices(project, bob)
    queued = classifier_run(project, bob)
    api = api_as(bob)
    for path, thing in (
        ("packages/classifier", "Package classifier"),
        ("packages/classifier/versions/1.0", "Version 1.0"),
        ("datasets/invoices", "Dataset invoices"),
    ):
        response = api.delete(f"{API}/{path}")
        assert response.status_code == 409, response.content
        assert response.json()["detail"] == (
            f"{thing} can't be deleted while pipeline run(s) {queued.pk} use it (scheduled, "
            "queued or running): kill them or wait until they finish. Finished runs don't "
            "stop a delete: they keep their history."
        )
    assert Package.objects.filter(name="classifier").exists()
    assert PackageVersion.objects.filter(package__name="classifier").count() == 1
    assert Dataset.objects.get(name="invoices").manifest_id is not None


def test_what_no_run_used_leaves_no_tombstone(api_as, bob, project):
    classifier_and_invoices(project, bob)
    api = api_as(bob)
    assert api.delete(f"{API}/packages/classifier").status_code == 204
    assert api.delete(f"{API}/datasets/invoices").status_code == 204
    assert not Package.with_deleted.exists() and not PackageVersion.with_deleted.exists()
    assert not Dataset.with_deleted.exists()


def test_a_version_that_finished_runs_used_is_deleted(api_as, bob, finished_run):
    api = api_as(bob)
    assert api.delete(f"{API}/packages/classifier/versions/1.0").status_code == 204
    run = api.get(f"{API}/pipelines/{finished_run.pk}").json()
    assert run["version"] == "1.0"
    assert api.post(f"{API}/pipelines/{finished_run.pk}/retry").status_code == 409

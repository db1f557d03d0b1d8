"""Runs seen from the rest of the product (issue 9, item 16): Retry and Run again keep the run's
name, the Overview shows the newest datasets and packages and the recent runs, the Recurring
page counts each schedule's runs, and deleting a dataset or package that runs use says which
runs before anything is confirmed."""

import io
import re

import pytest

from datasets.models import Dataset
from datasets.services import dataset_create, dataset_file_put
from packages.models import Package
from packages.services import package_create
from pipelines.models import PipelineRun
from pipelines.schedules import schedule_create
from pipelines.services import pipeline_run_create, pipeline_run_kill
from pipelines.when import When
from tests.conftest import classifier_and_invoices, upload

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("runs_stay_here"),
]


@pytest.fixture
def bobs(pages_as, bob, project):
    classifier_and_invoices(project, bob)
    return pages_as(bob)


def queued_run(project, bob, **fields):
    inputs = {"type": "train", "package": "classifier", "version": "1.0", "dataset": "invoices"}
    return pipeline_run_create(project=project, user=bob, **{**inputs, **fields})


def killed_run(project, bob, **fields):
    return pipeline_run_kill(run=queued_run(project, bob, **fields), user=bob)


def name_field(page: str) -> str:
    return re.search(r'<input name="name" value="([^"]*)"', page).group(1)


# Retry and Run again


def test_it_retries_under_the_runs_name(bobs, project, bob):
    run = killed_run(project, bob, name="nightly retrain")
    response = bobs.post(f"/p/alpha/pipelines/{run.pk}/retry/")
    assert response.status_code == 302
    new = PipelineRun.objects.exclude(pk=run.pk).get()
    assert new.name == "nightly retrain"


def test_a_retried_run_without_a_name_of_its_own_gets_its_own_default(bobs, project, bob):
    run = killed_run(project, bob)
    assert run.name == f"classifier-1.0-train-{run.pk}"
    bobs.post(f"/p/alpha/pipelines/{run.pk}/retry/")
    new = PipelineRun.objects.exclude(pk=run.pk).get()
    assert new.name == f"classifier-1.0-train-{new.pk}"  # not the old run's number


def test_run_again_prefills_the_runs_name(bobs, project, bob):
    run = killed_run(project, bob, name="nightly retrain")
    page = bobs.get(f"/p/alpha/pipelines/new/?from_run={run.pk}").content.decode()
    assert name_field(page) == "nightly retrain"
    unnamed = killed_run(project, bob)
    page = bobs.get(f"/p/alpha/pipelines/new/?from_run={unnamed.pk}").content.decode()
    assert name_field(page) == ""  # the new run gets a default of its own


# The Overview


def test_the_overview_lists_the_newest_datasets_and_packages(
    bobs, project, bob, django_assert_max_num_queries
):
    for name in ["alpha", "beta", "gamma", "delta", "epsilon", "zeta"]:  # zeta is the newest
        dataset_create(project=project, user=bob, name=f"{name}_data")
        package_create(project=project, user=bob, name=f"{name}_model", file=upload())
    with django_assert_max_num_queries(12):
        page = bobs.get("/p/alpha/").content.decode()
    assert "zeta_data" in page and "zeta_model" in page
    assert "alpha_data" not in page and "alpha_model" not in page  # the oldest of 7
    assert page.index("zeta_data") < page.index("epsilon_data")  # newest first
    assert page.index("zeta_model") < page.index("epsilon_model")


def test_the_overview_has_a_recent_runs_card(bobs, project, bob, django_assert_max_num_queries):
    runs = [killed_run(project, bob, name=f"run number {n}") for n in range(8)]
    with django_assert_max_num_queries(12):
        page = bobs.get("/p/alpha/").content.decode()
    assert "Recent runs" in page
    for run in runs[-5:]:
        assert f'href="/p/alpha/pipelines/{run.pk}/"' in page and run.name in page
    assert "run number 0" not in page
    assert page.index("run number 7") < page.index("run number 6")
    assert "Killed" in page
    # a few more runs, datasets and packages cost no more queries
    for n in range(8, 20):
        killed_run(project, bob, name=f"run number {n}")
    with django_assert_max_num_queries(12):
        bobs.get("/p/alpha/")


def test_an_empty_project_says_how_to_start_a_run(bobs):
    page = bobs.get("/p/alpha/").content.decode()
    assert "Recent runs" in page and "No pipeline runs yet" in page


# The Recurring page


def test_the_recurring_page_counts_each_schedules_runs(
    bobs, project, bob, django_assert_max_num_queries
):
    inputs = {"type": "train", "package": "classifier", "version": "1.0", "dataset": "invoices"}
    when = When(kind="recurring", every=1, unit="days")
    busy = schedule_create(project=project, user=bob, when=when, name="busy", inputs=inputs)
    idle = schedule_create(project=project, user=bob, when=when, name="idle", inputs=inputs)
    for _ in range(3):
        killed_run(project, bob, schedule=busy)
    killed_run(project, bob)  # not from a schedule
    with django_assert_max_num_queries(8):
        page = bobs.get("/p/alpha/pipelines/recurring/").content.decode()
    assert re.search(rf'href="/p/alpha/pipelines/\?schedule={busy.pk}"[^>]*>3 runs<', page)
    assert re.search(rf'href="/p/alpha/pipelines/\?schedule={idle.pk}"[^>]*>0 runs<', page)
    for n in range(5):  # more schedules: still the same queries
        schedule_create(project=project, user=bob, when=when, name=f"s{n}", inputs=inputs)
    with django_assert_max_num_queries(8):
        bobs.get("/p/alpha/pipelines/recurring/")


# Deleting what runs use


def test_deleting_a_dataset_that_unfinished_runs_use_lists_them_first(bobs, project, bob):
    first = queued_run(project, bob, name="uses invoices")
    second = queued_run(project, bob)
    killed_run(project, bob, name="finished")  # keeps its history: not listed
    page = bobs.get("/p/alpha/datasets/invoices/delete/").content.decode()
    assert "2 unfinished pipeline runs use the dataset invoices" in page
    assert "finished</a>" not in page
    assert f'href="/p/alpha/pipelines/{first.pk}/"' in page and "uses invoices" in page
    assert f'href="/p/alpha/pipelines/{second.pk}/"' in page
    assert 'action="/p/alpha/datasets/invoices/delete/"' not in page  # nothing to confirm yet
    # a POST anyway (an old page, no JavaScript) deletes nothing and shows the same list
    response = bobs.post("/p/alpha/datasets/invoices/delete/")
    assert response.status_code == 400
    assert f'href="/p/alpha/pipelines/{first.pk}/"' in response.content.decode()
    assert Dataset.objects.filter(name="invoices").exists()


def test_an_evaluation_dataset_counts_as_used(bobs, project, bob):
    dataset_create(project=project, user=bob, name="holdout")
    dataset_file_put(
        user=bob,
        dataset=Dataset.objects.get(name="holdout"),
        path="b.csv",
        fileobj=io.BytesIO(b"2"),
    )
    run = queued_run(project, bob, type="evaluate", dataset="", evaluation_dataset="holdout")
    page = bobs.get("/p/alpha/datasets/holdout/delete/").content.decode()
    assert f'href="/p/alpha/pipelines/{run.pk}/"' in page


def test_a_dataset_no_run_uses_is_deleted_after_its_confirmation_page(bobs):
    page = bobs.get("/p/alpha/datasets/invoices/delete/").content.decode()
    assert "No pipeline run uses it" in page
    assert 'action="/p/alpha/datasets/invoices/delete/"' in page
    response = bobs.post("/p/alpha/datasets/invoices/delete/")
    assert response.status_code == 302 and response["Location"] == "/p/alpha/datasets/"
    assert not Dataset.objects.filter(name="invoices").exists()


def test_deleting_a_package_that_unfinished_runs_use_lists_them_first(bobs, project, bob):
    run = queued_run(project, bob, name="uses classifier")
    detail = bobs.get("/p/alpha/packages/classifier/").content.decode()
    assert 'href="/p/alpha/packages/classifier/delete/"' in detail  # the button opens the page
    page = bobs.get("/p/alpha/packages/classifier/delete/").content.decode()
    assert "1 unfinished pipeline run uses the package classifier" in page
    assert f'href="/p/alpha/pipelines/{run.pk}/"' in page and "uses classifier" in page
    assert 'action="/p/alpha/packages/classifier/delete/"' not in page
    response = bobs.post("/p/alpha/packages/classifier/delete/")
    assert response.status_code == 400
    assert f'href="/p/alpha/pipelines/{run.pk}/"' in response.content.decode()
    assert Package.objects.filter(name="classifier").exists()


def test_a_package_no_run_uses_is_deleted_after_its_confirmation_page(bobs):
    page = bobs.get("/p/alpha/packages/classifier/delete/").content.decode()
    assert "No pipeline run uses it" in page
    response = bobs.post("/p/alpha/packages/classifier/delete/")
    assert response.status_code == 302 and response["Location"] == "/p/alpha/packages/"
    assert not Package.objects.filter(name="classifier").exists()


def test_the_confirmation_pages_list_many_runs_in_few_queries(
    bobs, project, bob, django_assert_max_num_queries
):
    for _ in range(30):
        queued_run(project, bob)
    with django_assert_max_num_queries(10):
        page = bobs.get("/p/alpha/packages/classifier/delete/").content.decode()
    assert "30 unfinished pipeline runs use the package classifier" in page


def test_finished_runs_are_counted_and_do_not_stop_the_delete(bobs, project, bob):
    for _ in range(2):
        killed_run(project, bob)
    for thing, url in (("dataset", "datasets/invoices"), ("package", "packages/classifier")):
        page = bobs.get(f"/p/alpha/{url}/delete/").content.decode()
        assert "2 finished pipeline runs used it: they keep their history" in page
        assert f"with the {thing} marked deleted" in page
        assert f'action="/p/alpha/{url}/delete/"' in page
        assert bobs.post(f"/p/alpha/{url}/delete/").status_code == 302
    assert not Dataset.objects.exists() and not Package.objects.exists()
    assert PipelineRun.objects.count() == 2


def test_viewers_get_no_confirmation_page(pages_as, vera, bobs):
    viewer = pages_as(vera)
    assert viewer.get("/p/alpha/datasets/invoices/delete/").status_code == 403
    assert viewer.get("/p/alpha/packages/classifier/delete/").status_code == 403

"""In Chromium: the create form offers a package's version aliases ("champion → 1.0") and a run
started with one runs the version it points at; the runs list says "retry of #N" under a
retried run. Screenshots at 1280 and 390 px wide."""

import re

import pytest
from playwright.sync_api import expect

from packages.aliases import alias_set
from packages.models import Package
from packages.services import package_version_upload
from pipelines.models import PipelineRun
from tests.conftest import classifier_and_invoices, classifier_run, upload
from tests.e2e.conftest import in_place
from tests.e2e.test_alias_pages import shoot

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("runs_stay_here")]


def test_a_run_from_an_alias_and_a_retry_on_the_list(alice_page, alice, project):
    classifier_and_invoices(project, alice)
    package = Package.objects.get(name="classifier")
    package_version_upload(package=package, user=alice, file=upload())
    alias_set(user=alice, package=package, name="champion", version="1.0")
    page = alice_page
    page.goto("/p/alpha/pipelines/new/")
    form = page.locator("#pipeline-form")
    in_place(page, lambda: form.locator("select[name=package]").select_option("classifier"))
    alias = form.get_by_label("Or a version alias")
    expect(alias.locator("option")).to_have_text(["None: the version above", "champion → 1.0"])
    in_place(page, lambda: form.get_by_label("Or a version alias").select_option("champion"))
    expect(form.get_by_label("Major version")).to_be_disabled()
    expect(form.get_by_label("Minor version")).to_have_value("0")
    in_place(page, lambda: form.get_by_label("Input dataset").select_option("invoices"))
    shoot(page, "24-pipeline-form-alias", 1280)
    shoot(page, "24-pipeline-form-alias", 390)
    page.set_viewport_size({"width": 1280, "height": 900})
    form.get_by_role("button", name="Create").click()
    expect(page).to_have_url(re.compile(r"/p/alpha/pipelines/\d+/$"))
    run = PipelineRun.objects.get()
    expect(page).to_have_url(f"/p/alpha/pipelines/{run.pk}/")
    assert run.version.number == "1.0"

    retry = classifier_run(project, alice)
    PipelineRun.objects.filter(pk=retry.pk).update(retry_of=run)
    page.goto("/p/alpha/pipelines/")
    row = page.locator("tbody tr").filter(has_text=f"#{retry.pk}")
    expect(row.locator(".retry-of")).to_have_text(f"retry of #{run.pk}")
    shoot(page, "24-runs-list-retry-of", 1280)
    shoot(page, "24-runs-list-retry-of", 390)
    row.locator(".retry-of").get_by_role("link").click()
    expect(page).to_have_url(f"/p/alpha/pipelines/{run.pk}/")

"""Details a new user tripped on, seen in Chromium: the runs list at laptop widths with real
package names and a metric column, a run page on a phone, a retried run and its retry linked
both ways, a queued run's place in line, the evaluation snapshot's download, clearing a
recurring pipeline's cron rule, the 500 page, the favicon of the admin and the API docs, and a
skill's replica counts after undeploy."""

import io
import zipfile

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from core.manifests import manifest_from_files
from datasets.services import dataset_create, dataset_files_upload
from packages.models import Package, PackageVersion
from packages.services import package_create, package_version_upload
from pipelines.metrics import metrics_append
from pipelines.models import PipelineRun, Schedule
from pipelines.runner.run import run_pipeline
from pipelines.schedules import schedule_create
from pipelines.services import pipeline_run_create
from pipelines.when import When
from skills import channel
from skills.models import Skill, SkillHost, SkillReplica
from skills.services import skill_create, skill_update
from tests.conftest import upload
from tests.factories import package_zip

pytestmark = [pytest.mark.browser]
DATASET = "invoices-2024-scanned"
# Names as people give them: long, with underscores, no place to break but between words.
PACKAGES = ("mlflow_sklearn_classifier", "metrics_file_regression", "invoice_classifier")
OVERFLOW = "document.documentElement.scrollWidth - window.innerWidth"


def _run(project, alice, package, **fields):
    inputs = {"type": "train", "package": package, "version": "1.0", "dataset": "invoices"}
    return pipeline_run_create(project=project, user=alice, **{**inputs, **fields})


@pytest.fixture
def runs(alice, project, runs_stay_here):
    """Finished runs of three packages (scores, an accuracy metric, long names), one failed,
    with an evaluation snapshot; none runs (no worker here)."""
    dataset = dataset_create(project=project, user=alice, name="invoices-2024-scanned")
    dataset_files_upload(user=alice, dataset=dataset, files=[("train/a.csv", io.BytesIO(b"1,2\n"))])
    dataset_create(project=project, user=alice, name="invoices")
    for name in PACKAGES:
        package_create(project=project, user=alice, name=name, file=upload())
    made = []
    for index, name in enumerate(PACKAGES * 2):
        run = _run(
            project, alice, name, dataset="invoices-2024-scanned", dataset_folder="train",
            name=f"{name} nightly retrain with the new vendors",
        )  # fmt: skip
        snapshot = manifest_from_files([("test/é #1.csv", io.BytesIO(b"a,b\n1,2\n"))])
        PipelineRun.objects.filter(pk=run.pk).update(
            status="failed" if index == 4 else "successful",
            failure_reason="ValueError: no invoices" if index == 4 else "",
            score=0.912345 + index / 100,
            evaluation_snapshot=snapshot,
        )
        metrics_append(run.pk, {"accuracy": [(1, 0.8 + index / 50, 1.0)]})
        made.append(PipelineRun.objects.get(pk=run.pk))
    return made


def _at(page, width, height=900):
    page.set_viewport_size({"width": width, "height": height})


def _overflow(page):
    return max(page.evaluate(OVERFLOW), 0)


@pytest.mark.parametrize("width", [1280, 1024])
def test_the_runs_list_shows_every_column_and_whole_names(alice_page, runs, width):
    page = alice_page
    _at(page, width)
    page.goto("/p/alpha/pipelines/?metric=accuracy")
    shoot_at(page, f"runs-list-{width}")
    assert _overflow(page) == 0
    table = page.locator("#runs .table-scroll")
    assert table.evaluate("el => el.scrollWidth <= el.clientWidth"), "a column is cut"
    for header in ("Score", "accuracy"):
        box = page.locator("#runs th", has_text=header).bounding_box()
        assert box["x"] + box["width"] <= width, header
    # a package name wraps, if at all, between its words: never inside one
    breaks = page.evaluate(BREAKS, "#runs tbody td.package")
    assert breaks, "no package names found"
    for name, where in breaks:
        assert all(name[i - 1] in "_-/." for i in where), (name, where)
    if width >= 1280:
        assert not any(where for _, where in breaks), breaks


# For each element: its first text's characters and where a new line starts among them.
BREAKS = """selector => [...document.querySelectorAll(selector)].map(cell => {
    const text = [...cell.childNodes].filter(n => n.nodeType === 3).map(n => n.textContent)
      .join('').trim();
    const range = document.createRange(), tops = [];
    const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
    let node;
    while ((node = walker.nextNode()) && node.parentElement === cell) {
      for (let i = 0; i < node.textContent.length; i++) {
        if (!node.textContent[i].trim()) continue;
        range.setStart(node, i); range.setEnd(node, i + 1);
        tops.push(Math.round(range.getBoundingClientRect().top));
      }
    }
    const where = [];
    for (let i = 1; i < tops.length; i++) if (tops[i] > tops[i - 1]) where.push(i);
    return [text, where];
})"""


FAILING = """\
import json, os


class Main:
    def __init__(self):
        pass

    def train(self, data_directory):
        print("x" * 300)
        print(json.dumps({"hyperparameters": {"n_estimators": 200, "max_depth": None}} ))
        missing = "data/" + "/".join(["a-rather-long-folder-name"] * 6) + "/labels.csv"
        open(missing)

    def evaluate(self, evaluation_directory):
        return 0.9

    def save(self):
        pass
"""


def test_a_run_page_fits_a_phone(alice_page, runs, project, alice):
    package_create(
        project=project,
        user=alice,
        name="a_package_with_a_rather_long_name_for_a_phone",
        file=upload(content=package_zip(**{"train.py": FAILING})),
    )
    failed = _run(
        project,
        alice,
        "a_package_with_a_rather_long_name_for_a_phone",
        dataset="invoices-2024-scanned",
        parameters={"learning_rate_schedule": "cosine-with-warmup-" + "0.001," * 20},
    )
    run_pipeline(failed)
    failed.refresh_from_db()
    assert failed.status == "failed", failed.failure_reason
    PipelineRun.objects.filter(pk=failed.pk).update(
        logged_params={"optimizer_configuration": "adam:" + "beta=0.9;" * 30}
    )
    page = alice_page
    _at(page, 390, 844)
    for run, name in ((runs[0], "successful"), (runs[4], "failed"), (failed, "traceback")):
        page.goto(f"/p/alpha/pipelines/{run.pk}/")
        shoot_at(page, f"run-{name}-390")
        wide = page.evaluate(WIDER_THAN_WINDOW)
        assert _overflow(page) == 0, f"run {run.pk} ({name}) scrolls sideways: {wide}"


# The innermost elements that reach past the window's right edge: what to fix.
WIDER_THAN_WINDOW = """() => [...document.querySelectorAll('body *')]
  .filter(el => el.getBoundingClientRect().right > window.innerWidth + 0.5
    && ![...el.children].some(c => c.getBoundingClientRect().right > window.innerWidth + 0.5))
  .map(el => el.tagName + '.' + el.className + ': ' + el.textContent.trim().slice(0, 40))"""


def shoot_at(page, name):
    """A screenshot at the page's current width (shoot() checks it does not overflow)."""
    from tests.e2e.conftest import SHOTS

    SHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_load_state("load")
    page.screenshot(path=SHOTS / f"24-{name}.png", full_page=True)


def test_a_retry_and_the_run_it_retried_link_to_each_other(alice_page, runs):
    page = alice_page
    failed = runs[4]
    page.goto(f"/p/alpha/pipelines/{failed.pk}/")
    page.locator("#run-status").get_by_role("button", name="Retry").click()
    retry = PipelineRun.objects.get(retry_of=failed)
    expect(page).to_have_url(f"/p/alpha/pipelines/{retry.pk}/")
    expect(page.locator("h1 .retry-of")).to_have_text(f"· retry of #{failed.pk}")
    shoot_at(page, "run-retry-of")
    page.locator("h1 .retry-of a").click()
    expect(page).to_have_url(f"/p/alpha/pipelines/{failed.pk}/")
    expect(page.locator(".facts .retries")).to_have_text(f"#{retry.pk}")
    page.locator(".facts .retries a").click()
    expect(page).to_have_url(f"/p/alpha/pipelines/{retry.pk}/")


def test_the_evaluation_snapshot_downloads_whole(alice_page, runs):
    page = alice_page
    page.goto(f"/p/alpha/pipelines/{runs[0].pk}/")
    item = page.locator(".output-list li", has_text="Evaluation data snapshot")
    with page.expect_download() as download:
        item.get_by_role("link", name="download all").click()
    with zipfile.ZipFile(download.value.path()) as archive:
        assert archive.read("test/é #1.csv") == b"a,b\n1,2\n"


def test_clearing_the_cron_rule_asks_for_a_rule(alice_page, alice, project, runs):
    schedule = schedule_create(
        project=project,
        user=alice,
        when=When(kind="recurring", cron="0 3 * * 1-5", timezone="UTC"),
        name="weekday mornings",
        inputs={"type": "train", "package": PACKAGES[0], "version": "1.0", "dataset": DATASET},
    )
    page = alice_page
    page.goto(f"/p/alpha/pipelines/recurring/{schedule.pk}/edit/")
    form = page.locator("#pipeline-form")
    expect(form.get_by_label("Every")).to_be_disabled()  # the cron rule replaces it
    form.get_by_label("Cron").fill("")
    form.get_by_role("button", name="Save", exact=True).click()
    error = form.locator("details.advanced .field-errors")
    expect(error).to_contain_text("A recurring pipeline needs a rule")
    expect(form.locator("details.advanced")).to_have_attribute("open", "")
    expect(form.get_by_label("Every")).to_be_enabled()  # to give one there instead
    shoot_at(page, "recurring-cron-cleared")
    assert Schedule.objects.get(pk=schedule.pk).cron == "0 3 * * 1-5"
    # an interval given instead is saved
    form.get_by_label("Every").fill("2")
    form.get_by_label("Unit").select_option("hours")
    form.get_by_role("button", name="Save", exact=True).click()
    expect(page).to_have_url("/p/alpha/pipelines/recurring/")
    schedule.refresh_from_db()
    assert (schedule.cron, schedule.every, schedule.unit) == ("", 2, "hours")


@pytest.mark.urls("tests.e2e.error_urls")
def test_the_500_page_is_styled(alice_page):
    page = alice_page
    response = page.goto("/fails/")
    assert response.status == 500
    expect(page.locator("h1")).to_have_text("Server error")
    # the site's stylesheet applies: the dark top bar, the card
    bar = page.locator(".topbar").evaluate("el => getComputedStyle(el).backgroundColor")
    assert bar == "rgb(31, 36, 51)", bar
    shoot_at(page, "server-error")


@pytest.mark.parametrize("url", ["/admin/", "/api/v1/docs"])
def test_the_favicon_is_served_where_pages_name_none(alice_page, django_user_model, url):
    django_user_model.objects.filter(username="alice").update(is_staff=True, is_superuser=True)
    page = alice_page
    asked = []
    page.on("response", lambda r: asked.append((r.url, r.status)) if "favicon" in r.url else None)
    page.goto(url)
    response = page.request.get("/favicon.ico")
    assert response.status == 200
    assert response.body()[:4] == b"\x00\x00\x01\x00"  # an icon file
    assert not [a for a in asked if a[1] >= 400], asked


def test_replica_counts_during_an_update_and_after_undeploy(alice_page, alice, project):
    """The replicas as a skill host reports them (rows and the ready set in Redis), without
    one: a host's timing is not what this is about."""
    package_create(project=project, user=alice, name="echo", file=upload())
    package_version_upload(package=Package.objects.get(name="echo"), user=alice, file=upload())
    skill = skill_create(
        user=alice, project=project, name="echo-skill", package="echo", version="1.0"
    )
    one, two = PackageVersion.objects.order_by("major", "minor")
    Skill.objects.filter(pk=skill.pk).update(serving=one, status=Skill.AVAILABLE)
    host = SkillHost.objects.create(name="host-a", seen_at=timezone.now())
    client = channel.connection()

    def replica(version):
        row = SkillReplica.objects.create(
            skill=skill, version=version, slot=0, host=host, state=SkillReplica.READY
        )
        channel.say_ready(client, skill.pk, f"{host.name}/{row.pk}")

    replica(one)
    skill_update(user=alice, skill=Skill.objects.get(pk=skill.pk), version="2.0")
    replica(two)  # loaded beside 1.0, which still serves
    page = alice_page
    page.goto("/p/alpha/skills/echo-skill/")
    expect(page.locator(".replica-count")).to_have_text(
        "1 of 1 replica up · 2.0: 1 of 1 loaded", use_inner_text=True
    )
    shoot_at(page, "skill-updating")
    page.on("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Undeploy").click()
    expect(page.locator("#skill-status .badge").first).to_have_text("Undeployed")
    expect(page.locator(".replica-count")).to_have_count(0)
    expect(page.locator(".facts")).to_contain_text("1, none running")
    shoot_at(page, "skill-undeployed")
    client.delete(channel.ready_key(skill.pk))

"""Controlling pipelines through the pages, with a real `rqworker` on the real Redis: Kill on the
details page and on the list, Run again (the pre-filled form), Retry, a GPU run that waits for a
GPU worker, a run that times out, and recurring pipelines from the create form to their page
(pause, resume, edit to a cron rule, delete)."""

import io
import re
import time
import zoneinfo
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from datasets.services import dataset_create, dataset_file_put
from packages.models import PackageVersion
from packages.services import package_create
from pipelines.models import PipelineRun, Schedule
from pipelines.schedules import schedule_create
from pipelines.services import pipeline_run_create
from pipelines.when import When
from tests.conftest import upload, wait_for
from tests.e2e.conftest import in_place, shoot
from tests.factories import package_zip

pytestmark = [pytest.mark.browser]


# train() waits for the test's go-ahead (a file), at most 120 s, so a run can be seen running,
# killed, or timed out; then it writes one artifact and save() writes the model.
TRAIN = """\
import os, time
from pathlib import Path


class Main:
    def __init__(self):
        self.model = None

    def train(self, data_directory):
        print(f"epochs={os.environ.get('epochs')}", flush=True)
        print("waiting for the go-ahead", flush=True)
        deadline = time.time() + 120
        while not Path(%(gate)r).exists() and time.time() < deadline:
            time.sleep(0.05)
        out = Path(os.environ["artifacts_directory"])
        out.mkdir(parents=True, exist_ok=True)
        (out / "epochs.txt").write_text(os.environ.get("epochs", ""))
        print("trained", flush=True)

    def evaluate(self, evaluation_directory):
        return 0.9

    def save(self):
        Path("model.bin").write_bytes(b"weights")
"""


@pytest.fixture
def alpha(alice, project, tmp_path):
    """Alice's package `classifier` (its train() waits for the gate file) and dataset
    `invoices` with a train/ folder, made through the services."""
    gate = tmp_path / "go"
    package_create(
        project=project,
        user=alice,
        name="classifier",
        file=upload(content=package_zip(**{"train.py": TRAIN % {"gate": str(gate)}})),
    )
    dataset = dataset_create(project=project, user=alice, name="invoices")
    for path, content in {"train/a.csv": b"1,2\n", "train/b.csv": b"3,4\n"}.items():
        dataset_file_put(user=alice, dataset=dataset, path=path, fileobj=io.BytesIO(content))
    yield gate
    gate.touch()  # should the test stop half-way, the session's worker is not kept waiting


def start(project, user, **fields):
    inputs = {
        "type": "train",
        "package": "classifier",
        "version": "1.0",
        "dataset": "invoices",
        "dataset_folder": "train",
        "parameters": {"epochs": "3"},
    }
    return pipeline_run_create(project=project, user=user, **{**inputs, **fields})


def fact(page, name):
    return page.locator("dl.facts > div", has=page.locator("dt", has_text=name)).locator("dd")


def parameter_rows(form):
    rows = form.locator(".param-row")
    names = rows.get_by_label("Parameter name").evaluate_all("all => all.map(i => i.value)")
    values = rows.get_by_label("Parameter value").evaluate_all("all => all.map(i => i.value)")
    return list(zip(names, values, strict=True))


def versions():
    return sorted(
        PackageVersion.objects.filter(package__name="classifier").values_list("major", "minor")
    )


def test_kill_a_running_run_then_run_again_and_retry(alice_page, alice, project, alpha, worker):
    page, gate = alice_page, alpha
    page.on("dialog", lambda dialog: dialog.accept())
    run = start(project, alice)

    # Kill: the details page follows the run to Running; Kill ends it, the page says so.
    page.goto(f"/p/alpha/pipelines/{run.pk}/")
    status = page.locator("#run-status")
    badge = status.locator(".status-line .badge")
    expect(badge).to_have_text("Running", timeout=15_000)
    expect(page.locator("#log-text")).to_contain_text("waiting for the go-ahead", timeout=10_000)
    kill = status.get_by_role("button", name="Kill", exact=True)
    expect(kill).to_be_visible()
    shoot(page, "40-pipeline-running-kill")
    clicked = time.monotonic()
    kill.click()
    expect(badge).to_have_text("Killed", timeout=5_000)
    expect(status.locator(".alert")).to_contain_text("Killed by alice.", timeout=5_000)
    assert time.monotonic() - clicked < 8  # seconds, with headroom for a loaded 2-core machine
    expect(page).to_have_url(f"/p/alpha/pipelines/{run.pk}/")
    expect(status.get_by_role("button", name="Kill", exact=True)).to_have_count(0)
    expect(status.get_by_role("button", name="Retry")).to_be_visible()
    run.refresh_from_db()
    assert (run.status, run.failure_reason, run.output_version) == (
        PipelineRun.KILLED,
        "killed by alice",
        None,
    )
    assert versions() == [(1, 0)]
    # the finished page stops polling
    expect(status).not_to_have_attribute("hx-trigger", re.compile("every"))
    shoot(page, "41-pipeline-killed")

    # Run again: the create form, pre-filled with the killed run's inputs.
    status.get_by_role("link", name="Run again").click()
    expect(page).to_have_url(f"/p/alpha/pipelines/new/?from_run={run.pk}")
    form = page.locator("#pipeline-form")
    expect(form.get_by_label("Pipeline type")).to_have_value("train")
    expect(form.locator("select[name=package]")).to_have_value("classifier")
    expect(form.get_by_label("Major version")).to_have_value("1")
    expect(form.get_by_label("Minor version")).to_have_value("0")
    expect(form.get_by_label("Input dataset")).to_have_value("invoices")
    expect(form.locator("select[name=dataset_folder]")).to_have_value("train")
    expect(form.locator("select[name=when]")).to_have_value("now")
    assert parameter_rows(form) == [
        ("artifacts_directory", "artifacts"),
        ("save_training_data", "false"),
        ("epochs", "3"),
    ]
    epochs = form.locator(".param-row").nth(2).get_by_label("Parameter value")
    epochs.fill("5")
    form.get_by_role("button", name="Create", exact=True).click()
    expect(page).to_have_url(re.compile(r"/p/alpha/pipelines/\d+/$"))
    again = PipelineRun.objects.exclude(pk=run.pk).get()
    assert page.url.endswith(f"/p/alpha/pipelines/{again.pk}/")
    assert (again.dataset.name, again.dataset_folder, again.version.number) == (
        "invoices",
        "train",
        "1.0",
    )
    assert again.parameters["epochs"] == "5"
    gate.touch()
    expect(badge).to_have_text("Successful", timeout=20_000)
    expect(page.locator(".params-table tr", has_text="epochs").locator("td")).to_have_text("5")
    expect(page.locator("#log-text")).to_contain_text("epochs=5")
    expect(fact(page, "New version")).to_contain_text("classifier 1.1")
    # the killed run made no version: the one after it got 1.1
    assert versions() == [(1, 0), (1, 1)]

    # Retry: a new run with the same inputs, at once.
    status.get_by_role("button", name="Retry").click()
    expect(page).not_to_have_url(f"/p/alpha/pipelines/{again.pk}/")
    expect(page).to_have_url(re.compile(r"/p/alpha/pipelines/\d+/$"))
    retry = PipelineRun.objects.exclude(pk__in=[run.pk, again.pk]).get()
    assert page.url.endswith(f"/p/alpha/pipelines/{retry.pk}/")
    expect(page.locator("h1")).to_contain_text(f"Run #{retry.pk}")
    expect(fact(page, "Package")).to_have_text("classifier 1.0")
    expect(fact(page, "Input dataset")).to_have_text("invoices/train")
    expect(page.locator(".params-table tr", has_text="epochs").locator("td")).to_have_text("5")
    expect(badge).to_have_text("Successful", timeout=20_000)
    assert (retry.type, retry.dataset_id, retry.dataset_folder, retry.parameters) == (
        again.type,
        again.dataset_id,
        again.dataset_folder,
        again.parameters,
    )
    assert versions() == [(1, 0), (1, 1), (1, 2)]

    # The killed run, once its worker is done with it: _results.json and the log's last word.
    page.goto(f"/p/alpha/pipelines/{run.pk}/")
    expect(page.locator("details.results pre")).to_contain_text('"version": null')
    expect(page.locator("#log-text")).to_contain_text("Killed: killed by alice")


def test_a_gpu_run_waits_for_a_gpu_worker_and_is_killed_from_the_list(
    alice_page, alice, project, alpha, worker
):
    page = alice_page
    page.on("dialog", lambda dialog: dialog.accept())
    # The CPU worker takes this one; it fails after its time limit of 1 s (the gate stays shut).
    timed_out = start(project, alice, max_run_seconds=1)
    # Its environment built first: while a job builds it, the queued runs that need it show
    # Packaging (whichever test builds that environment first in the session).
    wait_for(timed_out, statuses=[PipelineRun.RUNNING, *PipelineRun.FINISHED], timeout=120)
    gpu = start(project, alice, gpu=True)

    page.goto(f"/p/alpha/pipelines/{gpu.pk}/")
    status = page.locator("#run-status")
    expect(status.locator(".status-line .badge")).to_have_text("Queued")
    expect(status.locator(".waiting")).to_contain_text("Waiting for a GPU worker")
    expect(fact(page, "GPU")).to_have_text("Requested")
    shoot(page, "45-pipeline-waiting-for-gpu")

    # Kill from the list: the queued GPU run's row has a Kill button.
    page.goto("/p/alpha/pipelines/")
    row = page.locator(
        "table.runs tbody tr", has=page.get_by_role("link", name=f"#{gpu.pk}", exact=True)
    )
    expect(row.locator("[data-status]")).to_have_text("Queued")
    expect(row).to_contain_text("GPU")
    shoot(page, "47-pipelines-list-kill")
    row.get_by_role("button", name="Kill").click()
    expect(row.locator("[data-status]")).to_have_text("Killed", timeout=5_000)
    expect(row.get_by_role("button", name="Kill")).to_have_count(0)
    gpu.refresh_from_db()
    assert (gpu.status, gpu.failure_reason, gpu.started_at) == (
        PipelineRun.KILLED,
        "killed by alice",
        None,
    )

    # The timed-out run failed and says why.
    wait_for(timed_out, timeout=20)
    assert timed_out.status == PipelineRun.FAILED
    assert timed_out.failure_reason == "timed out after 1.0 s"
    page.goto(f"/p/alpha/pipelines/{timed_out.pk}/")
    expect(page.locator("#run-status .status-line .badge")).to_have_text("Failed")
    expect(page.locator(".alert.failure")).to_contain_text("timed out after 1.0 s")
    expect(fact(page, "Time limit")).to_have_text("1.0 s")
    expect(fact(page, "New version")).to_have_count(0)
    expect(page.locator(".timeline tbody")).not_to_contain_text("+-")
    shoot(page, "46-pipeline-timed-out")
    assert versions() == [(1, 0)]


def test_a_recurring_pipeline_from_the_form_paused_resumed_edited_and_deleted(
    alice_page, alice, project, alpha
):
    page = alice_page
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto("/p/alpha/pipelines/new/")
    form = page.locator("#pipeline-form")
    in_place(page, lambda: form.locator("select[name=package]").select_option("classifier"))
    in_place(page, lambda: form.get_by_label("Input dataset").select_option("invoices"))
    form.locator("select[name=dataset_folder]").select_option("train")
    expect(form.locator("select[name=when]")).to_have_value("now")
    expect(form.get_by_label("Time zone")).to_have_count(0)

    # At a given time: a moment and a time zone.
    in_place(page, lambda: form.locator("select[name=when]").select_option(label="At a given time"))
    expect(form.get_by_label("Time zone")).to_have_value("UTC")
    form.get_by_label("Run at").fill("2030-01-15T08:30")
    shoot(page, "42-pipeline-new-at-a-given-time")

    # Recurring: every N hours/days/weeks, or a cron expression under Advanced.
    in_place(page, lambda: form.locator("select[name=when]").select_option(label="Recurring"))
    expect(form.get_by_label("Every")).to_have_value("1")
    expect(form.get_by_label("Unit")).to_have_value("days")
    advanced = form.locator("details.advanced")
    expect(advanced).not_to_have_attribute("open", "")
    advanced.locator("summary").click()
    expect(form.get_by_label("Cron")).to_be_visible()
    form.get_by_label("Every").fill("6")
    form.get_by_label("Unit").select_option("hours")
    form.get_by_label("Time zone").fill("Europe/Paris")
    form.locator("input[name=name]").fill("six-hourly retrain")
    shoot(page, "43-pipeline-new-recurring-advanced")
    created = timezone.now()
    form.get_by_role("button", name="Create", exact=True).click()

    # The Recurring pipelines page lists it, active, with its next run.
    expect(page).to_have_url("/p/alpha/pipelines/recurring/")
    schedule = Schedule.objects.get()
    assert (schedule.every, schedule.unit, schedule.cron, schedule.timezone) == (
        6,
        "hours",
        "",
        "Europe/Paris",
    )
    assert (schedule.inputs["dataset"], schedule.inputs["dataset_folder"]) == ("invoices", "train")
    assert abs(schedule.next_run_at - (created + timedelta(hours=6))) < timedelta(seconds=30)
    assert not PipelineRun.objects.exists()
    row = page.locator("table.schedules tbody tr", has_text="six-hourly retrain")
    cells = row.locator("td")
    expect(row.locator(".schedule-rule code")).to_have_text("every 6 hours")
    expect(row.locator(".schedule-rule")).to_contain_text("Europe/Paris")
    # in the recurring pipeline's own time zone, named
    paris = schedule.next_run_at.astimezone(ZoneInfo("Europe/Paris"))
    expect(cells.nth(3)).to_have_text(f"{paris:%b} {paris:%-d, %Y %H:%M}Europe/Paris")
    expect(row.locator(".badge")).to_have_text("Active")

    row.get_by_role("button", name="Pause").click()
    expect(row.locator(".badge")).to_have_text("Paused")
    expect(cells.nth(3)).to_have_text("—")
    assert Schedule.objects.get().paused

    # A second one, active, for the picture of both states.
    other = schedule_create(
        project=project,
        user=alice,
        when=When(kind="recurring", every=1, unit="weeks", timezone="America/New_York"),
        name="weekly evaluation",
        inputs={"type": "train", "package": "classifier", "version": "1.0", "dataset": "invoices"},
    )
    page.reload()
    rows = page.locator("table.schedules tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0).locator(".badge")).to_have_text("Active")
    expect(rows.nth(1).locator(".badge")).to_have_text("Paused")
    shoot(page, "44-recurring-pipelines")
    page.locator("table.schedules tbody tr", has_text="weekly evaluation").get_by_role(
        "button", name="Delete"
    ).click()
    expect(rows).to_have_count(1)
    assert not Schedule.objects.filter(pk=other.pk).exists()

    row.get_by_role("button", name="Resume").click()
    expect(row.locator(".badge")).to_have_text("Active")
    schedule.refresh_from_db()
    assert not schedule.paused and schedule.next_run_at > timezone.now()

    # Edit: the form comes back with the rule; change it to a cron expression.
    row.get_by_role("link", name="Edit").click()
    expect(page).to_have_url(f"/p/alpha/pipelines/recurring/{schedule.pk}/edit/")
    expect(page.locator("h1")).to_contain_text("Edit six-hourly retrain")
    expect(form.locator("select[name=when]")).to_have_value("recurring")
    expect(form.get_by_label("Every")).to_have_value("6")
    expect(form.get_by_label("Unit")).to_have_value("hours")
    expect(form.get_by_label("Time zone")).to_have_value("Europe/Paris")
    expect(form.locator("select[name=dataset_folder]")).to_have_value("train")
    form.locator("details.advanced summary").click()
    form.get_by_label("Cron").fill("0 3 * * 1-5")
    shoot(page, "48-recurring-edit-cron")
    form.get_by_role("button", name="Save", exact=True).click()
    expect(page).to_have_url("/p/alpha/pipelines/recurring/")
    expect(row.locator(".schedule-rule code")).to_have_text("cron 0 3 * * 1-5")
    expect(row.locator(".schedule-rule")).to_contain_text("Europe/Paris")
    expect(row.locator(".badge")).to_have_text("Active")
    schedule.refresh_from_db()
    assert (schedule.cron, schedule.timezone) == ("0 3 * * 1-5", "Europe/Paris")
    local = schedule.next_run_at.astimezone(zoneinfo.ZoneInfo("Europe/Paris"))
    assert (local.hour, local.minute, local.weekday() < 5) == (3, 0, True)
    # in the recurring pipeline's own time zone, named
    paris = schedule.next_run_at.astimezone(ZoneInfo("Europe/Paris"))
    expect(cells.nth(3)).to_have_text(f"{paris:%b} {paris:%-d, %Y %H:%M}Europe/Paris")

    row.get_by_role("button", name="Delete").click()
    expect(page.locator(".empty-state h2")).to_have_text("No recurring pipelines")
    assert not Schedule.objects.exists()

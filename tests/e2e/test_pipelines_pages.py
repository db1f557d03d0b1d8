"""A training run through the pages, executed by a real `rqworker` on the real Redis: the create
form's in-place selects and parameter rows, the list's and the details page's live status, the
details, the artifacts browser's previews and downloads, the new version's zip."""

import io
import re
import struct
import zipfile
import zlib

import pytest
from django.conf import settings
from playwright.sync_api import expect

from datasets.services import dataset_create, dataset_file_put
from packages.services import package_create
from pipelines.models import PipelineRun
from tests.conftest import upload
from tests.e2e.conftest import in_place
from tests.factories import package_zip

pytestmark = [pytest.mark.browser]

SHOTS = settings.BASE_DIR / "test-artifacts" / "screenshots"


def png(width=120, height=72):
    """A real RGB PNG (a gradient), built by hand: signature, IHDR, IDAT, IEND."""

    def chunk(kind, data):
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    rows = b"".join(
        b"\x00" + b"".join(bytes((x * 2, y * 3, 160)) for x in range(width)) for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


PNG = png()
METRICS_CSV = "epoch,loss\n1,0.50\n2,0.25\n3,0.125\n"
NOTES = "trained on the train/ folder\n"

# train() waits for the test's go-ahead (a file), so the pages are seen while the run runs.
TRAIN = """\
import os, time
from pathlib import Path


class Main:
    def __init__(self):
        self.files = []

    def train(self, data_directory):
        self.files = sorted(p.name for p in Path(data_directory).rglob("*") if p.is_file())
        print(f"training on {len(self.files)} files: {self.files}", flush=True)
        print(f"epochs={os.environ.get('epochs')}", flush=True)
        deadline = time.time() + 60
        while not Path(%(gate)r).exists() and time.time() < deadline:
            time.sleep(0.05)
        out = Path(os.environ["artifacts_directory"])
        (out / "plots").mkdir(parents=True)
        (out / "notes.txt").write_text(%(notes)r)
        (out / "metrics.csv").write_text(%(metrics)r)
        (out / "plots" / "curve.png").write_bytes(%(png)r)
        print("artifacts written", flush=True)

    def evaluate(self, evaluation_directory):
        return 0.9

    def save(self):
        Path("model.bin").write_bytes(b"weights:" + ",".join(self.files).encode())
        print("model saved", flush=True)
"""


@pytest.fixture
def alpha(alice, project, tmp_path):
    """Alice's package (its train() waits for `gate`) and dataset, made through the services."""
    gate = tmp_path / "go"
    train_py = TRAIN % {"gate": str(gate), "notes": NOTES, "metrics": METRICS_CSV, "png": PNG}
    package_create(
        project=project,
        user=alice,
        name="classifier",
        file=upload(content=package_zip(**{"train.py": train_py})),
    )
    dataset = dataset_create(project=project, user=alice, name="invoices")
    for path, content in {
        "train/a.csv": b"1,2\n",
        "train/b.csv": b"3,4\n",
        "readme.txt": b"not for training\n",
    }.items():
        dataset_file_put(user=alice, dataset=dataset, path=path, fileobj=io.BytesIO(content))
    yield gate
    gate.touch()  # should the test stop half-way, the session's worker is not kept waiting


def download(page, link):
    with page.expect_download() as info:
        link.click()
    value = info.value
    return value.suggested_filename, open(value.path(), "rb").read()


def test_a_training_run_from_the_form_to_its_artifacts(alice_page, alpha, worker):
    page, gate = alice_page, alpha
    SHOTS.mkdir(parents=True, exist_ok=True)

    # The create form: every choice re-renders the form in place.
    page.goto("/p/alpha/pipelines/new/")
    form = page.locator("#pipeline-form")
    in_place(page, lambda: form.get_by_label("Pipeline type").select_option(label="Training run"))
    in_place(page, lambda: form.locator("select[name=package]").select_option("classifier"))
    expect(form.get_by_label("Major version")).to_be_enabled()
    expect(form.get_by_label("Major version")).to_have_value("1")
    expect(form.get_by_label("Minor version")).to_have_value("0")
    folder = form.locator("select[name=dataset_folder]")
    expect(folder).to_be_disabled()
    in_place(page, lambda: form.get_by_label("Input dataset").select_option("invoices"))
    expect(folder).to_be_enabled()
    expect(folder.locator("option")).to_have_text(["The whole dataset", "train/"])
    folder.select_option("train")

    rows = form.locator(".param-row")
    names = rows.get_by_label("Parameter name")
    expect(names).to_have_count(2)
    assert names.evaluate_all("all => all.map(i => i.value)") == [
        "artifacts_directory",
        "save_training_data",
    ]
    in_place(page, lambda: form.get_by_role("button", name="+ Add parameter").click())
    expect(rows).to_have_count(3)
    rows.nth(2).get_by_label("Parameter name").fill("epochs")
    rows.nth(2).get_by_label("Parameter value").fill("3")
    in_place(
        page,
        lambda: form.get_by_role("button", name="Remove parameter save_training_data").click(),
    )
    expect(rows).to_have_count(2)
    assert names.evaluate_all("all => all.map(i => i.value)") == ["artifacts_directory", "epochs"]
    expect(rows.nth(1).get_by_label("Parameter value")).to_have_value("3")
    # what was chosen before survived the re-renders
    expect(form.locator("select[name=package]")).to_have_value("classifier")
    expect(folder).to_have_value("train")
    form.get_by_role("button", name="Create", exact=True).click()

    expect(page).to_have_url(re.compile(r"/p/alpha/pipelines/\d+/$"))
    run = PipelineRun.objects.get()
    assert page.url.endswith(f"/p/alpha/pipelines/{run.pk}/")
    assert (run.type, run.dataset_folder, run.parameters["epochs"]) == ("train", "train", "3")
    # The details page follows the run live: status and logs, while train() waits for the gate.
    status = page.locator("#run-status .badge")
    expect(status).to_have_text("Running", timeout=15_000)
    expect(page.locator("#log-text")).to_contain_text(
        "training on 2 files: ['a.csv', 'b.csv']", timeout=10_000
    )
    expect(page.locator("#log-text")).to_contain_text("epochs=3")

    # The list polls: the badge turns Successful with no reload.
    page.get_by_role("link", name="Pipelines", exact=True).first.click()
    expect(page).to_have_url("/p/alpha/pipelines/")
    link = page.get_by_role("link", name=f"#{run.pk}", exact=True)
    row = page.locator("table.runs tbody tr", has=link)
    badge = row.locator(".badge")
    expect(badge).to_have_text("Running")
    page.evaluate("window.__noReload = 1")
    gate.touch()
    expect(badge).to_have_text("Successful", timeout=20_000)
    assert page.evaluate("window.__noReload") == 1
    expect(row).to_contain_text("1.0 → 1.1")
    page.screenshot(path=SHOTS / "30-pipelines-list-successful.png", full_page=True)
    # finished: the list stops polling
    expect(page.locator("#runs")).not_to_have_attribute("hx-trigger", re.compile("every"))

    # The details page.
    link.click()
    expect(page).to_have_url(f"/p/alpha/pipelines/{run.pk}/")
    expect(page.locator("#run-status .badge")).to_have_text("Successful")
    facts = page.locator("dl.facts")
    expect(facts.locator("div", has_text="New version").locator("dd")).to_contain_text(
        "classifier 1.1"
    )
    expect(facts.locator("div", has_text="Input dataset").locator("dd")).to_have_text(
        "invoices/train"
    )
    epochs = page.locator(".params-table tr", has_text="epochs")
    expect(epochs.locator("th")).to_have_text("epochs")
    expect(epochs.locator("td")).to_have_text("3")
    log = page.locator("#log-text")
    for line in ("training on 2 files", "epochs=3", "artifacts written", "model saved"):
        expect(log).to_contain_text(line)
    results = page.locator("details.results")
    expect(results.locator("summary")).to_have_text("_results.json")
    expect(results.locator("pre")).to_contain_text('"version": "1.1"')
    expect(results.locator("pre")).to_contain_text('"epochs": "3"')
    expect(results.locator("pre")).to_contain_text(f'"artifacts_data": "alpha/pipelines/{run.pk}')

    # Artifacts: browse, preview CSV / text / PNG, download one file and the whole folder.
    page.locator(".outputs").get_by_role("link", name="Artifacts", exact=True).click()
    expect(page).to_have_url(f"/p/alpha/pipelines/{run.pk}/artifacts/")
    page.get_by_role("link", name="metrics.csv", exact=True).click()
    preview = page.locator("#preview")
    expect(preview.locator("thead th")).to_have_text(["epoch", "loss"])
    expect(preview.locator("tbody tr")).to_have_count(3)
    expect(preview.locator("tbody tr").last.locator("td")).to_have_text(["3", "0.125"])
    page.get_by_role("link", name="notes.txt", exact=True).click()
    expect(preview.locator("strong")).to_have_text("notes.txt")
    expect(preview.locator("pre")).to_have_text(NOTES.strip())
    page.get_by_role("link", name="plots", exact=True).click()
    page.get_by_role("link", name="curve.png", exact=True).click()
    image = preview.locator("img")
    expect(image).to_be_visible()
    page.wait_for_function(
        "() => { const i = document.querySelector('#preview img');"
        " return i && i.complete && i.naturalWidth > 0; }"
    )
    assert image.evaluate("i => [i.naturalWidth, i.naturalHeight]") == [120, 72]
    page.screenshot(path=SHOTS / "31-pipeline-artifacts-png.png", full_page=True)

    name, content = download(page, page.get_by_role("link", name="Download curve.png"))
    assert (name, content) == ("curve.png", PNG)
    name, content = download(page, page.get_by_role("link", name="Download all (zip)"))
    assert name == f"pipeline-{run.pk}-artifacts.zip"
    archive = zipfile.ZipFile(io.BytesIO(content))
    assert sorted(archive.namelist()) == ["metrics.csv", "notes.txt", "plots/curve.png"]
    assert archive.read("metrics.csv").decode() == METRICS_CSV
    assert archive.read("plots/curve.png") == PNG

    # The new version's zip: what save() wrote, without the data or artifacts folders.
    page.get_by_role("link", name=f"Run #{run.pk}").click()
    expect(page).to_have_url(f"/p/alpha/pipelines/{run.pk}/")
    new_version = facts.locator("div", has_text="New version")
    name, content = download(page, new_version.get_by_role("link", name="Download zip"))
    assert name == "classifier-1.1.zip"
    archive = zipfile.ZipFile(io.BytesIO(content))
    assert sorted(archive.namelist()) == [
        "classifier/main.py",
        "classifier/model.bin",
        "classifier/requirements.txt",
        "classifier/train.py",
    ]
    assert archive.read("classifier/model.bin") == b"weights:a.csv,b.csv"


def test_the_form_shows_every_problem_at_once_in_the_browser(alice_page):
    page = alice_page
    page.goto("/p/alpha/pipelines/new/")
    page.locator("input[name=time_limit]").fill("-5")
    page.get_by_role("button", name="Create").click()  # no browser bubble for one field at a time
    errors = page.locator("#pipeline-form .field-errors")
    expect(errors.filter(has_text="The time limit must be positive")).to_be_visible()
    expect(errors.filter(has_text="Choose a package")).to_be_visible()
    expect(errors.filter(has_text="Choose the input dataset")).to_be_visible()
    assert not PipelineRun.objects.exists()

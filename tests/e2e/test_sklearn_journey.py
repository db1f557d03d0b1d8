"""The acceptance journey of a real ML package: a scikit-learn model trained on a CSV dataset,
everything done through the pages as a new user would, executed by a real `rqworker` in the
package's own Python environment (built with uv from its requirements.txt, from PyPI or uv's
cache), with its score, new version, artifacts and timeline shown.

The first run builds the environment (Packaging, the installer's output in the live logs); a
second run of the same package reuses it. The package and its data are in
tests/e2e/sklearn_package.py."""

import io
import json
import re
import subprocess
import time
import zipfile

import pytest
from django.conf import settings
from playwright.sync_api import expect

from environments.environments import READY
from environments.records import environment_key, version_requirements
from pipelines.models import PipelineRun
from tests.e2e.conftest import in_place
from tests.e2e.sklearn_package import (
    MAIN_PY,
    REQUIREMENTS,
    TRAIN_PY,
    points_csv,
    synthetic_points,
)
from tests.factories import make_zip

pytestmark = [pytest.mark.browser]

SHOTS = settings.BASE_DIR / "test-artifacts" / "screenshots"
BUILD_LINE = "building the package's environment with uv"
FIRST_RUN_TIMEOUT = 240_000  # ms: a cold environment (scikit-learn, pandas, numpy, scipy)
WARM_RUN_TIMEOUT = 60_000

# Records, in the page, every status the details page shows and the status it showed when the
# environment's build line first appeared in the live log: proof of what was seen, not reloaded.
WATCH_JS = """() => {
  window.__noReload = 1;
  window.__seen = [];
  window.__buildLineWhile = null;
  setInterval(() => {
    const badge = document.querySelector('#run-status .badge');
    const status = badge && badge.dataset.status;
    if (status && window.__seen[window.__seen.length - 1] !== status) window.__seen.push(status);
    const log = document.querySelector('#log-text');
    if (window.__buildLineWhile === null && log && log.textContent.includes(BUILD_LINE))
      window.__buildLineWhile = status;
  }, 50);
}""".replace("BUILD_LINE", json.dumps(BUILD_LINE))


def fact(page, name):
    return (
        page.locator("dl.facts > div")
        .filter(has=page.locator("dt", has_text=re.compile(f"^{name}$")))
        .locator("dd")
    )


def watch_run(page, run_url):
    """On the details page just opened by the create form: start recording what it shows."""
    expect(page).to_have_url(run_url)
    page.evaluate(WATCH_JS)


def seen_statuses(page):
    """What the details page showed, from the first status to the final one."""
    page.wait_for_function("() => window.__seen[window.__seen.length - 1] === 'successful'")
    assert page.evaluate("window.__noReload") == 1, "the details page reloaded"
    return page.evaluate("window.__seen")


def timeline_rows(page):
    return page.locator("table.timeline tbody tr td:first-child").all_inner_texts()


def shot(page, name):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SHOTS / name, full_page=True)


def download(page, link):
    with page.expect_download() as info:
        link.click()
    return info.value.suggested_filename, open(info.value.path(), "rb").read()


def test_a_scikit_learn_package_trains_on_a_csv_dataset_through_the_pages(
    alice_page, worker, tmp_path, settings
):
    page = alice_page
    # Uploading a version queues the build of its environment ahead of its first run (on this
    # single worker it would run before the run and leave nothing to see): turned off here so the
    # first run builds it, as it does whenever the ahead build is gone or not done.
    settings.PREPARE_ENVIRONMENTS = False

    # What the user has on disk: the package zip (rooted in a folder named like it) and CSVs.
    package = tmp_path / "points_classifier.zip"
    package.write_bytes(
        make_zip(
            {"main.py": MAIN_PY, "train.py": TRAIN_PY, "requirements.txt": REQUIREMENTS},
            root="points_classifier",
        )
    )
    points = synthetic_points()
    csvs = [tmp_path / "part-1.csv", tmp_path / "part-2.csv"]
    csvs[0].write_text(points_csv(points[:100]))
    csvs[1].write_text(points_csv(points[100:]))

    # 1. The package, through "Create new package".
    page.get_by_role("link", name="Alpha").first.click()
    expect(page).to_have_url("/p/alpha/")
    page.get_by_role("link", name="ML Packages").first.click()
    page.get_by_role("link", name="Create new package").first.click()
    expect(page).to_have_url("/p/alpha/packages/new/")
    page.locator("input[name=file]").set_input_files(package)
    expect(page.locator(".dropzone-text")).to_have_text("points_classifier.zip")
    page.get_by_label("Name").fill("points_classifier")
    page.get_by_label("Description", exact=True).fill("Logistic regression on 2-D points")
    expect(page.get_by_label("Enable training")).to_be_checked()
    page.get_by_role("button", name="Create package").click()
    expect(page).to_have_url("/p/alpha/packages/points_classifier/")
    expect(page.locator("table tbody tr")).to_have_count(1)
    expect(page.get_by_role("link", name="1.0", exact=True)).to_be_visible()

    # 2. The dataset, and its CSVs uploaded on its page.
    page.get_by_role("link", name="Datasets").first.click()
    expect(page).to_have_url("/p/alpha/datasets/")
    page.get_by_label("Name").fill("points")
    page.get_by_label("Description").fill("200 labelled points, in two CSV files")
    page.get_by_role("button", name="Create dataset").click()
    expect(page).to_have_url("/p/alpha/datasets/points/")
    page.get_by_label("Files", exact=True).set_input_files(csvs)
    page.get_by_role("button", name="Upload", exact=True).click()
    for csv in csvs:
        expect(page.get_by_role("cell", name=csv.name, exact=True)).to_be_visible()
    expect(page.locator(".crumb-summary")).to_contain_text("2 files")

    # 3. A full pipeline run, through the create form.
    page.get_by_role("link", name="Pipelines", exact=True).first.click()
    page.get_by_role("link", name="Create new pipeline").first.click()
    expect(page).to_have_url("/p/alpha/pipelines/new/")
    form = page.locator("#pipeline-form")
    in_place(
        page, lambda: form.get_by_label("Pipeline type").select_option(label="Full pipeline run")
    )
    in_place(page, lambda: form.locator("select[name=package]").select_option("points_classifier"))
    expect(form.get_by_label("Major version")).to_have_value("1")
    expect(form.get_by_label("Minor version")).to_have_value("0")
    in_place(page, lambda: form.get_by_label("Input dataset").select_option("points"))
    expect(form.locator("select[name=evaluation_dataset]")).to_have_value("")
    form.get_by_role("button", name="Create", exact=True).click()

    expect(page).to_have_url(re.compile(r"/p/alpha/pipelines/\d+/$"))
    first = PipelineRun.objects.get()
    run_url = f"/p/alpha/pipelines/{first.pk}/"
    watch_run(page, run_url)
    status = page.locator("#run-status .badge")
    log = page.locator("#log-text")

    # It builds the environment (Packaging, the installer's output live), then runs.
    started = time.monotonic()
    page.wait_for_function(
        "() => ['packaging', 'running', 'successful', 'failed'].includes("
        "document.querySelector('#run-status .badge')?.dataset.status)",
        timeout=120_000,  # the session's worker may first finish other tests' jobs
    )
    if status.get_attribute("data-status") == "packaging":
        expect(log).to_contain_text(BUILD_LINE, timeout=5_000)
        shot(page, "52-sklearn-run-packaging.png")
    expect(status).to_have_text("Successful", timeout=FIRST_RUN_TIMEOUT)
    first_seconds = time.monotonic() - started
    seen = first_seen = seen_statuses(page)
    first.refresh_from_db()
    environment = next(p for p in first.phases if p["name"] == "environment")
    build_seconds = environment["end"] - environment["start"]
    assert seen[-2:] == ["running", "successful"], seen
    if build_seconds > 3:  # the page polls every second: a longer build is always seen
        assert "packaging" in seen, (seen, build_seconds)
        assert seen.index("packaging") < seen.index("running"), seen
    # the build line came while the run was going, not with the final page (the badge and the
    # log are polled separately, so the badge may still say queued for up to a second)
    assert page.evaluate("window.__buildLineWhile") in ("queued", "packaging", "running"), seen
    for line in (
        BUILD_LINE,
        "+ scikit-learn==",
        "+ pandas==",
        "process_data: 200 rows -> 150 training, 50 test",
        "train: 150 rows",
        "evaluate: 50 rows, accuracy 0.9",
        "save: model.joblib written",
        "[aicenter] new version points_classifier 1.1",  # the log's last lines follow the status
        "[aicenter] Successful",
    ):
        expect(log).to_contain_text(line)

    # 4. Its score, its new version, its timeline.
    assert first.status == PipelineRun.SUCCESSFUL and 0.9 <= first.score < 1, first.score
    score_text = f"{first.score:.4f}"
    expect(fact(page, "Score")).to_have_text(score_text)
    expect(fact(page, "New version")).to_contain_text("points_classifier 1.1")
    expect(fact(page, "Type")).to_have_text("Full pipeline run")
    expect(fact(page, "Input dataset")).to_have_text("points")
    results = page.locator("details.results pre")
    expect(results).to_contain_text('"version": "1.1"')
    expect(results).to_contain_text(f'"score": {first.score}')
    labels = timeline_rows(page)
    wanted = ["Python environment", "process_data()", "train()", "evaluate()", "save()"]
    assert [label for label in labels if label in wanted] == wanted, labels
    shot(page, "50-sklearn-run-details.png")

    # The list: Successful, 1.0 → 1.1, the same score.
    page.get_by_role("link", name="Pipelines", exact=True).first.click()
    row = page.locator("table.runs tbody tr", has=page.get_by_role("link", name=f"#{first.pk}"))
    expect(row.locator(".badge")).to_have_text("Successful")
    expect(row).to_contain_text("1.0 → 1.1")
    expect(row.locator("td.num").last).to_have_text(score_text)
    expect(row).to_contain_text("Full pipeline run")

    # 5. The artifacts: metrics.json previewed, the CSV as a table, the PNG loaded.
    row.get_by_role("link", name=f"#{first.pk}").click()
    page.locator(".outputs").get_by_role("link", name="Artifacts", exact=True).click()
    expect(page).to_have_url(f"{run_url}artifacts/")
    for name in (
        "metrics.json",
        "predictions.csv",
        "test_predictions.csv",
        "decision_boundary.png",
    ):
        expect(page.get_by_role("link", name=name, exact=True)).to_be_visible()
    preview = page.locator("#preview")
    page.get_by_role("link", name="metrics.json", exact=True).click()
    expect(preview.locator("strong")).to_have_text("metrics.json")
    metrics = json.loads(preview.locator("pre").inner_text())
    assert metrics["accuracy"] == round(first.score, 4), metrics
    assert (metrics["training_rows"], metrics["test_rows"]) == (150, 50), metrics
    assert metrics["model"] == "LogisticRegression"
    assert sum(map(sum, metrics["confusion_matrix"])) == 50

    page.get_by_role("link", name="test_predictions.csv", exact=True).click()
    expect(preview.locator("thead th")).to_have_text(["x1", "x2", "x3", "label", "predicted"])
    expect(preview.locator("tbody tr")).to_have_count(49)  # the first rows only (50 with head)
    expect(preview).to_contain_text("First rows only")
    correct = preview.locator("tbody tr").evaluate_all(
        "rows => rows.filter(r => r.cells[3].textContent === r.cells[4].textContent).length"
    )
    assert correct >= 40, correct

    page.get_by_role("link", name="decision_boundary.png", exact=True).click()
    image = preview.locator("img")
    expect(image).to_be_visible()
    page.wait_for_function(
        "() => { const i = document.querySelector('#preview img');"
        " return i && i.complete && i.naturalWidth > 0; }"
    )
    assert image.evaluate("i => [i.naturalWidth, i.naturalHeight]") == [240, 240]
    shot(page, "51-sklearn-artifacts.png")

    # 6. Version 1.1 is a working model: its zip holds model.joblib, and its main.py predicts
    # in the package's environment.
    page.get_by_role("link", name=f"Run #{first.pk}").click()
    name, content = download(
        page, fact(page, "New version").get_by_role("link", name="Download zip")
    )
    assert name == "points_classifier-1.1.zip"
    archive = zipfile.ZipFile(io.BytesIO(content))
    assert sorted(archive.namelist()) == [
        "points_classifier/main.py",
        "points_classifier/model.joblib",
        "points_classifier/requirements.txt",
        "points_classifier/train.py",
    ]
    archive.extractall(tmp_path / "v1.1")
    version = first.output_version
    assert (version.major, version.minor) == (1, 1)
    key = environment_key(version.package.language, version_requirements(version))
    python = settings.ENVIRONMENTS_DIR / key / "bin" / "python"
    assert (settings.ENVIRONMENTS_DIR / key / READY).exists()
    served = subprocess.run(
        [
            str(python),
            "-c",
            "from main import Main; print(Main().predict('[[9.5, 9.5, 0.5], [0.5, 0.5, 0.5]]'))",
        ],
        cwd=tmp_path / "v1.1" / "points_classifier",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert served.returncode == 0, served.stderr
    assert json.loads(served.stdout) == {"predictions": [1, 0]}

    # 7. A second run of the package (from version 1.1, through "Run again") reuses the
    # environment: no Packaging, no build line, and it is quick.
    page.get_by_role("link", name="Run again").click()
    expect(page).to_have_url(re.compile(r"/p/alpha/pipelines/new/\?from_run="))
    form = page.locator("#pipeline-form")
    expect(form.get_by_label("Pipeline type")).to_have_value("full")
    expect(form.get_by_label("Input dataset")).to_have_value("points")
    form.get_by_label("Minor version").select_option("1")
    form.get_by_role("button", name="Create", exact=True).click()
    expect(page).to_have_url(re.compile(r"/p/alpha/pipelines/\d+/$"))
    second = PipelineRun.objects.exclude(pk=first.pk).get()
    watch_run(page, f"/p/alpha/pipelines/{second.pk}/")
    started = time.monotonic()
    expect(status).to_have_text("Successful", timeout=WARM_RUN_TIMEOUT)
    second_seconds = time.monotonic() - started
    seen = seen_statuses(page)
    # (a warm run may be over between two polls of the page: Running need not show)
    assert seen[-1] == "successful" and "packaging" not in seen, seen
    expect(log).to_contain_text("save: model.joblib written")
    expect(log).not_to_contain_text(BUILD_LINE)
    expect(fact(page, "Package")).to_have_text("points_classifier 1.1")
    expect(fact(page, "New version")).to_contain_text("points_classifier 1.2")
    second.refresh_from_db()
    expect(fact(page, "Score")).to_have_text(f"{second.score:.4f}")
    assert second.score == first.score  # the same data, split and model: the same accuracy
    assert "Python environment" in timeline_rows(page)
    environment = next(p for p in second.phases if p["name"] == "environment")
    assert environment["end"] - environment["start"] < 2, second.phases
    print(
        f"\nfirst run {first_seconds:.1f} s (environment {build_seconds:.1f} s),"
        f" second run {second_seconds:.1f} s, score {first.score:.4f},"
        f" statuses seen {first_seen} then {seen}"
    )

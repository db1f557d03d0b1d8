"""Every page, screenshotted full-page at 1366x900 into test-artifacts/screenshots/ for a
person to look at; each page is also checked for what breaks layouts: horizontal overflow."""

import io

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile

from core.models import Membership, Project
from datasets.services import dataset_create, dataset_files_upload
from packages.models import Package
from packages.services import package_create, package_version_upload
from pipelines.services import pipeline_run_create
from tests.e2e.conftest import log_in
from tests.factories import TRAIN_PY, package_zip

pytestmark = [pytest.mark.browser]

SHOTS = settings.BASE_DIR / "test-artifacts" / "screenshots"

MODEL_PY = '''\
"""Helpers shared by main.py and train.py."""

import json


def load(path):
    with open(path) as f:
        return json.load(f)
'''


TRAIN_WITH_ARTIFACTS_PY = """\
import json
import os


class Main:
    def __init__(self):
        self.files = []

    def train(self, data_directory):
        for root, _, names in os.walk(data_directory):
            self.files += [os.path.join(root, name) for name in names]
        print(f"training on {len(self.files)} files")
        artifacts = os.environ["artifacts_directory"]
        os.makedirs(artifacts, exist_ok=True)
        with open(os.path.join(artifacts, "metrics.json"), "w") as f:
            json.dump({"accuracy": 0.93, "files": len(self.files)}, f, indent=2)
        with open(os.path.join(artifacts, "confusion.csv"), "w") as f:
            f.write("vendor,ACME,Globex\\nACME,41,2\\nGlobex,3,37\\n")

    def evaluate(self, evaluation_directory):
        return 0.93

    def save(self):
        with open("model.json", "w") as f:
            json.dump({"files": len(self.files)}, f)
"""


def _zip(**overrides):
    return SimpleUploadedFile("package.zip", package_zip(**overrides))


def _files(files):
    return [(path, io.BytesIO(content)) for path, content in files.items()]


def _fill_project(project, user):
    invoices = dataset_create(
        project=project, user=user, name="invoices", description="Scanned vendor invoices, 2024"
    )
    dataset_files_upload(
        user=user,
        dataset=invoices,
        files=_files(
            {
                "readme.txt": b"Scanned invoices\n",
                "labels.csv": b"file,vendor\n" + b"inv-001.pdf,ACME\n" * 40,
                "données/résumé.txt": "Résumé des données\n".encode(),
                "données/train/inv-001.pdf": b"%PDF-1.4" + b"0" * 120_000,
                "données/train/inv-002.pdf": b"%PDF-1.4" + b"1" * 98_000,
                "données/test/inv-003.pdf": b"%PDF-1.4" + b"2" * 45_000,
            }
        ),
    )
    dataset_create(project=project, user=user, name="receipts")
    classifier = package_create(
        project=project,
        user=user,
        name="invoice_classifier",
        description="Classifies scanned invoices by vendor; trained on the invoices dataset.",
        input_type="file",
        input_description="A PDF or image of one invoice",
        output_description='{"vendor": str, "confidence": float}',
        file=_zip(**{"model/__init__.py": "", "model/features.py": MODEL_PY}),
    )
    package_version_upload(package=classifier, user=user, file=_zip(**{"notes.md": "# v2\n"}))
    package_create(
        project=project,
        user=user,
        name="sentiment",
        training_enabled=False,
        gpu_required=True,
        file=_zip(**{"train.py": None}),
    )


def _run_pipelines(project, user, settings):
    """Two finished training runs, executed in this process as they are created (the queue's
    immediate mode: nothing goes to Redis, so no worker of another test takes them): one
    successful, one failed."""
    classifier = Package.objects.get(name="invoice_classifier")
    failing = TRAIN_WITH_ARTIFACTS_PY.replace(
        "        for root,",
        "        raise ValueError('no invoices in ' + data_directory)\n        for root,",
    )
    for train_py in (TRAIN_WITH_ARTIFACTS_PY, failing):
        package_version_upload(package=classifier, user=user, file=_zip(**{"train.py": train_py}))
    runs = []
    for version, folder in (("3.0", "données"), ("4.0", "")):
        settings.PIPELINE_QUEUE_IMMEDIATE = True
        run = pipeline_run_create(
            project=project,
            user=user,
            type="train",
            package="invoice_classifier",
            version=version,
            dataset="invoices",
            dataset_folder=folder,
            parameters={"epochs": "3"},
        )
        settings.PIPELINE_QUEUE_IMMEDIATE = False
        run.refresh_from_db()
        runs.append(run)
    return runs


class Camera:
    def __init__(self, page):
        self.page = page
        self.taken = []

    def shoot(self, name, url=None):
        if url:
            self.page.goto(url)
        self.page.wait_for_load_state("load")
        overflow = self.page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{name}: the page is {overflow}px wider than the window"
        self.page.screenshot(path=SHOTS / f"{name}.png", full_page=True)
        self.taken.append(name)


def test_every_page_renders_without_overflow(page, alice, bob, vera, tmp_path, settings):
    SHOTS.mkdir(parents=True, exist_ok=True)
    project = Project.objects.get(slug="alpha")
    project.description = "Invoice processing models for the finance team."
    project.save()
    camera = Camera(page)

    camera.shoot("01-login", "/login/")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill("wrong")
    page.get_by_role("button", name="Log in").click()
    camera.shoot("02-login-error")
    log_in(page, "alice", "pw-alice")
    page.wait_for_url("/p/alpha/")
    camera.shoot("03-projects", "/")

    camera.shoot("04-project-overview-empty", "/p/alpha/")
    camera.shoot("05-members", "/p/alpha/members/")
    camera.shoot("05-settings", "/p/alpha/settings/")
    camera.shoot("06-datasets-empty", "/p/alpha/datasets/")
    camera.shoot("07-packages-empty", "/p/alpha/packages/")
    camera.shoot("08-package-new", "/p/alpha/packages/new/")
    broken = tmp_path / "broken.zip"
    broken.write_bytes(package_zip(**{"train.py": TRAIN_PY.split("    def save")[0]}))
    page.locator("input[name=file]").set_input_files(broken)
    page.get_by_label("Name").fill("2nd-try")
    page.get_by_role("button", name="Create package").click()
    page.locator(".field-errors").first.wait_for()
    camera.shoot("09-package-new-errors")
    assert not Package.objects.exists()

    _fill_project(project, alice)
    camera.shoot("10-project-overview", "/p/alpha/")
    camera.shoot("11-datasets", "/p/alpha/datasets/")
    camera.shoot("12-dataset-root", "/p/alpha/datasets/invoices/")
    camera.shoot("13-dataset-subfolder", "/p/alpha/datasets/invoices/?path=données")
    camera.shoot("14-dataset-empty", "/p/alpha/datasets/receipts/")
    camera.shoot("15-packages", "/p/alpha/packages/")
    camera.shoot("16-package", "/p/alpha/packages/invoice_classifier/")
    camera.shoot("17-version", "/p/alpha/packages/invoice_classifier/2.0/")
    camera.shoot("18-version-preview", "/p/alpha/packages/invoice_classifier/2.0/?file=train.py")
    camera.shoot(
        "19-version-subfolder-preview",
        "/p/alpha/packages/invoice_classifier/1.0/?path=model&file=model/features.py",
    )
    camera.shoot("20-pipelines-empty", "/p/alpha/pipelines/")
    camera.shoot("20-pipeline-new", "/p/alpha/pipelines/new/")
    successful, failed = _run_pipelines(project, alice, settings)
    assert (successful.status, failed.status) == ("successful", "failed")
    camera.shoot("20-pipelines", "/p/alpha/pipelines/")
    camera.shoot("20-pipeline-successful", f"/p/alpha/pipelines/{successful.pk}/")
    camera.shoot("20-pipeline-failed", f"/p/alpha/pipelines/{failed.pk}/")
    camera.shoot(
        "20-pipeline-artifacts",
        f"/p/alpha/pipelines/{successful.pk}/artifacts/?file=confusion.csv",
    )
    download = page.locator("#preview").get_by_role("link", name="Download").get_attribute("href")
    assert page.request.get(download).text().startswith("vendor,ACME,Globex")
    camera.shoot("20-project-overview-with-runs", "/p/alpha/")
    assert page.locator(".tile", has_text="Pipeline runs").inner_text().startswith("2")
    camera.shoot("21-not-found", "/p/alpha/packages/nope/")

    page.context.clear_cookies()
    log_in(page, "vera", "pw-vera")
    camera.shoot("22-forbidden", "/p/alpha/packages/new/")
    camera.shoot("23-package-as-viewer", "/p/alpha/packages/invoice_classifier/")
    camera.shoot("24-dataset-as-viewer", "/p/alpha/datasets/invoices/")
    assert Membership.objects.filter(user=vera, role=Membership.VIEWER).exists()
    assert len(camera.taken) == 31

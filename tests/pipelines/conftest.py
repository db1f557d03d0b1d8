"""Fixtures shared by the pipeline tests of several files."""

import io
import os

import pytest
from django.conf import settings

from datasets.services import dataset_create, dataset_file_put
from packages.services import package_create
from pipelines.runner import sandbox
from tests.conftest import requires, upload
from tests.factories import package_zip
from tests.pipelines.pages import TRAIN
from tests.pipelines.sandboxing import SECRET

# The sandbox tests (test_sandbox_*.py).


@pytest.fixture
def sandbox_available():
    """The sandbox tests carry it in their pytestmark: skipped (failed under CI=true) where
    there is no sandbox to attack."""
    requires(os.geteuid() == 0, "the sandbox tests run as root (a uid per run, cgroups)")
    requires(sandbox.status().enabled, f"no sandbox here: {sandbox.status().problem}")


@pytest.fixture
def secret_file():
    """A server file package code must never read: in the data dir, like the database."""
    path = settings.DATA_DIR / "secret.txt"
    path.write_text(SECRET)
    yield path
    path.unlink(missing_ok=True)


# The pipeline page tests (test_pages_*.py).


@pytest.fixture
def bobs(pages_as, bob, project):
    package_create(
        project=project,
        user=bob,
        name="classifier",
        file=upload(content=package_zip(**{"train.py": TRAIN})),
    )
    dataset = dataset_create(project=project, user=bob, name="invoices")
    dataset_file_put(dataset=dataset, path="train/a.csv", fileobj=io.BytesIO(b"1,2"))
    dataset_file_put(dataset=dataset, path="train/deep/b.csv", fileobj=io.BytesIO(b"3"))
    return pages_as(bob)

"""Fixtures shared by the pipeline tests of several files."""

import io
import os

import pytest
from django.conf import settings

from datasets.services import dataset_create, dataset_file_put
from packages.services import package_create
from sandbox import sandbox
from tests.conftest import requires, upload
from tests.factories import package_zip
from tests.pipelines.pages import TRAIN
from tests.pipelines.sandboxing import SECRET
from tests.pipelines.training import API, train_py

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
    dataset_file_put(user=bob, dataset=dataset, path="train/a.csv", fileobj=io.BytesIO(b"1,2"))
    dataset_file_put(user=bob, dataset=dataset, path="train/deep/b.csv", fileobj=io.BytesIO(b"3"))
    return pages_as(bob)


# The training tests (test_training_*.py).


@pytest.fixture
def api(api_as, bob):
    return api_as(bob)


@pytest.fixture
def package(api):
    def make(train=None, name="classifier"):
        content = package_zip(**{"train.py": train or train_py()})
        response = api.post(f"{API}/packages", {"name": name, "file": upload(content=content)})
        assert response.status_code == 201, response.content
        return name

    return make


@pytest.fixture
def dataset(api):
    def make(files=None, name="invoices"):
        api.post_json(f"{API}/datasets", {"name": name})
        files = files or {"train/a.csv": b"1,2\n", "train/b.csv": b"3,4\n", "test/c.csv": b"5\n"}
        for path, content in files.items():
            response = api.put(
                f"{API}/datasets/{name}/files/{path}",
                content,
                content_type="application/octet-stream",
            )
            assert response.status_code == 201
        return name

    return make

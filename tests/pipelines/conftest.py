"""Fixtures shared by the pipeline tests of several files."""

import os

import pytest
from django.conf import settings

from pipelines.runner import sandbox
from tests.conftest import requires
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

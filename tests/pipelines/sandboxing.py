"""Helpers of the sandbox tests (test_sandbox_*.py): each test is one way hostile package code
tried to get out (issue 8's security review), run for real (bubblewrap, cgroups, uids, real
processes), and what stopped it. Their fixtures (sandbox_available, secret_file) are in
tests/pipelines/conftest.py.

Runs that need no worker go through the runner in this process (run_here), so a test can change
the worker's settings; the others go through real workers."""

import io

from aicenter.manifests import blob_open
from aicenter.models import Blob
from datasets.services import dataset_create, dataset_file_put
from packages.services import package_create
from pipelines.runner.run import run_pipeline
from pipelines.services import pipeline_run_create
from tests.conftest import upload
from tests.factories import package_zip

API = "/api/v1/projects/alpha"
SECRET = "TOPSECRET-not-for-package-code"


def train_py(train: str, save: str = "pass", imports: str = "") -> str:
    indented = "\n".join("        " + line for line in train.strip().splitlines())
    saved = "\n".join("        " + line for line in save.strip().splitlines())
    return f"""\
import json, os, socket, subprocess, sys, time
from pathlib import Path
{imports}

ENV = os.environ
OUT = Path(ENV["artifacts_directory"])


def attempt(action):
    try:
        result = action()
        return "done" if result is None else result
    except Exception as error:
        return type(error).__name__


class Main:
    def __init__(self):
        OUT.mkdir(exist_ok=True)

    def train(self, data_directory):
{indented}

    def evaluate(self, evaluation_directory):
        return 1.0

    def save(self):
{saved}
"""


def run_here(
    project,
    user,
    train,
    *,
    save="pass",
    parameters=None,
    name="attack",
    source=None,
    go_ahead=False,
    requirements="",
):
    """Upload a package with this train() and save() (or train.py's whole `source`) and
    requirements.txt, run it in this process, return the run. `go_ahead`: as a worker does, it
    may take the sandbox started ahead, and starts one for the next run (runner/ahead.py)."""
    files = {"train.py": source or train_py(train, save), "requirements.txt": requirements}
    package_create(project=project, user=user, name=name, file=upload(content=package_zip(**files)))
    if not project.datasets.filter(name="d").exists():
        dataset = dataset_create(project=project, user=user, name="d")
        dataset_file_put(user=user, dataset=dataset, path="a.csv", fileobj=io.BytesIO(b"1,2\n"))
    run = pipeline_run_create(
        project=project,
        user=user,
        type="train",
        package=name,
        version="1.0",
        dataset="d",
        parameters=parameters or {},
    )
    run_pipeline(run, go_ahead=go_ahead)
    run.refresh_from_db()
    return run


def log_of(run) -> str:
    return "".join(run.log_chunks.order_by("seq").values_list("text", flat=True))


def files_of(manifest) -> dict[str, bytes]:
    if manifest is None:
        return {}
    found = {}
    for entry in manifest.entries.exclude(blob=None).select_related("blob"):
        with blob_open(entry.blob) as stored:
            found[entry.path] = stored.read()
    return found


def no_blob_holds(text: str) -> bool:
    for blob in Blob.objects.all():
        with blob_open(blob) as stored:
            if text.encode() in stored.read():
                return False
    return True

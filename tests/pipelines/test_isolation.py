"""Hostile package code against a root worker: it runs as an unprivileged user, so stored
blobs, the database, environments and other runs stay out of its reach."""

import json
import os
import pwd

import pytest
from django.conf import settings

from aicenter.models import Blob
from pipelines.models import PipelineRun
from tests.conftest import upload, wait_for
from tests.factories import package_zip

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(os.geteuid() != 0, reason="package code is isolated from root workers"),
]
API = "/api/v1/projects/alpha"

HOSTILE = """\
import json, os
from pathlib import Path


def attempt(action):
    try:
        action()
        return "done"
    except Exception as error:
        return type(error).__name__


class Main:
    def __init__(self):
        pass

    def train(self, data_directory):
        env = os.environ
        results = {"uid": os.getuid()}
        results["overwrite_blob"] = attempt(lambda: open(env["blob"], "r+b").write(b"evil"))
        results["new_file_in_storage"] = attempt(
            lambda: open(os.path.join(env["storage"], "evil"), "wb").write(b"x"))
        results["list_data_dir"] = attempt(lambda: os.listdir(env["data_dir"]))
        results["write_environments"] = attempt(
            lambda: open(os.path.join(env["environments"], "evil"), "wb").write(b"x"))
        results["own_workspace"] = attempt(lambda: Path("mine.txt").write_text("ok"))
        results["own_data_copy"] = attempt(
            lambda: next(Path(data_directory).rglob("*.csv")).write_text("changed"))
        out = Path(env["artifacts_directory"])
        out.mkdir(exist_ok=True)
        (out / "results.json").write_text(json.dumps(results))

    def evaluate(self, evaluation_directory):
        return 1.0

    def save(self):
        pass
"""


def test_hostile_code_cannot_touch_stored_data(api_as, bob, worker):
    api = api_as(bob)
    content = package_zip(**{"train.py": HOSTILE})
    assert (
        api.post(
            f"{API}/packages", {"name": "hostile", "file": upload(content=content)}
        ).status_code
        == 201
    )
    api.post_json(f"{API}/datasets", {"name": "d"})
    api.put(f"{API}/datasets/d/files/a.csv", b"precious", content_type="text/csv")
    blob = Blob.objects.get(size=len(b"precious"))
    blob_path = settings.DATA_DIR / "storage" / blob.storage_name
    response = api.post_json(
        f"{API}/pipelines",
        {
            "type": "train",
            "package": "hostile",
            "version": "1.0",
            "dataset": "d",
            "parameters": {
                "blob": str(blob_path),
                "storage": str(settings.DATA_DIR / "storage"),
                "data_dir": str(settings.DATA_DIR),
                "environments": str(settings.ENVIRONMENTS_DIR),
            },
        },
    )
    run = wait_for(PipelineRun.objects.get(pk=response.json()["id"]), timeout=120)
    assert run.status == "successful", run.failure_reason
    results = json.loads(
        b"".join(api.get(f"{API}/pipelines/{run.pk}/artifacts/results.json").streaming_content)
    )
    assert results["uid"] == pwd.getpwnam(settings.PIPELINE_RUN_AS_USER).pw_uid
    assert results["overwrite_blob"] == "PermissionError"
    assert results["new_file_in_storage"] == "PermissionError"
    assert results["list_data_dir"] == "PermissionError"
    assert results["write_environments"] == "PermissionError"
    assert results["own_workspace"] == "done"
    assert results["own_data_copy"] == "done"  # its private copy; the stored file is intact
    assert blob_path.read_bytes() == b"precious"
    stored = api.get(f"{API}/datasets/d/files/a.csv")
    assert b"".join(stored.streaming_content) == b"precious"
    version_files = run.output_version.manifest.entries.values_list("path", flat=True)
    assert "mine.txt" in version_files

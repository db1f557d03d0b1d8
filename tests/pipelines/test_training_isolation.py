"""What a training run's code can see and change: only the spec's variables, a workspace removed
after the run, never the stored data or package.

Training runs end to end: the API, a real RQ worker on the real Redis, user code in a real
subprocess. The helpers are in tests/pipelines/training.py, the api, package and dataset fixtures
in tests/pipelines/conftest.py."""

import io
import json
import zipfile

import pytest
from django.conf import settings

from sandbox.workspace import workspace_folders
from tests.conftest import wait_for
from tests.pipelines.training import API, artifact, start, train_py

pytestmark = pytest.mark.django_db(transaction=True)


def test_user_code_sees_only_specs_variables(api, worker, package, dataset):
    package(), dataset()
    run = wait_for(start(api, parameters={"epochs": "3"}))
    env = json.loads(artifact(api, run, "env.json"))
    spec = {
        "artifacts_directory",
        "save_training_data",
        "save_test_data",
        "data_directory",
        "training_data_directory",
        "test_data_directory",
        "metrics_file",
        "MLFLOW_TRACKING_URI",
        "MLFLOW_ALLOW_FILE_STORE",
    }
    # PWD: bubblewrap says where it started the process
    assert set(env) == spec | {"epochs", "PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "PWD"}
    assert env["MLFLOW_TRACKING_URI"] == f"file://{env['metrics_file'].rsplit('/', 1)[0]}/mlruns"
    assert env["HOME"] != env["TMPDIR"]
    for secret in (
        "SECRET_KEY",
        "DATABASE_URL",
        "REDIS_URL",
        "AICENTER_DATA_DIR",
        "DJANGO_SETTINGS_MODULE",
        "AWS_SECRET_ACCESS_KEY",
    ):
        assert secret not in env


def test_the_workspace_is_removed_after_every_run(api, worker, package, dataset):
    package(train_py(extra="        raise RuntimeError('boom')")), dataset()
    failed = wait_for(start(api))
    cwd = artifact(api, failed, "cwd.txt").decode()
    assert cwd.startswith(str(settings.WORKSPACES_DIR))
    from pathlib import Path

    assert not Path(cwd).exists()
    assert not Path(cwd).parent.exists()
    assert list(workspace_folders(f"run-{failed.pk}-*")) == []


HOSTILE = """
        for path in Path(data_directory).rglob("*"):
            if path.is_file():
                path.write_bytes(b"overwritten")
        for path in list(Path(data_directory).rglob("*.csv"))[:1]:
            path.unlink()
        Path("main.py").write_text("# destroyed")
"""


def test_a_hostile_train_cannot_change_stored_data(api, worker, package, dataset):
    package(train_py(extra=HOSTILE)), dataset()
    first = wait_for(start(api, parameters={"save_training_data": "true"}))
    assert first.status == "successful", first.failure_reason
    second = wait_for(start(api, parameters={"save_training_data": "true"}))
    assert second.status == "successful"
    # the second run saw the original data: the first one's writes never reached storage
    assert json.loads(artifact(api, second, "files.json")) == [
        "test/c.csv",
        "train/a.csv",
        "train/b.csv",
    ]
    response = api.get(f"{API}/datasets/invoices/files/train/a.csv")
    assert b"".join(response.streaming_content) == b"1,2\n"
    response = api.get(f"{API}/pipelines/{first.pk}/snapshot/train/b.csv")
    assert b"".join(response.streaming_content) == b"3,4\n"
    original = api.get(f"{API}/packages/classifier/versions/1.0/download")
    archive = zipfile.ZipFile(io.BytesIO(b"".join(original.streaming_content)))
    assert b"class Main" in archive.read("classifier/main.py")

"""A worker that reaches packages and datasets only through the storage API: here storage is
S3 (moto's server on loopback), so nothing is on a local path the worker could cheat with."""

import io
import zipfile

import pytest

from pipelines.models import PipelineRun
from tests.conftest import (
    BUCKET,
    start_worker,
    stop,
    stored_files,
    upload,
    use_s3_storage,
    wait_for,
    wait_for_workers,
)
from tests.factories import package_zip

pytestmark = pytest.mark.django_db(transaction=True)
API = "/api/v1/projects/alpha"


def test_a_pipeline_runs_on_a_worker_that_only_has_s3(api_as, bob, worker, s3_server, settings):
    endpoint, client = s3_server
    use_s3_storage(settings, endpoint)
    s3_worker = start_worker(
        "gpu",
        env={
            "AICENTER_STORAGE": "s3",
            "AWS_STORAGE_BUCKET_NAME": BUCKET,
            "AWS_S3_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_S3_REGION_NAME": "us-east-1",
        },
    )
    try:
        wait_for_workers(1, queue="gpu", process=s3_worker)
        api = api_as(bob)
        assert (
            api.post(
                f"{API}/packages", {"name": "p", "file": upload(content=package_zip())}
            ).status_code
            == 201
        )
        api.post_json(f"{API}/datasets", {"name": "d"})
        api.put(
            f"{API}/datasets/d/files/x/a.csv", b"1,2\n", content_type="application/octet-stream"
        )
        response = api.post_json(
            f"{API}/pipelines",
            {
                "type": "train",
                "package": "p",
                "version": "1.0",
                "dataset": "d",
                "gpu": True,
                "parameters": {"save_training_data": "true"},
            },
        )
        run = wait_for(PipelineRun.objects.get(pk=response.json()["id"]), timeout=120)
        assert run.status == "successful", run.failure_reason
        download = api.get(f"{API}/packages/p/versions/1.1/download")
        archive = zipfile.ZipFile(io.BytesIO(b"".join(download.streaming_content)))
        assert archive.read("p/model.txt") == b"trained"
        snapshot = api.get(f"{API}/pipelines/{run.pk}/snapshot/x/a.csv")
        assert b"".join(snapshot.streaming_content) == b"1,2\n"
        keys = [o["Key"] for o in client.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
        assert any(key.startswith("blobs/") for key in keys)
        assert stored_files() == []  # not one byte on the local storage path
    finally:
        stop(s3_worker)
        for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
            client.delete_object(Bucket=BUCKET, Key=item["Key"])

#!/usr/bin/env python
"""Pipeline speed, measured. Run from the repository root with the venv's Python:

    .venv/bin/python bench/pipeline_bench.py [--runs 20] [--files 10000] [--mb 1000]

1. A trivial training package on a warm worker (a real `manage.py rqworker pipelines` and a real
   `manage.py runserver`), submitted through the HTTP API: median of submit → user code started
   and submit → Successful. Baseline: the same no-op run as a bare Python subprocess
   (`from train import Main; m = Main(); m.train('./data'); m.save()`), timed here.
2. A generated dataset (default 10,000 files, 1 GB): materialising it into a workspace and taking
   a snapshot, next to `cp -r` of the same tree on this machine.

It uses its own data directory (SQLite and the embedded Redis unless DATABASE_URL / REDIS_URL
are set), so it never touches your instance.
"""

import argparse
import io
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TRAIN = """\
class Main:
    def __init__(self):
        pass

    def train(self, data_directory):
        pass

    def evaluate(self, evaluation_directory):
        return 1.0

    def save(self):
        pass
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def setup_django(data_dir):
    os.environ["AICENTER_DATA_DIR"] = str(data_dir)
    # the settings require one, of 50 characters or more
    os.environ.setdefault("SECRET_KEY", "benchmark-only-not-a-secret-abcdefghijklmnopqrstuvw")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aicenter.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def api(port, token, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1{path}",
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read() or b"null")


def median_ms(values):
    return statistics.median(values) * 1000


def noop_package(username="bench"):
    """A user with a token in the default project, the no-op package `noop` 1.0 and the dataset
    `tiny` of one file: what a trivial run needs. Returns the token."""
    from django.contrib.auth import get_user_model
    from django.core.files.uploadedfile import SimpleUploadedFile

    from core.models import Membership, Project
    from core.tokens import api_token_create
    from datasets.services import dataset_create, dataset_file_put
    from packages.services import package_create
    from tests.factories import package_zip

    user = get_user_model().objects.create_user(username, password=username)
    project = Project.objects.get(slug="default")
    Membership.objects.create(project=project, user=user, role=Membership.ADMIN)
    token = api_token_create(user=user, name="pipeline bench").token
    package_create(
        project=project,
        user=user,
        name="noop",
        file=SimpleUploadedFile("p.zip", package_zip(**{"train.py": TRAIN})),
    )
    dataset = dataset_create(project=project, user=user, name="tiny")
    dataset_file_put(user=user, dataset=dataset, path="x.csv", fileobj=io.BytesIO(b"1\n"))
    return token


def bench_runs(runs):
    from pipelines.models import PipelineRun

    token = noop_package()
    port = free_port()
    manage = [sys.executable, str(ROOT / "manage.py")]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    server = subprocess.Popen([*manage, "runserver", f"127.0.0.1:{port}", "--noreload"], **quiet)
    worker = subprocess.Popen([*manage, "rqworker", "pipelines"], **quiet)
    try:
        for _ in range(100):
            try:
                api(port, token, "GET", "/projects")
                break
            except OSError:
                time.sleep(0.1)
        started, finished = [], []
        for index in range(runs + 2):  # the first two warm the worker and the server
            submitted = time.time()
            run_id = api(
                port,
                token,
                "POST",
                "/projects/default/pipelines",
                {"type": "train", "package": "noop", "version": "1.0", "dataset": "tiny"},
            )["id"]
            run = PipelineRun.objects.get(pk=run_id)
            while run.status not in PipelineRun.FINISHED:
                time.sleep(0.01)
                run.refresh_from_db()
            assert run.status == "successful", run.failure_reason
            if index >= 2:
                user_code = next(p["start"] for p in run.phases if p["name"] == "import")
                started.append(user_code - submitted)
                finished.append(run.finished_at.timestamp() - submitted)
    finally:
        for process in (server, worker):
            process.terminate()
            process.wait()

    bare = []
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "train.py").write_text(TRAIN)
        Path(folder, "data").mkdir()
        code = "from train import Main; m = Main(); m.train('./data'); m.save()"
        for _ in range(runs):
            began = time.time()
            subprocess.run([sys.executable, "-c", code], cwd=folder, check=True)
            bare.append(time.time() - began)
    print(f"\nTrivial training run on a warm worker, {runs} runs (median):")
    print(f"  submit → user code started  {median_ms(started):7.0f} ms   (target ≤ 300 ms)")
    print(f"  submit → Successful         {median_ms(finished):7.0f} ms   (target ≤ 600 ms)")
    print(f"  baseline: bare python -c    {median_ms(bare):7.0f} ms")
    ratio = statistics.median(finished) / statistics.median(bare)
    print(f"  ratio Successful / baseline {ratio:7.1f}×")
    print("  (for reference, MLflow's `mlflow run` of the same no-op: about 2,400 ms here)")


def bench_data(files, megabytes):
    from django.contrib.auth import get_user_model

    from core.manifests import manifest_copy, manifest_from_files
    from core.models import Blob, Project
    from datasets.models import Dataset
    from sandbox.workspace import Workspace

    size = megabytes * 1024 * 1024 // files
    scratch = Path(tempfile.mkdtemp(prefix="aicenter-bench-"))
    source = scratch / "source"
    print(f"\nGenerating {files:,} files of {size:,} bytes ({megabytes:,} MB)…", flush=True)
    for index in range(files):
        folder = source / f"part{index % 100:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"file{index:05d}.bin").write_bytes(os.urandom(size))

    def items():
        for path in sorted(source.rglob("*.bin")):
            with open(path, "rb") as fileobj:
                yield str(path.relative_to(source)), fileobj

    began = time.time()
    manifest = manifest_from_files(items())
    user = get_user_model().objects.get(username="bench")
    dataset = Dataset.objects.create(
        project=Project.objects.get(slug="default"), name="big", manifest=manifest, created_by=user
    )
    print(f"  upload into storage (hash + store, not a target): {time.time() - began:.1f} s")

    def timed(function, repeat=3):
        times = []
        for _ in range(repeat):
            os.sync()  # neither side pays for the other's pending disk writes
            began = time.perf_counter()
            function()
            times.append(time.perf_counter() - began)
        return min(times)

    def cp():
        target = scratch / "cp"
        subprocess.run(["cp", "-r", str(source), str(target)], check=True)
        shutil.rmtree(target)

    def materialise():
        workspace = Workspace.create(0)
        workspace.materialise(dataset.manifest, workspace.package / "data")
        workspace.remove()

    blobs = Blob.objects.count()
    cp_time = timed(cp)
    materialise_time = timed(materialise)
    snapshot_time = timed(lambda: manifest_copy(dataset.manifest))
    print(f"  cp -r of the same tree        {cp_time:6.2f} s")
    print(
        f"  materialise into a workspace  {materialise_time:6.2f} s   "
        f"({materialise_time / cp_time:.2f}× cp -r; target ≤ 1.5×)"
    )
    print(
        f"  snapshot                      {snapshot_time:6.2f} s   (target ≤ 1 s), "
        f"new blobs: {Blob.objects.count() - blobs} (bytes copied: 0)"
    )
    shutil.rmtree(scratch)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--mb", type=int, default=1000)
    parser.add_argument("--skip-data", action="store_true")
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="aicenter-bench-data-"))
    try:
        setup_django(data_dir)
        bench_runs(args.runs)
        if not args.skip_data:
            bench_data(args.files, args.mb)
    finally:
        from django.conf import settings

        if settings.EMBEDDED_REDIS:
            from core.embedded_redis import stop

            stop(settings.DATA_DIR)
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()

"""One configuration of bench/throughput_bench.py: an AI Center in this process, on a data
directory of its own, with its web server and workers."""

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.pipeline_bench import api, free_port, noop_package

ROOT = Path(__file__).resolve().parent.parent
QUIET = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
BENCH_REDIS = "redis://127.0.0.1:6379/12"
BENCH_DATABASE = "aicenter_throughput"


class Instance:
    """This process's AI Center: Django set up on a data directory of its own, a web server and
    workers started as `python3 run.py` starts them."""

    def __init__(self, config):
        self.config = config
        self.data_dir = Path(tempfile.mkdtemp(prefix=f"aicenter-throughput-{config}-"))
        self.moto = None
        self.workers = []
        os.environ["AICENTER_DATA_DIR"] = str(self.data_dir)
        os.environ.setdefault("SECRET_KEY", "benchmark-only-not-a-secret-abcdefghijklmnopqrstuvw")
        os.environ["DJANGO_SETTINGS_MODULE"] = "aicenter.settings"
        if config == "s3-postgres":
            self._scale_out_services()
        else:
            os.environ.pop("DATABASE_URL", None)
            os.environ.pop("REDIS_URL", None)
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        self.port = free_port()
        self.web = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "waitress",
                f"--listen=127.0.0.1:{self.port}",
                "--threads=8",
                "aicenter.wsgi:application",
            ],
            cwd=ROOT,
            **QUIET,
        )
        self._package()

    def _scale_out_services(self):
        from moto.server import ThreadedMotoServer

        port = free_port()
        self.moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        self.moto.start()
        os.environ.update(
            AICENTER_STORAGE="s3",
            AWS_S3_ENDPOINT_URL=f"http://127.0.0.1:{port}",
            AWS_STORAGE_BUCKET_NAME="throughput",
            AWS_ACCESS_KEY_ID="bench",
            AWS_SECRET_ACCESS_KEY="bench",
            AWS_S3_REGION_NAME="us-east-1",
            REDIS_URL=BENCH_REDIS,
            DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{BENCH_DATABASE}",
        )
        import boto3

        boto3.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{port}",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
            region_name="us-east-1",
        ).create_bucket(Bucket="throughput")
        postgres = ["-h", "127.0.0.1", "-U", "postgres"]
        subprocess.run(["dropdb", *postgres, "--if-exists", BENCH_DATABASE], check=True)
        subprocess.run(["createdb", *postgres, BENCH_DATABASE], check=True)
        subprocess.run(["redis-cli", "-u", BENCH_REDIS, "flushdb"], check=True, **QUIET)

    def _package(self):
        self.token = noop_package()
        for _ in range(200):
            try:
                api(self.port, self.token, "GET", "/projects")
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("the web server did not answer")

    def submit(self) -> int:
        body = {"type": "train", "package": "noop", "version": "1.0", "dataset": "tiny"}
        return api(self.port, self.token, "POST", "/projects/default/pipelines", body)["id"]

    def start_workers(self, count):
        manage = [sys.executable, str(ROOT / "manage.py")]
        for _ in range(count):
            self.workers.append(subprocess.Popen([*manage, "rqworker", "pipelines"], **QUIET))

    def stop_workers(self):
        for worker in self.workers:
            worker.terminate()
        for worker in self.workers:
            worker.wait()
        self.workers = []

    def wait_finished(self, run_ids, timeout=600, poll=0.2):
        """Wait for the runs to end (a count every `poll` seconds: the bench must not take the
        CPU the workers need); assert they all succeeded."""
        from pipelines.models import PipelineRun

        runs = PipelineRun.objects.filter(pk__in=run_ids)
        deadline = time.time() + timeout
        while runs.filter(status__in=PipelineRun.FINISHED).count() < len(run_ids):
            if time.time() > deadline:
                raise TimeoutError("runs did not finish")
            time.sleep(poll)
        failed = runs.exclude(status=PipelineRun.SUCCESSFUL)
        assert not failed, [(run.pk, run.status, run.failure_reason) for run in failed]
        return list(runs)

    def redis(self):
        import django_rq

        return django_rq.get_connection("pipelines")

    def close(self):
        self.stop_workers()
        self.web.terminate()
        self.web.wait()
        from django.conf import settings
        from django.db import connections

        if settings.EMBEDDED_REDIS:
            from core.embedded_redis import stop

            stop(settings.DATA_DIR)
        connections.close_all()
        if self.config == "s3-postgres":
            subprocess.run(
                ["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--if-exists", BENCH_DATABASE],
                check=False,
            )
            self.moto.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)

"""A PostgreSQL server of the test's own, to stop and start under running workers (the machine's
PostgreSQL serves other processes), and this test process's Django on it meanwhile."""

import contextlib
import glob
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import dj_database_url
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.db import connections
from django.db.utils import load_backend

from tests.conftest import free_port, wait_until


def postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


class PostgresServer:
    """initdb into a temporary folder as the postgres user (PostgreSQL refuses root), on a free
    port of loopback; `stop()` is PostgreSQL's fast shutdown (connections are ended), `start()`
    brings the same data back."""

    def __init__(self):
        self.bin = postgres_bin()
        self.folder = Path(tempfile.mkdtemp(prefix="aicenter-postgres-"))
        shutil.chown(self.folder, "postgres", "postgres")
        self.data = self.folder / "data"
        self.port = free_port()
        self.process = None
        initdb = subprocess.run(
            [self.bin / "initdb", "-D", self.data, "-U", "postgres", "-E", "UTF8", "--no-sync",
             "--auth=trust"],
            user="postgres", capture_output=True, text=True,
        )  # fmt: skip
        if initdb.returncode:
            raise RuntimeError(f"initdb failed:\n{initdb.stdout}{initdb.stderr}")
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.bin / "postgres", "-D", self.data, "-p", str(self.port), "-k", self.folder,
             "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
             "-c", "synchronous_commit=off", "-c", "full_page_writes=off"],
            user="postgres", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_until(self.answers, 30, "PostgreSQL did not start")

    def answers(self) -> bool:
        ready = [self.bin / "pg_isready", "-q", "-h", "127.0.0.1", "-p", str(self.port)]
        return subprocess.run(ready).returncode == 0

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # fast shutdown: sessions are ended
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


@contextlib.contextmanager
def django_on(url: str):
    """This process's default database is `url` (migrated) until the block ends; then the
    test database again."""
    original = connections["default"]
    settings_dict = {**original.settings_dict, **dj_database_url.parse(url)}
    settings_dict.update(OPTIONS={}, CONN_MAX_AGE=0, TEST={})
    replacement = load_backend(settings_dict["ENGINE"]).DatabaseWrapper(settings_dict, "default")
    connections["default"] = replacement
    ContentType.objects.clear_cache()  # their ids are the other database's
    try:
        call_command("migrate", verbosity=0)
        yield
    finally:
        replacement.close()
        connections["default"] = original
        ContentType.objects.clear_cache()

"""The data dir (every project's files, the embedded Redis, the signing key) and the SQLite
database are the server user's alone: 0700 and 0600 from the start, narrowed at every start
where found wider, and sandboxed runs still reach what they need under it."""

import os
import stat
import subprocess
import sys

import pytest
from django.conf import settings

from pipelines.models import PipelineRun
from sandbox import sandbox
from tests.conftest import (
    classifier_and_invoices,
    classifier_run,
    requires,
    start_worker,
    stop,
    wait_for,
    wait_for_workers,
    wait_until,
)

KEY = "data-dir-tests-" + "k" * 50


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def manage(*args, data_dir, **env):
    """`manage.py` as a fresh start would run it, on a data dir of its own (SQLite in it)."""
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AICENTER_", "DJANGO_")) and k not in ("DATABASE_URL", "SECRET_KEY")
    }
    env = base | {"AICENTER_DATA_DIR": str(data_dir), "SECRET_KEY": KEY} | env
    # a Redis URL nothing answers: no embedded redis-server for a settings check
    env |= {"DJANGO_SETTINGS_MODULE": "aicenter.settings", "REDIS_URL": "redis://127.0.0.1:1/0"}
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result


def test_a_fresh_data_dir_and_its_database_are_the_owners_alone(tmp_path):
    """The attack: any local user reads aicenter.sqlite3 (password hashes, webhook secrets,
    every project's rows) when the data dir and the file take the umask's 0755 and 0644."""
    data_dir = tmp_path / "var"
    old_umask = os.umask(0o022)  # the usual one, whatever the test session's is
    try:
        manage("migrate", data_dir=data_dir)
    finally:
        os.umask(old_umask)
    assert mode(data_dir) == 0o700
    database = data_dir / "aicenter.sqlite3"
    assert database.stat().st_size > 0  # migrated: SQLite took the file it was given
    for path in data_dir.glob("aicenter.sqlite3*"):  # the WAL and its index too
        assert mode(path) == 0o600, path


def test_a_wider_data_dir_and_database_are_narrowed_at_start(tmp_path):
    data_dir = tmp_path / "var"
    manage("migrate", data_dir=data_dir)
    data_dir.chmod(0o755)  # as an older version, a copy or a restore left them
    (data_dir / "aicenter.sqlite3").chmod(0o644)
    (data_dir / "aicenter.sqlite3-wal").write_bytes(b"")
    (data_dir / "aicenter.sqlite3-wal").chmod(0o666)

    manage("check", data_dir=data_dir)

    assert mode(data_dir) == 0o700
    assert mode(data_dir / "aicenter.sqlite3") == 0o600
    assert mode(data_dir / "aicenter.sqlite3-wal") == 0o600


def test_unsandboxed_runs_keep_it_crossable_never_readable(tmp_path):
    """AICENTER_SANDBOX=off runs package code as other uids straight on the host: they must
    cross the data dir to their workspace, never list it."""
    data_dir = tmp_path / "var"
    data_dir.mkdir(mode=0o755)
    data_dir.chmod(0o755)
    manage("check", data_dir=data_dir, AICENTER_SANDBOX="off")
    assert mode(data_dir) == 0o711


@pytest.mark.django_db(transaction=True)
def test_sandboxed_runs_work_in_a_private_data_dir(project, bob):
    """A worker starting on a data dir left world-readable narrows it, and a run (its own uid,
    in bubblewrap) still reads its package, dataset and environment under it and succeeds."""
    requires(sandbox.status().enabled, f"no sandbox here: {sandbox.status().problem}")
    requires(os.geteuid() == 0, "root, for the runs' own uids")
    data_dir = settings.DATA_DIR
    data_dir.chmod(0o755)
    worker = start_worker("pipelines", new_session=True)
    try:
        wait_until(lambda: mode(data_dir) == 0o700, 30, "the worker left the data dir wider")
        wait_for_workers(1, process=worker)
        classifier_and_invoices(project, bob)
        run = wait_for(classifier_run(project, bob), timeout=120)
        log = "".join(run.log_chunks.order_by("seq").values_list("text", flat=True))
        assert run.status == PipelineRun.SUCCESSFUL, run.failure_reason + log[-3000:]
        assert run.sandbox["enabled"] and run.output_version is not None
    finally:
        stop(worker)
        data_dir.chmod(0o700)

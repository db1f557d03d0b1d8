"""The embedded Redis (REDIS_URL unset) is started by the processes that talk to Redis, and
only by them."""

import os
import subprocess
import sys
from pathlib import Path

import redis

from core.embedded_redis import socket_path


def _answers(sock: Path) -> bool:
    try:
        return redis.Redis(unix_socket_path=str(sock), socket_connect_timeout=0.5).ping()
    except (redis.ConnectionError, OSError):
        return False


def test_commands_that_need_no_redis_start_none(tmp_path):
    """migrate, check or makemigrations --check start no redis-server: only the web
    application, the workers and the test session do."""
    data_dir = tmp_path / "d"
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    env.update(AICENTER_DATA_DIR=str(data_dir), SECRET_KEY="k" * 40 + "0123456789")
    env.pop("DJANGO_SETTINGS_MODULE", None)
    for command in (["check"], ["makemigrations", "--check", "--dry-run"], ["migrate"]):
        subprocess.run(
            [sys.executable, "manage.py", *command],
            cwd=Path(__file__).resolve().parent.parent,
            env=env,
            check=True,
            capture_output=True,
        )
    assert not (data_dir / "redis" / "redis.pid").exists()
    assert not _answers(socket_path(data_dir))

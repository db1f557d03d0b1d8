"""Run the package's code as an unprivileged user when the worker runs as root, so it can't
touch stored data, the database or other runs' workspaces: only its own workspace is
writable to it. (A worker that is not root runs it as itself: use a dedicated account.)"""

import functools
import logging
import os
import pwd
import subprocess

from django.conf import settings

logger = logging.getLogger(__name__)


@functools.cache
def run_as_ids() -> tuple[int, int] | None:
    """(uid, gid) to run package code as, or None to run it as the worker itself."""
    name = settings.PIPELINE_RUN_AS_USER
    if not name or os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        logger.error("AICENTER_RUN_AS_USER=%s: no such user; package code runs as root", name)
        return None
    return entry.pw_uid, entry.pw_gid


@functools.cache
def can_run(python: str, ids: tuple[int, int]) -> bool:
    """Can that user start this interpreter? (Not when it lives in a folder only root reads.)"""
    try:
        return (
            subprocess.run(
                [python, "-c", "pass"],
                user=ids[0],
                group=ids[1],
                extra_groups=[],
                capture_output=True,
                timeout=30,
            ).returncode
            == 0
        )
    except OSError:
        return False


def protect_directories() -> None:
    """The data dir can be crossed but not read; storage, Redis and the database are root's;
    environments are readable; workspaces are reached only by their own run."""
    data = settings.DATA_DIR
    modes = [
        (data, 0o711),
        (data / "storage", 0o700),
        (data / "redis", 0o700),
        (settings.WORKSPACES_DIR, 0o711),
        (settings.ENVIRONMENTS_DIR, 0o755),
    ]
    modes += [(path, 0o600) for path in data.glob("*.sqlite3*")]
    for path, mode in modes:
        try:
            if path.exists():
                path.chmod(mode)
        except OSError:
            logger.warning("could not chmod %s", path)


def hand_over(root, ids: tuple[int, int]) -> None:
    """Give a workspace to the run's user."""
    uid, gid = ids
    os.chown(root, uid, gid)
    for folder, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.chown(os.path.join(folder, name), uid, gid, follow_symlinks=False)

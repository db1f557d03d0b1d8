"""Workspace ownership and, only where the operator turned the sandbox off, what is left of
isolation without it. The sandbox itself is sandbox/sandbox.py."""

import functools
import logging
import os
import subprocess

from django.conf import settings

logger = logging.getLogger(__name__)
# Starting an interpreter to see whether a uid may: a second at most, unless the disk hangs.
PROBE_TIMEOUT_SECONDS = 30


@functools.cache
def can_run(python: str, ids: tuple[int, int]) -> bool:
    """Can that user start this interpreter outside a sandbox? (Not when it lives in a folder
    only root reads.)"""
    try:
        return (
            subprocess.run(
                [python, "-c", "pass"],
                user=ids[0],
                group=ids[1],
                extra_groups=[],
                capture_output=True,
                timeout=PROBE_TIMEOUT_SECONDS,
            ).returncode
            == 0
        )
    except OSError:
        return False


def protect_directories() -> None:
    """Unsandboxed runs only: the data dir can be crossed but not read; storage, Redis and the
    database are root's; environments are readable; workspaces are reached only by their run."""
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


def hand_over(workspace, uid: int, *, folders=None) -> None:
    """Give the run's uid its package, home, tmp and metrics folders (or only `folders`). The
    workspace's own folder stays the worker's (crossable, not writable), so the run can't swap
    those folders for links. Deepest first, each folder after its contents: while the worker
    goes through a folder, it and the folders above it are still the worker's, so a process of
    that uid already running (a sandbox started ahead) can't swap any of them for a link. (It
    may change what the uid already owns: a folder handed over while that process runs must
    have had no other owner since.)"""
    os.chmod(workspace.root, 0o711)
    if folders is None:
        folders = [workspace.package, workspace.home, workspace.tmp, workspace.metrics]
    for top in folders:
        for folder, dirnames, filenames in os.walk(top, topdown=False):
            for name in dirnames + filenames:
                os.chown(os.path.join(folder, name), uid, uid, follow_symlinks=False)
        os.chown(top, uid, uid)

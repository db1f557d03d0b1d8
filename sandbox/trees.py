"""Deleting a folder tree that package code wrote. Standard library only."""

import contextlib
import errno
import os
from pathlib import Path

_FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW


def remove_tree(root: Path) -> None:
    """Delete a folder that package code wrote into, as shutil.rmtree would, but without its
    recursion: Python 3.11's recurses once per level, and a package can make a tree deeper
    than the interpreter's stack (RecursionError, and the folder stays forever). Like rmtree,
    it never follows a link: every step is relative to an open folder, opened O_NOFOLLOW.
    Not root (a worker without the sandbox's own uids), it makes folders the package locked
    (chmod 000) writable as it goes."""
    try:
        top = os.open(root, _FOLDER)
    except FileNotFoundError:
        return
    except OSError as error:  # a file or a link where the folder was
        if error.errno not in (errno.ENOTDIR, errno.ELOOP):
            raise
        os.unlink(root)
        return
    stack = [(top, "")]  # the open folders from the top down, each with its name
    try:
        while stack:
            folder = stack[-1][0]
            child = _next_subfolder(folder)  # after deleting the folder's files
            if child is not None:
                stack.append(child)
                continue
            os.close(folder)
            _, name = stack.pop()
            if stack:
                with contextlib.suppress(FileNotFoundError):
                    _in_folder(stack[-1][0], os.rmdir, name)
    finally:
        for folder, _ in stack:
            os.close(folder)
    with contextlib.suppress(FileNotFoundError):
        os.rmdir(root)


def _next_subfolder(folder: int):
    """Delete the files and links in `folder`; return its first subfolder, open, with its
    name, or None when it has none left."""
    with os.scandir(folder) as entries:
        for entry in entries:
            name = entry.name
            try:
                if entry.is_dir(follow_symlinks=False):
                    return _in_folder(folder, os.open, name, _FOLDER, unlock=True), name
                _in_folder(folder, os.unlink, name)
            except FileNotFoundError:
                continue  # removed meanwhile (the runner and the sweeper may both be at it)
    return None


def _in_folder(folder: int, call, name: str, *args, unlock=False):
    """`call(name, *args)` relative to the open `folder`; on a permission error when not root,
    make `folder` (and with `unlock` the folder `name` in it) writable and try once more."""
    try:
        return call(name, *args, dir_fd=folder)
    except PermissionError:
        if os.geteuid() == 0:
            raise
        os.fchmod(folder, 0o700)
        if unlock:
            os.chmod(name, 0o700, dir_fd=folder)
        return call(name, *args, dir_fd=folder)

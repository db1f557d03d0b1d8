#!/usr/bin/env python3
"""The README's two commands, with nothing but Python 3.11+ installed:

python3 run.py          set up (venv, install, migrate, admin login) and start everything
python3 run.py test     run the whole test suite (extra arguments go to pytest)
"""

import hashlib
import os
import secrets
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("AICENTER_VENV", ROOT / ".venv"))
PYTHON = VENV / "bin" / "python"


def ensure_installed(extras: str) -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 (run.py may be started by any python3)
        sys.exit("AI Center needs Python 3.11 or newer.")
    if not PYTHON.exists():
        print(f"Creating the virtual environment in {VENV} …", flush=True)
        venv.create(VENV, with_pip=True)
    spec = f".[{extras}]" if extras else "."
    stamp = VENV / f".aicenter-installed-{extras or 'base'}"
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + spec.encode()).hexdigest()
    if stamp.exists() and stamp.read_text() == wanted:
        return
    print(f"Installing AI Center ({spec}) …", flush=True)
    pip = [str(PYTHON), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "-e", spec], cwd=ROOT, check=True)
    stamp.write_text(wanted)


def ensure_secret_key(data_dir: Path) -> str:
    """SECRET_KEY for this machine: the environment's, else one made on the first start and
    kept in the data dir (readable by its owner only), as the admin password is."""
    if os.environ.get("SECRET_KEY"):
        return os.environ["SECRET_KEY"]
    key_file = data_dir / "secret-key.txt"
    if not key_file.exists():
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)  # as the settings keep it
        # created with mode 0600 from the start: the key is never readable by others
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(50) + "\n")
    return key_file.read_text().strip()


def _in_parallel(arguments: list[str]) -> list[str]:
    """The suite in two processes (pytest-xdist; tests/settings.py gives each its own data
    dir, Redis database and sandbox uids): on two cores CI's run took 13.5–14.7 minutes
    instead of 15.5 (much of the suite computes). `-n 0` runs one."""
    if any(a.startswith(("-n", "--numprocesses")) for a in arguments):
        return arguments
    return ["-n", "2", "--dist", "worksteal", *arguments]


def main(argv: list[str]) -> int:
    os.chdir(ROOT)
    if argv[:1] == ["test"]:
        ensure_installed("dev")
        return subprocess.call([str(PYTHON), "-m", "pytest", *_in_parallel(argv[1:])])
    ensure_installed("")
    # The same data dir as aicenter/settings.py finds (relative paths from ROOT, as here).
    data_dir = Path(os.environ.get("AICENTER_DATA_DIR", ROOT / "var")).resolve()
    # manage.py start, its migrate and the processes it starts all inherit it.
    os.environ["SECRET_KEY"] = ensure_secret_key(data_dir)
    os.execv(str(PYTHON), [str(PYTHON), "manage.py", "start", *argv])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

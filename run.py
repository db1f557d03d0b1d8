#!/usr/bin/env python3
"""The README's two commands, with nothing but Python 3.11+ installed:

python3 run.py          set up (venv, install, migrate, admin login) and start everything
python3 run.py test     run the whole test suite (extra arguments go to pytest)
"""

import hashlib
import os
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


def main(argv: list[str]) -> int:
    os.chdir(ROOT)
    if argv[:1] == ["test"]:
        ensure_installed("dev")
        return subprocess.call([str(PYTHON), "-m", "pytest", *argv[1:]])
    ensure_installed("")
    os.execv(str(PYTHON), [str(PYTHON), "manage.py", "start", *argv])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

#!/usr/bin/env python
"""Package environments, measured. Run from the repository root with the venv's Python:

    .venv/bin/python bench/environment_bench.py [--requirements "scikit-learn pandas"]

For a package whose requirements.txt asks for scikit-learn and pandas:
  - baseline: a bare `uv venv` + `uv pip install -r requirements.txt` with a warm uv cache,
    timed here (no sandbox, nothing compiled);
  - the first run's environment build (environments.environments.environment_for): in its
    sandbox, through the index proxy, with a cache of its own (so it downloads what it
    installs), its bytecode compiled;
  - a second run's (the environment exists: about zero).
It uses its own data directory and never touches your instance.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requirements", default="scikit-learn pandas")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    requirements = "\n".join(args.requirements.split()) + "\n"
    data_dir = Path(tempfile.mkdtemp(prefix="aicenter-bench-env-"))
    os.environ["AICENTER_DATA_DIR"] = str(data_dir)
    # the settings require one, of 50 characters or more
    os.environ.setdefault("SECRET_KEY", "benchmark-only-not-a-secret-abcdefghijklmnopqrstuvw")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aicenter.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    call_command("migrate", verbosity=0)

    from environments.builds import find_uv
    from environments.environments import environment_for, find_python

    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    python, uv = find_python(version), find_uv()
    scratch = data_dir / "scratch"
    scratch.mkdir()
    (scratch / "requirements.txt").write_text(requirements)
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "check": True}

    def bare(target):
        subprocess.run([uv, "venv", "--python", python, "--quiet", str(target)], **quiet)
        subprocess.run(
            [
                uv,
                "pip",
                "install",
                "--python",
                str(target / "bin" / "python"),
                "-r",
                str(scratch / "requirements.txt"),
            ],
            **quiet,
        )

    print(f"Requirements: {', '.join(args.requirements.split())}; Python {version} ({python})")
    began = time.perf_counter()
    bare(scratch / "warm-up")  # fills uv's cache: every figure below has a warm cache
    print(f"  warming uv's cache (downloads, not a figure)   {time.perf_counter() - began:6.2f} s")

    baseline, first, second = [], [], []
    for attempt in range(args.repeat):
        target = scratch / f"bare-{attempt}"
        began = time.perf_counter()
        bare(target)
        baseline.append(time.perf_counter() - began)
        shutil.rmtree(target)
        shutil.rmtree(settings.ENVIRONMENTS_DIR, ignore_errors=True)
        began = time.perf_counter()
        environment_for(python_version=version, requirements=requirements)
        first.append(time.perf_counter() - began)
        began = time.perf_counter()
        environment_for(python_version=version, requirements=requirements)
        second.append(time.perf_counter() - began)

    best = min
    print(f"  bare uv venv + uv pip install (baseline)      {best(baseline):6.2f} s")
    print(
        f"  first run: environment build                  {best(first):6.2f} s   "
        f"({best(first) / best(baseline):.2f}× baseline)"
    )
    print(f"  second run: environment reused                {best(second) * 1000:6.1f} ms")
    from core.embedded_redis import stop

    stop(settings.DATA_DIR)
    shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()

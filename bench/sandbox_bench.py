#!/usr/bin/env python
"""What the sandbox costs a run, measured. Run from the repository root with the venv's Python:

    .venv/bin/python bench/sandbox_bench.py [--runs 40]

Times the package's process as the runner starts it (the bootstrap calling train() and save()
of a no-op package, in a real package environment), in the same process:

1. baseline: a bare subprocess of the environment's Python, as before the sandbox;
2. the sandbox as a root worker runs it: bubblewrap, setpriv to the run's own uid, a cgroup for
   the whole run's memory and processes (made and removed each time, as for a run), its seccomp
   filter, and the run's uid leased from the database and given back (sandbox/sandbox_uids.py);
3. the same without the filter, as one uid for every run (how sandboxes were before both);
4. and 5. the same two without cgroups (the memory watchdog's case);

and prints medians and what the sandbox adds (goal: ≤ 10 ms a run). It uses the bwrap a worker
would (sandbox/bubblewrap.py; AICENTER_BWRAP=bundled times the wheel's). Then a run's
workspace, made, given its package's file, asked for its disk and file limits (while it runs,
and as it ends) and removed, two ways: on a file system of its own (a root worker's,
sandbox/disks.py) and as a plain folder that a walk checks. cgroups, leases and disks need root.
It uses its own data directory (and SQLite database).
"""

import argparse
import marshal
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from pipeline_bench import TRAIN  # noqa: E402  the same no-op package


def setup_django(data_dir):
    os.environ["AICENTER_DATA_DIR"] = str(data_dir)
    os.environ.setdefault("SECRET_KEY", "benchmark-only-not-a-secret-abcdefghijklmnopqrstuvw")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aicenter.settings")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)  # environments and uid leases are in the database


def timed(command, **kwargs) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, **kwargs)
    return (time.perf_counter() - started) * 1000


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="aicenter-sandbox-bench-"))
    setup_django(data_dir)
    from django.conf import settings

    from environments.environments import environment_for
    from sandbox import sandbox, sandbox_uids
    from sandbox.bubblewrap import bubblewrap
    from sandbox.process import BOOTSTRAP, run_limits

    environment = environment_for(python_version="3.11", requirements="")
    workspace = data_dir / "workspace"
    (workspace / "package").mkdir(parents=True)
    (workspace / "package" / "train.py").write_text(TRAIN)
    probe_uid = sandbox_uids.probe_uid()
    plan = [["train", "./data"], ["save", None]]
    read_end, write_end = os.pipe()  # the bootstrap's report channel, drained below

    def argv_for(sandboxed: bool) -> list[str]:  # as the runner starts it (sandbox/process.py)
        arguments = marshal.dumps((plan, {**run_limits(), "sandboxed": sandboxed}), 4).hex()
        return [environment.python, "-B", "-u", "-c", BOOTSTRAP, str(write_end), arguments]

    env = {"PATH": "/usr/bin:/bin", "HOME": str(workspace), "LANG": "C.UTF-8"}
    cwd = str(workspace / "package")

    def bare():
        return timed(argv_for(False), cwd=cwd, env=env, pass_fds=(write_end,))

    def sandboxed(cgroups, *, before=False):
        def once():
            started = time.perf_counter()
            lease = sandbox_uids.Lease(probe_uid, "", held=False)
            if not before:
                lease = sandbox_uids.lease(sandbox_uids.RUN, "bench")
            os.chown(workspace / "package", lease.uid, lease.uid)  # as a run's hand-over
            box = sandbox.Sandbox(
                "bench",
                uid=lease.uid,
                writable=[workspace],
                readable=[environment.path, *sandbox.python_prefixes(environment.python)],
                memory=settings.PIPELINE_MEMORY_LIMIT_MB * 1024 * 1024,
                processes=settings.PIPELINE_PROCESSES_LIMIT,
                cgroups=sandbox.status().cgroups if cgroups else "",
            )
            command = box.command(argv_for(True), cwd=cwd)
            if before:  # no filter: its two arguments out (its pipe stays unread)
                at = command.index("--seccomp")
                del command[at : at + 2]
            process = subprocess.Popen(
                command, env=env, pass_fds=(write_end, *box.fds), stdout=subprocess.DEVNULL
            )
            box.started(process)
            process.wait()
            box.close()
            lease.release()
            elapsed = (time.perf_counter() - started) * 1000
            if process.returncode:
                raise SystemExit(f"the sandboxed run failed ({process.returncode})")
            return elapsed

        return once

    ways = [("bare subprocess (baseline)", bare)]
    if sandbox.status().enabled:
        print(f"{bubblewrap()}: {bubblewrap().path}")
        for cgroups in [True] * bool(sandbox.status().cgroups) + [False]:
            name = f"cgroup {sandbox.status().cgroups}" if cgroups else "memory watchdog"
            ways.append((f"sandbox, {name}, as before", sandboxed(cgroups, before=True)))
            ways.append((f"sandbox, {name}, seccomp, leased", sandboxed(cgroups)))
    else:
        print(f"no sandbox here: {sandbox.status().problem}")
    times = {name: [] for name, _ in ways}
    for _ in range(3):  # warm the page cache and the interpreter's .pyc files
        for _, way in ways:
            way()
    for _ in range(args.runs):  # interleaved, so a busy moment hits every way alike
        for name, way in ways:
            times[name].append(way())
            while True:
                try:
                    os.set_blocking(read_end, False)
                    if not os.read(read_end, 65536):
                        break
                except BlockingIOError:
                    break
    base = statistics.median(times[ways[0][0]])
    print(f"\nThe package's process, train() + save() of a no-op package, median of {args.runs}:")
    print(f"{'':48} {'median':>9} {'p90':>9} {'added':>9} {'ratio':>7}")
    for name, values in times.items():
        median = statistics.median(values)
        p90 = sorted(values)[int(len(values) * 0.9) - 1]
        print(
            f"{name:48} {median:7.1f}ms {p90:7.1f}ms {median - base:+7.1f}ms {median / base:6.2f}×"
        )
    print("\nGoal: the sandbox adds ≤ 10 ms a run.")
    bench_workspaces(args.runs)


def bench_workspaces(runs):
    from django.conf import settings

    from sandbox.workspace import Workspace

    def once(own_disk):
        settings.SANDBOX_DISKS = own_disk
        started = time.perf_counter()
        workspace = Workspace.create(1)
        (workspace.package / "train.py").write_text(TRAIN)
        workspace.over_limit()
        workspace.over_limit(final=True)
        workspace.remove()
        return (time.perf_counter() - started) * 1000

    ways = {"workspace folder, limits walked": False, "workspace on a disk of its own": True}
    times = {name: [] for name in ways}
    for _ in range(3):  # the first makes the worker's disk (once per worker)
        for own_disk in ways.values():
            once(own_disk)
    for _ in range(runs):
        for name, own_disk in ways.items():
            times[name].append(once(own_disk))
    print(f"\nA run's workspace, made, asked for its limits, removed, median of {runs}:")
    base = statistics.median(times["workspace folder, limits walked"])
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:38} {median:7.2f}ms {'':9} {median - base:+7.2f}ms")


if __name__ == "__main__":
    main()

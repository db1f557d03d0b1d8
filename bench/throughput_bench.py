#!/usr/bin/env python
"""Pipeline throughput and per-run cost, measured. Run from the repository root:

    .venv/bin/python bench/throughput_bench.py [--runs 300] [--config local|s3-postgres|both]
        [--mlflow /tmp/mlflow-venv/bin/python]

For each configuration, in a process of its own with its own data directory:

- local:        local storage, SQLite, the embedded Redis (what `python3 run.py` runs);
- s3-postgres:  S3 (a moto server on loopback), PostgreSQL (a database of its own on
                127.0.0.1:5432, dropped at the end) and the Redis on 127.0.0.1:6379 (db 12,
                flushed): the scale-out configuration on one machine.

it starts the web server (waitress, as `python3 run.py` does) and real `manage.py rqworker
pipelines` processes, and prints:

1. the floor: a bare `python -c "from train import Main; …"` of the same no-op package, with
   this project's Python (as the issue measured it), and with the Python the run starts (its
   package environment's: nothing installed, so it starts faster);
2. one trivial training run on a warm worker (idle 0.2 s since its last run), submitted
   through the HTTP API: median submit → Successful, its ratio to the floor, the median of each
   phase, and the same with every run's sandbox started cold (AICENTER_SANDBOX_AHEAD=false);
3. runs/h with 1 and 2 workers: --runs runs queued while the workers are suspended (RQ's
   `suspend`), then released at once; counted from the first run's claim to the last run's end
   (RQ sees a suspension only between jobs: a run a waiting worker took during the submits
   is left out);
   the machine's CPU per run while they drain (workers, sandboxes, database, Redis, S3: all of
   it, so run it on an otherwise idle machine), the platform's share (less the floor's CPU
   per run, the package's own Python start), the workers' own, and the web server's CPU per
   API submit;
4. Redis after the runs: memory and keys (finished jobs must not pile up);
5. MLflow (`--mlflow PYTHON`, a Python with mlflow installed): `mlflow run` of the same no-op,
   one at a time and 2 at a time (parallelism 2), runs/h.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.pipeline_bench import TRAIN  # noqa: E402
from bench.throughput_instance import QUIET, Instance  # noqa: E402

FLOOR_CODE = "from train import Main; m = Main(); m.train('./data'); m.save()"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid) -> float:
    """CPU of a process and of the children it has waited for (utime, stime, cutime, cstime)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(value) for value in fields[11:15]) / CLOCK_TICKS


def machine_cpu_seconds() -> float:
    """CPU the whole machine has spent (all processes, the kernel's work for them), from
    /proc/stat: everything but idle and I/O wait. A run's sandboxed processes are not the
    worker's children once bubblewrap has started them, nor is the database's work: only this
    counts them all. Meaningful on an otherwise idle machine."""
    ticks = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / CLOCK_TICKS


def ms(seconds):
    return f"{seconds * 1000:7.1f} ms"


# --- the floor ----------------------------------------------------------------------------------


def floor(repeat=30, python=sys.executable):
    """Median wall time and mean CPU of a bare Python start of the same no-op package: with
    this project's Python (the issue's floor), or `python` (the run's own environment's)."""
    walls = []
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "train.py").write_text(TRAIN)
        Path(folder, "data").mkdir()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        for _ in range(repeat):
            began = time.perf_counter()
            subprocess.run([python, "-c", FLOOR_CODE], cwd=folder, check=True)
            walls.append(time.perf_counter() - began)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / repeat
    return statistics.median(walls), cpu


def one_run(instance, repeat=20, pause=0.2):
    """Submit → Successful of one trivial run at a time on one warm worker: idle for `pause`
    seconds since its last run, as a person's next run finds it (and its sandbox started
    ahead ready, runner/ahead.py)."""
    from pipelines.models import PipelineRun

    instance.start_workers(1)
    walls, phases = [], {}
    try:
        for index in range(repeat + 3):  # the first three warm the worker and the server
            submitted = time.time()
            run_id = instance.submit()
            while True:
                # the time measured is the run's own finished_at: looking often would only
                # take the CPU (and the database) the run needs
                time.sleep(0.02)
                run = PipelineRun.objects.get(pk=run_id)
                if run.status in PipelineRun.FINISHED:
                    break
            assert run.status == PipelineRun.SUCCESSFUL, run.failure_reason
            time.sleep(pause)
            if index < 3:
                continue
            walls.append(run.finished_at.timestamp() - submitted)
            for phase in run.phases:
                phases.setdefault(phase["name"], []).append(phase["end"] - phase["start"])
    finally:
        instance.stop_workers()
    return statistics.median(walls), {name: statistics.median(v) for name, v in phases.items()}


def throughput(instance, workers, runs):
    """runs/h of `workers` warm workers draining `runs` queued runs, the platform's CPU per
    run (worker processes and all they start) and the web server's CPU per submit."""
    from rq.suspension import resume, suspend

    from pipelines.models import PipelineRun

    connection = instance.redis()
    instance.start_workers(workers)
    try:
        instance.wait_finished([instance.submit() for _ in range(2 * workers)])  # warm
        suspend(connection)
        web_before = cpu_seconds(instance.web.pid)
        began = time.perf_counter()
        with ThreadPoolExecutor(4) as pool:
            run_ids = list(pool.map(lambda _: instance.submit(), range(runs)))
        submit_wall = (time.perf_counter() - began) / runs
        web_cpu = (cpu_seconds(instance.web.pid) - web_before) / runs
        cpu_before = sum(cpu_seconds(worker.pid) for worker in instance.workers)
        machine_before = machine_cpu_seconds()
        resumed_at = datetime.now(UTC)
        resume(connection)
        finished = instance.wait_finished(run_ids, poll=1.0)
        machine = machine_cpu_seconds() - machine_before
        cpu = sum(cpu_seconds(worker.pid) for worker in instance.workers) - cpu_before
        # RQ checks for a suspension only between jobs: a worker waiting in its dequeue when
        # the runs came took one before it saw it. Those ran during the submits: not counted.
        finished = [run for run in finished if run.started_at >= resumed_at]
        runs = len(finished)
        first = min(run.started_at for run in finished)
        last = max(run.finished_at for run in finished)
        rate = (runs - 1) / (last - first).total_seconds() * 3600
        taken = {run.worker for run in finished}
        inside, between = [], []  # a run's claim → end, and a worker's end → next claim
        for worker in taken:
            mine = sorted((r for r in finished if r.worker == worker), key=lambda r: r.started_at)
            inside += [(r.finished_at - r.started_at).total_seconds() for r in mine]
            between += [
                (b.started_at - a.finished_at).total_seconds()
                for a, b in zip(mine, mine[1:], strict=False)
            ]
    finally:
        instance.stop_workers()
    return {
        "rate": rate,
        "cpu": cpu / runs,
        "machine_cpu": machine / runs,
        "counted": runs,
        "web_cpu": web_cpu,
        "submit_wall": submit_wall,
        "workers_used": len(taken),
        "inside": statistics.median(inside),
        # None before workers stopped forking: each job had its own pid, so no pairs
        "between": statistics.median(between) if between else None,
        "count": PipelineRun.objects.count(),
    }


def redis_after(instance):
    connection = instance.redis()
    info = connection.info("memory")
    return info["used_memory"], connection.dbsize()


def bench_config(config, runs):
    floor_wall, floor_cpu = floor()
    instance = Instance(config)
    try:
        # the worker's default, then a cold start for each run (the baseline, same process)
        os.environ["AICENTER_SANDBOX_AHEAD"] = "false"
        single_cold, _ = one_run(instance)
        os.environ["AICENTER_SANDBOX_AHEAD"] = "true"
        single, phases = one_run(instance)
        # the same floor with the Python the run itself starts: its package environment's,
        # which has nothing installed, so it starts faster than this project's
        from django.conf import settings

        from environments.environments import environment_for

        language = settings.PYTHON_VERSIONS[0]  # the no-op package's
        env_python = environment_for(python_version=language, requirements="").python
        floor_env, _ = floor(python=env_python)
        memory_before, keys_before = redis_after(instance)
        rates = {workers: throughput(instance, workers, runs) for workers in (1, 2)}
        memory, keys = redis_after(instance)
    finally:
        instance.close()
    return {
        "config": config,
        "floor": floor_wall,
        "floor_env": floor_env,
        "floor_cpu": floor_cpu,
        "single": single,
        "single_cold": single_cold,
        "phases": phases,
        "rates": rates,
        "redis": {"memory_before": memory_before, "keys_before": keys_before},
        "redis_after": {"memory": memory, "keys": keys, "runs": rates[2]["count"]},
    }


# --- MLflow -------------------------------------------------------------------------------------


def bench_mlflow(python, repeat=10):
    """`mlflow run` of the same no-op (local env manager, a file store): one at a time, and two
    at a time."""
    with tempfile.TemporaryDirectory() as folder:
        project = Path(folder, "noop")
        project.mkdir()
        Path(project, "train.py").write_text(TRAIN)
        Path(project, "main.py").write_text(
            "from train import Main\nm = Main()\nm.train('.')\nm.save()\n"
        )
        Path(project, "MLproject").write_text(
            "name: noop\nentry_points:\n  main:\n    command: python main.py\n"
        )
        env = {
            **os.environ,
            "MLFLOW_TRACKING_URI": f"sqlite:///{folder}/mlflow.db",
            "PATH": f"{Path(python).parent}:{os.environ['PATH']}",
        }
        command = [str(Path(python).parent / "mlflow"), "run", str(project), "--env-manager=local"]

        def once():
            began = time.perf_counter()
            subprocess.run(command, env=env, check=True, cwd=folder, **QUIET)
            return time.perf_counter() - began

        once()  # the store's tables
        single = statistics.median(once() for _ in range(repeat))
        began = time.perf_counter()
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda _: once(), range(2 * repeat)))
        parallel = 2 * repeat / (time.perf_counter() - began) * 3600
    return {"single": single, "rate2": parallel}


# --- report -------------------------------------------------------------------------------------


def report(result, mlflow):
    print(f"\n== {result['config']} ==")
    floor_wall = result["floor"]
    print(f"  floor: bare python -c           {ms(floor_wall)}  (CPU {ms(result['floor_cpu'])})")
    print(
        f"  one run, submit → Successful    {ms(result['single'])}  "
        f"{result['single'] / floor_wall:.2f}× the floor (goal ≤ 2×)"
    )
    print(
        f"    each run's sandbox started cold {ms(result['single_cold'])}  "
        f"{result['single_cold'] / floor_wall:.2f}× (AICENTER_SANDBOX_AHEAD=false)"
    )
    print(
        f"    the floor with the run's own environment's Python {ms(result['floor_env'])}: "
        f"the run is {result['single'] / result['floor_env']:.2f}× that"
    )
    print(
        "    phases (median): "
        + ", ".join(f"{k} {v * 1000:.0f}" for k, v in result["phases"].items())
        + " ms"
    )
    for workers, rate in result["rates"].items():
        workers = int(workers)  # a JSON key
        platform = rate["machine_cpu"] - result["floor_cpu"]
        print(
            f"  {workers} worker{'s' if workers > 1 else ' '}: {rate['rate']:9,.0f} runs/h "
            f"({rate.get('counted', '?')} runs)   "
            f"machine CPU/run {ms(rate['machine_cpu'])} (platform {ms(platform)} beyond the "
            f"floor's, goal ≤ 60 ms; the workers' own {ms(rate['cpu'])})   "
            f"web CPU/submit {ms(rate['web_cpu'])}"
            + ("" if rate["workers_used"] == workers else f"   (!) {rate['workers_used']} used")
        )
        print(
            f"             a run claim → end {ms(rate['inside'])}, a worker's end → next claim "
            + (ms(rate["between"]) if rate["between"] is not None else "n/a")
            + " (medians)"
        )
    after = result["redis_after"]
    print(
        f"  Redis after {after['runs']} runs: {after['memory'] / 1e6:.1f} MB, {after['keys']} keys"
        f" (after the first {result['redis']['keys_before']} keys, "
        f"{result['redis']['memory_before'] / 1e6:.1f} MB)"
    )
    if mlflow:
        print(
            f"  MLflow `mlflow run`: one {ms(mlflow['single'])} "
            f"(ours {result['single'] / mlflow['single']:.3f}×), "
            f"parallelism 2: {mlflow['rate2']:,.0f} runs/h "
            f"(ours with 2 workers {result['rates']['2']['rate'] / mlflow['rate2']:.1f}×)"
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--config", choices=["local", "s3-postgres", "both"], default="both")
    parser.add_argument("--mlflow", help="a Python with mlflow installed")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # a configuration, in a child process
    args = parser.parse_args()
    if args.one:
        print(json.dumps(bench_config(args.one, args.runs)))
        return
    mlflow = bench_mlflow(args.mlflow) if args.mlflow else None
    configs = ["local", "s3-postgres"] if args.config == "both" else [args.config]
    for config in configs:
        output = subprocess.run(
            [sys.executable, __file__, "--one", config, "--runs", str(args.runs)],
            capture_output=True,
            text=True,
            check=False,
        )
        if output.returncode:
            print(f"\n== {config}: failed ==\n{output.stderr[-3000:]}")
            continue
        report(json.loads(output.stdout.strip().splitlines()[-1]), mlflow)


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    main()

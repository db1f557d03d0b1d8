"""How bench/skills_bench.py prints its figures: a line a measure, and at the end each target
met or missed, and ours against MLflow's."""

from percentiles import percentile

TARGET_P50_MS, TARGET_P99_MS, TARGET_CALLS_PER_SECOND = 10, 50, 300


def verdict(ok):
    return "met" if ok else "MISSED"


def show_sequential(label, figures):
    print(
        f"  {label:44} p50 {figures['p50']:6.2f} ms  p90 {figures['p90']:6.2f} ms  "
        f"p99 {figures['p99']:6.2f} ms  failed {figures['failed']}"
    )


def show_concurrent(label, figures):
    print(
        f"  {label:44} {figures['per_second']:7.1f} calls/s  failed {figures['failed']}/"
        f"{figures['calls']}  (p50 {figures['p50']:.1f} ms, p99 {figures['p99']:.1f} ms)"
    )


def show_floor(label, times):
    print(f"  {label:58} p50 {percentile(times, 50):6.2f} ms  p99 {percentile(times, 99):6.2f} ms")


def summary(args, ours, theirs):
    key, token, load = ours["key"], ours["token"], ours["concurrent"]
    print("\nTargets:")
    for label, figures in (("by key", key), ("by token", token)):
        print(
            f"  sequential {label:9} p50 {figures['p50']:6.2f} ms ≤ {TARGET_P50_MS} ms: "
            f"{verdict(figures['p50'] <= TARGET_P50_MS)};  p99 {figures['p99']:6.2f} ms ≤ "
            f"{TARGET_P99_MS} ms: {verdict(figures['p99'] <= TARGET_P99_MS)};  "
            f"failed {figures['failed']}: {verdict(figures['failed'] == 0)}"
        )
    for label, figures in (("by key", load), ("by token", ours["concurrent_token"])):
        print(
            f"  concurrency {args.concurrency}, 2 replicas, {label:9} "
            f"{figures['per_second']:6.1f} calls/s ≥ {TARGET_CALLS_PER_SECOND}: "
            f"{verdict(figures['per_second'] >= TARGET_CALLS_PER_SECOND)};  failed "
            f"{figures['failed']}: {verdict(figures['failed'] == 0)}"
        )
    if not theirs:
        return
    mlflow_seq = theirs["sequential"]
    best = max(theirs["concurrent_1"], theirs["concurrent_2"], key=lambda f: f["per_second"])
    print("\nOurs / MLflow (latency: below 1 is faster; calls/s: above 1 is faster):")
    for label, figures in (("by key", key), ("by token", token)):
        print(
            f"  sequential {label:9} p50 {figures['p50'] / mlflow_seq['p50']:5.2f}×  "
            f"p90 {figures['p90'] / mlflow_seq['p90']:5.2f}×  "
            f"p99 {figures['p99'] / mlflow_seq['p99']:5.2f}×"
        )
    for workers in (1, 2):
        theirs_load = theirs[f"concurrent_{workers}"]
        print(
            f"  calls/s at concurrency {args.concurrency}, by key, vs MLflow with {workers} "
            f"worker{'s' * (workers > 1)}: {load['per_second'] / theirs_load['per_second']:5.2f}×"
        )
    faster_latency = key["p50"] < mlflow_seq["p50"] and key["p99"] < mlflow_seq["p99"]
    faster_load = load["per_second"] > best["per_second"]
    print(
        f"  faster than MLflow, sequential (p50 and p99 by key): {verdict(faster_latency)};  "
        f"calls/s (vs its better setup): {verdict(faster_load)}"
    )

"""Percentiles as the benchmarks report them: nearest rank, so a figure is always one that was
measured."""

import math


def percentile(values, q):
    """Nearest rank."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def p95(values):
    return percentile(values, 95)

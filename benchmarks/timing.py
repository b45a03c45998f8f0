"""Timing shared by the benchmarks: every workload once per round, round after round.

A shared machine's speed drifts by tens of per cent within a minute. Timing one workload
seven times and then the next would charge that drift to whichever ran in the slow
minute; interleaving puts every workload into every minute alike, and a ratio is taken
within each round (both sides measured seconds apart), then the median over rounds.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def interleaved(
    workloads: dict[str, Callable[[], object]], repeats: int, *, warm_up: bool = True
) -> dict[str, list[float]]:
    """Seconds per run of each workload: one warm-up each (unless ``warm_up`` is
    False), then ``repeats`` rounds in which every workload runs once, in the order
    given."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    if warm_up:
        for fn in workloads.values():
            fn()
    times = {name: [] for name in workloads}
    for _ in range(repeats):
        for name, fn in workloads.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def ratios(slow: list[float], fast: list[float]) -> list[float]:
    """``slow / fast`` round by round, each pair timed in the same round."""
    return [s / f for s, f in zip(slow, fast, strict=True)]


def ratio(slow: list[float], fast: list[float]) -> float:
    """The median over rounds of :func:`ratios`."""
    return statistics.median(ratios(slow, fast))

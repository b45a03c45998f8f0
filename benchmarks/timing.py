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
    workloads: dict[str, Callable[[], object]], repeats: int
) -> dict[str, list[float]]:
    """Seconds per run of each workload: one warm-up each, then ``repeats`` rounds in
    which every workload runs once, in the order given."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    for fn in workloads.values():
        fn()  # warm-up
    times = {name: [] for name in workloads}
    for _ in range(repeats):
        for name, fn in workloads.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def median(seconds: list[float]) -> float:
    return statistics.median(seconds)


def ratio(slow: list[float], fast: list[float]) -> float:
    """Median over rounds of ``slow / fast``, each pair timed in the same round."""
    return statistics.median(s / f for s, f in zip(slow, fast, strict=True))

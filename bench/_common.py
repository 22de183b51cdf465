"""Helpers shared by the benchmarks: timing, a served simulator, a report line."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable

from lllt_sim.harness import ServedSimulator

# Commands are timed as an installed copy runs them: with bytecode caches. A shell that
# sets PYTHONDONTWRITEBYTECODE (this machine's does) makes every start of an editable
# install compile lllt from source again, about 0.1 s that no user pays; the first of the
# runs that ``best_of`` takes writes the caches.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


def best_of(fn: Callable[[], object], repeat: int = 3) -> float:
    """Least wall time of ``repeat`` runs (the least disturbed by a shared machine)."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def median(values: list[float]) -> float:
    return statistics.median(values)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


#: ``lllt sim serve`` in a subprocess
Served = ServedSimulator


def report(name: str, **figures: object) -> None:
    parts = ", ".join(f"{k}={v}" for k, v in figures.items())
    print(f"{name}: {parts}", flush=True)

"""CPU time of one 25-minute session in process, with every safety layer (issue 12).

``lllt.run_protocol("aga-red-eod-25min", "sim://reference-cap?speed=max", db=":memory:")``:
preflight, upload, 15,000 telemetry frames at 10 Hz through the monitor and the session
log, reconciliation. Target: at most 0.55 s of CPU (at least 2,700x real time). Baseline in
the same run: a bare virtual-clock loop doing the session's 15,000 waits. The first
session in the process is not counted (imports, the first plan); each figure is the least
CPU time of ``--repeat`` sessions, the one least disturbed by a shared machine.

    python bench/bench_session.py [--repeat 5] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import time

import lllt
from _common import report
from lllt import clock

TARGET_CPU_S = 0.55
SESSION_S = 25 * 60
URL = "sim://reference-cap?speed=max"


def _cpu(fn: object) -> float:
    t0 = time.process_time()
    fn()  # type: ignore[operator]
    return time.process_time() - t0


def _session() -> None:
    outcome = lllt.run_protocol("aga-red-eod-25min", URL, db=":memory:")
    assert outcome.status == "completed", outcome.status


async def _waits() -> None:
    for _ in range(SESSION_S * 10):
        await asyncio.sleep(0.1)


def _baseline() -> None:
    clock.run(_waits(), virtual=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="print a cProfile of one run")
    args = parser.parse_args()
    _session()  # warm-up: imports, caches
    if args.profile:
        import cProfile
        import pstats

        prof = cProfile.Profile()
        prof.runcall(_session)
        pstats.Stats(prof).sort_stats("tottime").print_stats(30)
    base = min(_cpu(_baseline) for _ in range(args.repeat))
    cpu = min(_cpu(_session) for _ in range(args.repeat))
    report(
        "session_25min_in_process",
        cpu_s=f"{cpu:.3f}",
        realtime_x=f"{SESSION_S / cpu:.0f}",
        baseline_loop_cpu_s=f"{base:.3f}",
        ratio_to_baseline=f"{cpu / base:.1f}",
        target=f"<= {TARGET_CPU_S} s",
        ok=cpu <= TARGET_CPU_S,
    )


if __name__ == "__main__":
    main()

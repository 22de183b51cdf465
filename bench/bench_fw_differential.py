"""Differential testing at scale: explorer seeds on sim:// and fw://, compared step by step.

Issue 8 item 7: >= 10,000 seeds, 0 differences. Each seed runs on the simulator and on
the firmware library (``lllt.explore.diff``); the figure is seeds per second for the pair,
with the simulator alone as the baseline of the same run (its share of the wall time).
Usage: python bench/bench_fw_differential.py [N_SEEDS] [JOBS] [FIRST] [BUDGET_S]
(default 10000 seeds from 0, 2 jobs, no time budget). With a budget the run stops after
that many seconds and reports the seeds it finished (FIRST to FIRST + done - 1), so a long
run can be made in parts.
"""

from __future__ import annotations

import multiprocessing as mp
import sys
import time

from _common import report
from lllt.explore.diff import DiffReport, diff_seed

N = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
JOBS = int(sys.argv[2]) if len(sys.argv) > 2 else 2
FIRST = int(sys.argv[3]) if len(sys.argv) > 3 else 0
BUDGET_S = float(sys.argv[4]) if len(sys.argv) > 4 else float("inf")


def main() -> None:
    t0 = time.perf_counter()
    failed: list[DiffReport] = []
    sim_s = fw_s = 0.0
    events = samples = 0
    shared = 0
    done = 0
    ctx = mp.get_context("forkserver")
    with ctx.Pool(JOBS) as pool:
        # in order, so that a run stopped by its budget has done one range of seeds
        for i, rep in enumerate(pool.imap(diff_seed, range(FIRST, FIRST + N), chunksize=4)):
            done = i + 1
            sim_s += rep.wall_s.get("sim", 0.0)
            fw_s += rep.wall_s.get("fw", 0.0)
            events += rep.compared.get("events", 0)
            samples += rep.compared.get("samples", 0)
            shared += rep.compared.get("shared_violations", 0)
            if not rep.ok:
                failed.append(rep)
                print(f"seed {rep.seed}: {rep.differences[0]} -- {rep.replay}", flush=True)
            if (i + 1) % 500 == 0:
                print(f"{i + 1} seeds, {len(failed)} differing", flush=True)
            if time.perf_counter() - t0 > BUDGET_S:
                pool.terminate()
                break
    wall = time.perf_counter() - t0
    report(
        "fw_differential",
        seeds=done,
        first=FIRST,
        last=FIRST + done - 1,
        jobs=JOBS,
        differing=len(failed),
        events_compared=events,
        samples_compared=samples,
        shared_violations=shared,
        wall_s=f"{wall:.1f}",
        seeds_per_s=f"{done / wall:.2f}",
        cpu_sim_s=f"{sim_s:.1f}",
        cpu_fw_s=f"{fw_s:.1f}",
        fw_to_sim=f"{fw_s / sim_s:.1f}" if sim_s else "-",
        ok=not failed,
    )
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()

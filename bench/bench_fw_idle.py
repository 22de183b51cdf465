"""fw:// under the fault explorer: idle stretches in one step against ticks one by one.

Most device time of an explorer seed is an idle cap between sessions. The fw:// device
passes such a stretch in one call of the firmware library (``lllt_fw_idle``); the
baseline of the same run steps every 10 ms tick (``FirmwareDevice.IDLE_MAX_TICKS = 0``).
Both run the same seeds in this process, alternately, and must produce the same runs.
Usage: python bench/bench_fw_idle.py [N_SEEDS] [FIRST]   (default 20 seeds from 0)
"""

from __future__ import annotations

import re
import sys
import time

from _common import report
from lllt.explore.adapter import adapter
from lllt.explore.runner import run_scenario
from lllt.explore.scenario import draw
from lllt_sim.fwdevice import FirmwareDevice

N = int(sys.argv[1]) if len(sys.argv) > 1 else 20
FIRST = int(sys.argv[2]) if len(sys.argv) > 2 else 0


def _same(a: object, b: object) -> bool:
    def text(r: object) -> str:
        fields = {k: v for k, v in vars(r).items() if k != "wall_s"}
        return re.sub(r"(uuid|host_token)='[^']*'|host_pid=\d+|process \d+", "", repr(fields))

    return text(a) == text(b)


def main() -> None:
    idle_cpu = tick_cpu = 0.0
    differ = []
    limit = FirmwareDevice.IDLE_MAX_TICKS
    for seed in range(FIRST, FIRST + N):
        t = time.process_time()
        fast = run_scenario(draw(seed), adapter("fw"))
        idle_cpu += time.process_time() - t
        FirmwareDevice.IDLE_MAX_TICKS = 0
        try:
            t = time.process_time()
            slow = run_scenario(draw(seed), adapter("fw"))
            tick_cpu += time.process_time() - t
        finally:
            FirmwareDevice.IDLE_MAX_TICKS = limit
        if not _same(fast, slow):
            differ.append(seed)
    report(
        "fw_idle",
        seeds=N,
        first=FIRST,
        cpu_idle_steps_s=f"{idle_cpu:.1f}",
        cpu_tick_by_tick_s=f"{tick_cpu:.1f}",
        ratio=f"{idle_cpu / tick_cpu:.3f}",
        runs_differing=len(differ),
        ok=not differ,
    )
    if differ:
        raise SystemExit(f"runs differ between the two ways of stepping: seeds {differ}")


if __name__ == "__main__":
    main()

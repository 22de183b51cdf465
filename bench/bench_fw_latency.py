"""Request -> reply over TCP on the firmware targets, against the served simulator.

``Cap.status()`` round trips (200 after 20 of warm-up, telemetry running at 10 Hz) on the
host firmware executable and on the Cortex-M3 image under QEMU (``nodelay=on``), with
``lllt sim serve --tcp`` measured in the same run as the baseline. Also prints the flash
and RAM of the Cortex-M3 image (``make -C firmware size``).
Usage: python bench/bench_fw_latency.py
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

from _common import Served, median, percentile, report
from lllt.device import Cap
from lllt_sim import fwharness

FIRMWARE = Path(__file__).resolve().parents[1] / "firmware"


async def round_trips(url: str, n: int = 200) -> list[float]:
    async with Cap.connect(url) as cap:
        for _ in range(20):
            await cap.status()
        out = []
        for _ in range(n):
            t0 = time.perf_counter()
            await cap.status()
            out.append((time.perf_counter() - t0) * 1e6)
        return out


def measure(url: str) -> tuple[float, float]:
    rt = asyncio.run(round_trips(url))
    return median(rt), percentile(rt, 99)


def main() -> None:
    size = subprocess.run(
        ["make", "-s", "-C", str(FIRMWARE), "size"], capture_output=True, text=True, check=True
    ).stdout.strip()
    report("fw size (Cortex-M3 image)", figures=size)
    with Served("--tcp", "127.0.0.1:0", "--speed", "1") as sim:
        sim_med, sim_p99 = measure(sim.url)
    with fwharness.ServedFirmware("--tcp", "127.0.0.1:0", "--speed", "1") as host:
        host_med, host_p99 = measure(host.url)
    serve = FIRMWARE / "port" / "qemu-mps2-an385" / "serve.py"
    subprocess.run(["make", "-s", "-C", str(FIRMWARE), "qemu"], check=True)
    q = subprocess.Popen([sys.executable, str(serve)], stdout=subprocess.PIPE, text=True)
    try:
        assert q.stdout is not None
        url = q.stdout.readline().split(" at ", 1)[1].split()[0]
        q_med, q_p99 = measure(url)
    finally:
        q.terminate()
        q.wait()
    report("lllt sim serve --tcp (baseline)", median_us=round(sim_med), p99_us=round(sim_p99))
    report(
        "lllt-fw-host --tcp",
        median_us=round(host_med),
        p99_us=round(host_p99),
        ratio=round(host_med / sim_med, 2),
    )
    report(
        "qemu mps2-an385 (nodelay)",
        median_us=round(q_med),
        p99_us=round(q_p99),
        ratio=round(q_med / sim_med, 2),
    )


if __name__ == "__main__":
    sys.exit(main())

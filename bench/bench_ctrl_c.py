"""Ctrl-C during `lllt run` over a served pty: time until the emitters are confirmed off.

Target (wire 1.1): median ≤ 20 ms from the interrupt to the confirmation. Measured from
the moment SIGINT is sent to `lllt run` to the host time the session log records the
frame that showed the emitters off (event ``emitters_off_confirmed``; with wire 1.1 that
is the STATUS the device sends right after its ACK to ABORT, no longer the next telemetry
frame); also the device-time gap from the ABORT's session end to that frame. Baselines in
the same run: the request/reply round trip of a Cap over the same served pty (the least a
confirmed stop can take) and the telemetry period (100 ms, what 1.0 had to wait for).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import Served, median, report
from lllt import clock
from lllt.device import Cap
from lllt.store import Store

RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 7
PROTOCOL = """format = "lllt-protocol/1"
id = "bench-ctrl-c"
name = "bench"
references = ["bench"]
[schedule]
min_interval = "12 h"
[[phases]]
name = "treatment"
duration = "10 min"
emit = { "655nm" = "3 mW/cm^2" }
"""


def one(url: str, tmp: Path, i: int) -> tuple[float, float]:
    proto = tmp / f"p{i}.toml"
    proto.write_text(PROTOCOL)
    db = tmp / f"db{i}"
    run = subprocess.Popen(
        [sys.executable, "-m", "lllt", "run", str(proto), "--device", url, "--db", str(db),
         "--yes"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},  # "started" must reach us at once
    )  # fmt: skip
    assert run.stdout is not None
    while not (line := run.stdout.readline()).startswith("started"):
        if not line and run.poll() is not None:
            raise SystemExit(f"lllt run ended before starting: {run.stderr.read()}")
    time.sleep(0.7)  # let it emit for a while (wall time: the device runs in real time)
    t_sig = time.time()
    run.send_signal(signal.SIGINT)
    run.communicate(timeout=10)
    assert run.returncode == 130, run.returncode
    with Store.open(db, create=False) as store:
        (row,) = store.sessions()
        events = store.events(row.id)
    off = next(e for e in events if e.kind == "emitters_off_confirmed")
    end = next(e for e in events if e.kind == "SESSION_END")
    return off.t - t_sig, (off.data["device_ms"] - end.device_ms) / 1000.0


async def round_trips(url: str, n: int = 200) -> list[float]:
    times = []
    async with Cap.connect(url) as cap:
        for _ in range(n):
            t0 = time.perf_counter()
            await cap.status()
            times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    confirm, device_gap = [], []
    with tempfile.TemporaryDirectory() as d:
        with Served("--pty", "--speed", "1") as served:
            rtt = median(clock.run(round_trips(served.url)))
        for i in range(RUNS):
            # a fresh cap each time: the cap's own records would refuse a second session
            # within the minimum interval, whatever log the host uses
            with Served("--pty", "--speed", "1") as served:
                c, g = one(served.url, Path(d), i)
            confirm.append(c)
            device_gap.append(g)
    med, worst = median(confirm), max(confirm)
    report(
        "ctrl_c_emitters_off_pty",
        runs=RUNS,
        median_ms=f"{med * 1000:.1f}",
        worst_ms=f"{worst * 1000:.1f}",
        session_end_to_off_frame_ms=f"{median(device_gap) * 1000:.0f}",
        pty_round_trip_ms=f"{rtt * 1000:.2f}",
        ratio_median_to_round_trip=f"{med / rtt:.1f}",
        telemetry_period_ms=100,
        target="median <= 20 ms",
        ok=med <= 0.020,
    )


if __name__ == "__main__":
    main()

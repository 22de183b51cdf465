"""Request -> reply median over a served pty, against a raw pyserial echo over a pty.

Target (issue 2): the Cap's request/reply median through `lllt sim serve --pty` within 2x
of the round trip of a bare echo process on a pty driven with pyserial, both measured
in this run. The echo is a separate process (like the served simulator) that writes back
what it reads; the client sends a frame-sized message and reads the same number of bytes.
"""

from __future__ import annotations

import subprocess
import sys
import time

import serial

from _common import Served, median, percentile, report
from lllt import clock
from lllt import wire as W
from lllt.device import Cap

N = 2000
ECHO = r"""
import os, sys, tty
master, slave = os.openpty()
tty.setraw(slave)
print(os.ttyname(slave), flush=True)
while True:
    data = os.read(master, 4096)
    if not data:
        break
    os.write(master, data)
"""


def raw_echo() -> list[float]:
    proc = subprocess.Popen([sys.executable, "-c", ECHO], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    path = proc.stdout.readline().strip()
    msg = W.encode_message(W.Heartbeat(), 1)
    times = []
    with serial.Serial(path, 115200, timeout=1) as port:
        for _ in range(N):
            t0 = time.perf_counter()
            port.write(msg)
            got = port.read(len(msg))
            times.append(time.perf_counter() - t0)
            assert got == msg
    proc.kill()
    proc.wait()
    return times


async def cap_requests(url: str) -> tuple[list[float], list[float]]:
    hb, st = [], []
    async with Cap.connect(url) as cap:
        for _ in range(N):
            t0 = time.perf_counter()
            await cap.heartbeat()
            hb.append(time.perf_counter() - t0)
        for _ in range(N // 4):
            t0 = time.perf_counter()
            await cap.status()
            st.append(time.perf_counter() - t0)
    return hb, st


def main() -> None:
    echo = raw_echo()
    with Served("--pty", "--speed", "1") as served:
        hb, st = clock.run(cap_requests(served.url))
    e, h = median(echo), median(hb)
    report(
        "pty_round_trip",
        echo_median_us=f"{e * 1e6:.0f}",
        echo_p99_us=f"{percentile(echo, 99) * 1e6:.0f}",
        cap_heartbeat_median_us=f"{h * 1e6:.0f}",
        cap_heartbeat_p99_us=f"{percentile(hb, 99) * 1e6:.0f}",
        cap_status_median_us=f"{median(st) * 1e6:.0f}",
        ratio=f"{h / e:.2f}",
        target="ratio <= 2",
        ok=h / e <= 2,
    )


if __name__ == "__main__":
    main()

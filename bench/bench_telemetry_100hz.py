"""100 Hz telemetry over a served pty for 60 s of real time: zero frames may be lost.

Counts frames by the device's sequence numbers (a gap is a lost frame) and the decoder's
bad-frame counters. Baseline for the ratio: the number of frames the device should have
sent in the measured device-time span (period 10 ms).
"""

from __future__ import annotations

import asyncio
import sys

from _common import Served, report
from lllt import clock
from lllt.device import Cap

SECONDS = float(sys.argv[1]) if len(sys.argv) > 1 else 60.0


async def collect(url: str) -> tuple[int, int, int, dict[str, int]]:
    loop = asyncio.get_running_loop()
    async with Cap.connect(url) as cap:
        await cap.set_telemetry_rate(100)
        with cap.telemetry() as tel:
            t = await tel.get(5.0)
            first = last = t.time_ms
            lost_before = cap.lost_unsolicited
            frames = 1
            t_end = loop.time() + SECONDS
            while loop.time() < t_end:
                t = await tel.get(5.0)
                frames += 1
                last = t.time_ms
        lost = cap.lost_unsolicited - lost_before
        stats = cap.link_stats()
        await cap.set_telemetry_rate(10)
    expected = (last - first) // 10 + 1
    return frames, expected, lost, stats


def main() -> None:
    with Served("--pty", "--speed", "1") as served:
        frames, expected, lost, stats = clock.run(collect(served.url))
    report(
        "telemetry_100hz_pty",
        seconds=SECONDS,
        frames=frames,
        expected=expected,
        lost_by_seq=lost,
        crc_errors=stats["crc_errors"],
        bytes_dropped=stats["bytes_dropped"],
        received_ratio=f"{frames / expected:.4f}",
        target="zero lost",
        ok=lost == 0 and frames == expected and stats["crc_errors"] == 0,
    )


if __name__ == "__main__":
    main()

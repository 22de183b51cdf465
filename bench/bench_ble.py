"""BLE round trip at ATT MTU 23 and 247, and 100 Hz telemetry over BLE, against a pty.

The Bumble setup: this process plays the radio (``lllt_sim.ble.HciRelay``, two virtual
controllers on one Bumble ``LocalLink``, each behind a TCP HCI transport);
``lllt sim serve --ble`` in a subprocess drives one as the cap, and the host's real
``ble://`` transport (bleak on the Bumble backend, ``hci=``) drives the other. The
baseline is ``lllt sim serve --pty`` reached with ``serial://``, measured in the same run.
The virtual link has no radio timing (no connection interval): the figures are the cost
of the two BLE stacks and the HCI hops, not of the air.

``python bench/bench_ble.py [SECONDS]`` (telemetry span, default 60).
"""

from __future__ import annotations

import asyncio
import re
import signal
import sys
import time

from _common import Served, median, percentile, report
from lllt import clock
from lllt.device import Cap
from lllt_sim.ble import HciRelay

N = 1000
SECONDS = float(sys.argv[1]) if len(sys.argv) > 1 else 60.0


async def round_trips(cap: Cap) -> tuple[list[float], list[float]]:
    hb, st = [], []
    for _ in range(N):
        t0 = time.perf_counter()
        await cap.heartbeat()
        hb.append(time.perf_counter() - t0)
    for _ in range(N // 4):
        t0 = time.perf_counter()
        await cap.status()
        st.append(time.perf_counter() - t0)
    return hb, st


async def telemetry(cap: Cap, seconds: float) -> dict[str, int]:
    loop = asyncio.get_running_loop()
    await cap.set_telemetry_rate(100)
    with cap.telemetry() as tel:
        t = await tel.get(5.0)
        first = last = t.time_ms
        lost_before = cap.lost_unsolicited
        frames = 1
        t_end = loop.time() + seconds
        while loop.time() < t_end:
            t = await tel.get(5.0)
            frames += 1
            last = t.time_ms
    lost = cap.lost_unsolicited - lost_before
    stats = cap.link_stats()
    await cap.set_telemetry_rate(10)
    return {
        "frames": frames,
        "expected": (last - first) // 10 + 1,
        "lost": lost,
        "crc_errors": stats["crc_errors"],
        "bytes_dropped": stats["bytes_dropped"],
    }


async def ble_run(mtus: tuple[int, ...]) -> dict[str, object]:
    relay = await HciRelay.start()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "lllt", "sim", "serve", "--ble", relay.spec(0), "--speed", "1"),
        stdout=asyncio.subprocess.PIPE,
    )
    out: dict[str, object] = {}
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        m = re.search(r"ble://(\S+)", line)
        assert m, line
        for mtu in mtus:
            url = f"ble://{m.group(1)}?hci={relay.spec(1)}&mtu={mtu}"
            t0 = time.perf_counter()
            async with Cap.connect(url) as cap:
                out[f"connect_{mtu}"] = time.perf_counter() - t0
                out[f"rt_{mtu}"] = await round_trips(cap)
                if mtu == mtus[-1]:
                    out["telemetry"] = await telemetry(cap, SECONDS)
    finally:
        proc.send_signal(signal.SIGINT)
        await asyncio.wait_for(proc.wait(), 10)
        await relay.close()
    return out


async def pty_run(url: str) -> tuple[list[float], list[float]]:
    async with Cap.connect(url) as cap:
        return await round_trips(cap)


def main() -> None:
    with Served("--pty", "--speed", "1") as served:
        pty_hb, pty_st = clock.run(pty_run(served.url))
    ble = asyncio.run(ble_run((23, 247)))
    base = median(pty_hb)
    for mtu in (23, 247):
        hb, st = ble[f"rt_{mtu}"]  # type: ignore[misc]
        report(
            f"ble_round_trip_mtu{mtu}",
            heartbeat_median_us=f"{median(hb) * 1e6:.0f}",
            heartbeat_p99_us=f"{percentile(hb, 99) * 1e6:.0f}",
            status_median_us=f"{median(st) * 1e6:.0f}",
            connect_s=f"{ble[f'connect_{mtu}']:.2f}",
            pty_heartbeat_median_us=f"{base * 1e6:.0f}",
            pty_status_median_us=f"{median(pty_st) * 1e6:.0f}",
            ratio=f"{median(hb) / base:.2f}",
        )
    tel = ble["telemetry"]
    assert isinstance(tel, dict)
    report(
        "telemetry_100hz_ble_mtu247",
        seconds=SECONDS,
        received_ratio=f"{tel['frames'] / tel['expected']:.4f}",
        ok=tel["lost"] == 0 and tel["frames"] == tel["expected"] and tel["crc_errors"] == 0,
        **tel,
    )


if __name__ == "__main__":
    main()

"""Benchmark: the simulator's CPU cost for a 25-minute session at 10 Hz telemetry.

Runs a device-only session on lllt's virtual clock at speed=max (no host, the output bytes
go nowhere) and prints wall and CPU time, the speed-up over real time, and the share of
the simulator itself against a baseline measured in the same process: an event loop
that wakes as often as the device does (one timer per telemetry period) and builds and
frames a telemetry sample each time with the wire codec. Target (issue 2): the
simulator's share of a 25-minute session at 10 Hz is at most 0.4 s of CPU.

    python bench/bench_sim.py [--minutes 25] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from functools import partial
from typing import TypeVar

from lllt import clock, wire
from lllt_sim.device import SimDevice

TARGET_CPU_S = 0.4
T = TypeVar("T")


def _plan(minutes: float) -> wire.UploadPlan:
    setpoints = tuple(wire.ChannelSetpoint(c, 3.0) for c in (0, 2, 4, 6))
    step = wire.PlanStep(
        wire.StepKind.DURATION, round(minutes * 60_000), 10_000, 0.0, 100.0, setpoints
    )
    return wire.UploadPlan(1, wire.LinkPolicy.FINISH, 5000, (step,))


async def _session(minutes: float) -> dict[str, int]:
    dev = SimDevice("reference-cap", seed=0)
    out = bytearray()
    dev.attach(out.extend)
    task = asyncio.get_running_loop().create_task(dev.run())
    hello = wire.decode_message(_ask(dev, out, wire.Hello(), 1))
    assert isinstance(hello, wire.HelloInfo)
    auth = wire.AuthState(wire.DEVELOPMENT_KEY, hello.nonce)
    _ask(dev, out, _plan(minutes), 2, auth)
    _ask(dev, out, wire.Start(1), 3, auth)
    await asyncio.sleep(minutes * 60 + 1)
    dev.close()
    await task
    return dev.stats


def _ask(
    dev: SimDevice, out: bytearray, msg: wire.Message, seq: int, auth: wire.AuthState | None = None
) -> wire.Frame:
    out.clear()
    dev.feed(wire.encode_message(msg, seq, auth=auth))
    for frame in wire.FrameDecoder().feed(bytes(out)):
        if frame.seq == seq and frame.type < 0x60:
            return frame
    raise RuntimeError(f"no reply to {msg}")


def _sample(n_ch: int, n_z: int, t_ms: int) -> bytes:
    """A telemetry payload shaped like the device's, with realistic values."""
    return wire.Telemetry(
        t_ms,
        1,
        wire.State.RUNNING,
        0,
        1,
        wire.TelemetryFlag.HEAD_PRESENT | wire.TelemetryFlag.EMITTING,
        1000,
        4990,
        t_ms,
        t_ms,
        (3.0, 0.0) * (n_ch // 2),
        (3.0, 0.0) * (n_ch // 2),
        (t_ms * 3e-6, 0.0) * (n_ch // 2),
        (35.81,) * n_z,
        25.0,
    ).payload()


async def _baseline(wakeups: int) -> None:
    """A loop doing only what any device must: wake per sample, build and frame it with the
    wire codec."""
    loop = asyncio.get_running_loop()
    sink = bytearray()
    done = loop.create_future()
    t0 = loop.time()
    count = 0

    def wake() -> None:
        nonlocal count
        count += 1
        sink.extend(wire.encode_frame(wire.MsgType.TELEMETRY, count, _sample(8, 4, count * 100)))
        sink.clear()
        if count >= wakeups:
            done.set_result(None)
        else:
            loop.call_at(t0 + count * 0.1, wake)

    loop.call_at(t0 + 0.1, wake)
    await done


def _timed(fn: Callable[[], T]) -> tuple[float, float, T]:
    w0, c0 = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - w0, time.process_time() - c0, result


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--minutes", type=float, default=25.0)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    runs = []
    bases = []
    stats: dict[str, int] = {}
    for _ in range(args.repeat):
        wall, cpu, stats = _timed(
            partial(clock.run, _session(args.minutes), virtual=True, speed=None)
        )
        runs.append((cpu, wall))
        n = stats["telemetry"]
        bwall, bcpu, _ = _timed(partial(clock.run, _baseline(n), virtual=True, speed=None))
        bases.append((bcpu, bwall))
    cpu, wall = min(runs)
    bcpu, bwall = min(bases)
    sim_s = args.minutes * 60 + 1
    print(f"simulated session: {args.minutes:g} min, {stats['telemetry']} telemetry frames")
    print(f"device run      : wall {wall:.3f} s, cpu {cpu:.3f} s, {sim_s / wall:,.0f}x real time")
    print(f"baseline loop   : wall {bwall:.3f} s, cpu {bcpu:.3f} s (wake, build, frame per sample)")
    print(f"simulator share : cpu {cpu:.3f} s total, {cpu - bcpu:.3f} s above the baseline")
    print(f"ratio to baseline: {cpu / bcpu:.2f}x")
    print(
        f"ticks: {stats['ticks']} single, {stats['jumped_ticks']} in {stats['jumps']} jumps; "
        f"wakeups {stats['wakeups']}"
    )
    verdict = "meets" if cpu <= TARGET_CPU_S else "misses"
    print(f"target <= {TARGET_CPU_S} s cpu for the whole device run: {verdict}")


if __name__ == "__main__":
    main()

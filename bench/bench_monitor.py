"""Benchmark: the runtime monitor's cost per telemetry frame, and the thermal prediction.

A 25-minute session at 10 Hz is 15,000 frames and `lllt run` at speed=max must finish in
under 2 s of wall time, so the monitor may add only a few µs per frame. Figures:

- baseline: ``wire.decode_message`` of each TELEMETRY frame of reference-cap (8 channels,
  4 zones), the least the runner pays per frame anyway;
- monitor: ``RuntimeMonitor.on_telemetry`` on the same frames, decoded (every rule runs:
  temperatures, output, setpoint, stuck-on, fluence integration);
- session: the monitor over the whole 25-minute session, in ms;
- predict: ``thermal.predict`` of the 25-minute plan, in ms (target: a few ms);
- preflight: ``preflight.check`` of the same plan with a week of history, in ms.

Relative figures are ratios against the baseline measured in the same run. Usage:
``python bench/bench_monitor.py [--repeat N]``.
"""

from __future__ import annotations

import argparse
import time

from _common import best_of, report
from lllt import wire
from lllt.info import DeviceInfo
from lllt.plan import SessionPlan, Setpoint, Step, phase_fluence
from lllt.safety.history import MemoryHistory, PastSession
from lllt.safety.monitor import RuntimeMonitor
from lllt.safety.preflight import check
from lllt.safety.thermal import predict

PERIOD_MS = 100
DURATION_S = 25 * 60.0
RAMP_S = 10.0
IRR = 3.0
NOW = 1_750_000_020.0


class _Protocol:
    id = "bench"
    research = False
    schedule = None


def make_plan(dev: DeviceInfo) -> SessionPlan:
    sps = tuple(
        Setpoint(c.id, c.wavelength_nm, c.zone, IRR) for c in dev.channels if c.wavelength_nm == 655
    )
    st = Step(
        "treatment",
        wire.StepKind.DURATION,
        RAMP_S,
        0.0,
        100.0,
        sps,
        DURATION_S,
        DURATION_S,
        {655: phase_fluence(IRR, 100.0, DURATION_S, RAMP_S)},
    )
    return SessionPlan(_Protocol(), dev, (st,))  # type: ignore[arg-type]


def make_frames(dev: DeviceInfo, plan: SessionPlan) -> list[wire.Frame]:
    """The session as an ideal device reports it, encoded and framed."""
    driven = {dev.channel_index[sp.channel] for sp in plan.steps[0].setpoints}
    n = len(dev.channels)
    decoder = wire.FrameDecoder()
    frames: list[wire.Frame] = []
    for k in range(int(DURATION_S * 1000 / PERIOD_MS) + 1):
        t = k * PERIOD_MS / 1000
        r = min(1.0, t / RAMP_S)
        on = t * t / (2 * RAMP_S) if t < RAMP_S else t - RAMP_S / 2
        sp = tuple(IRR * r if i in driven else 0.0 for i in range(n))
        fl = tuple(IRR * on / 1000 if i in driven else 0.0 for i in range(n))
        msg = wire.Telemetry(
            time_ms=k * PERIOD_MS,
            boot_count=1,
            state=wire.State.RUNNING,
            step=0,
            plan_id=7,
            flags=wire.TelemetryFlag.HEAD_PRESENT | wire.TelemetryFlag.EMITTING,
            derate_permille=1000,
            supply_mv=5000,
            elapsed_ms=k * PERIOD_MS,
            step_elapsed_ms=k * PERIOD_MS,
            setpoint=sp,
            irradiance=sp,
            fluence=fl,
            temperature=(34.6 + t / 1000,) * len(dev.zones),
            ambient=25.0,
        )
        frames.extend(decoder.feed(wire.encode_message(msg, k)))
    return frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    dev = DeviceInfo.for_profile("reference-cap")
    plan = make_plan(dev)
    frames = make_frames(dev, plan)
    messages = [wire.decode_message(f) for f in frames]
    n = len(frames)

    def decode_all() -> None:
        for f in frames:
            wire.decode_message(f)

    def monitor_all() -> None:
        mon = RuntimeMonitor(plan, dev, plan_id=7)
        on_telemetry = mon.on_telemetry
        for m in messages:
            if not on_telemetry(m, 0.0).is_continue:  # type: ignore[arg-type]
                raise SystemExit(f"the nominal session tripped the monitor: {mon.first_abort}")

    base = best_of(decode_all, args.repeat)
    mon = best_of(monitor_all, args.repeat)
    report(
        "monitor",
        frames=n,
        baseline_decode_us=f"{base / n * 1e6:.2f}",
        monitor_us=f"{mon / n * 1e6:.2f}",
        ratio=f"{mon / base:.2f}",
        session_ms=f"{mon * 1e3:.1f}",
    )

    history = MemoryHistory(
        PastSession(NOW - d * 86400, NOW - d * 86400 + 1500, {655: 4.485}) for d in (2, 4, 6)
    )
    t_pred = best_of(lambda: predict(plan, ambient_c=25.0), args.repeat)
    t_pre = best_of(lambda: check(plan, dev, None, history, NOW, ambient_c=25.0), args.repeat)
    report(
        "thermal",
        plan_min=f"{DURATION_S / 60:g}",
        predict_ms=f"{t_pred * 1e3:.2f}",
        preflight_ms=f"{t_pre * 1e3:.2f}",
        predict_vs_decode_frames=f"{t_pred / (base / n):.0f}",
    )


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"(bench ran in {time.perf_counter() - t0:.1f} s)")

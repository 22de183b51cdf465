"""Helpers for the session log tests: a session on the reference cap and its telemetry.

The telemetry is synthesised here (not taken from the simulator) so that every test
knows exactly which frames exist, at which host times, with which counters.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from lllt import wire
from lllt.info import DeviceInfo
from lllt.store import ChannelRef, PhasePlan, SessionRow, SessionStart, Status, Store

PROTOCOL_TEXT = """format = "lllt-protocol/1"
id = "test-red"
name = "Test, 655 nm"
[schedule]
min_interval = "36 h"
max_sessions_per_week = 4
[[phases]]
name = "warmup"
duration = "10 s"
emit = { "655nm" = "3 mW/cm^2" }
[[phases]]
name = "treatment"
duration = "20 s"
emit = { "655nm" = "3 mW/cm^2" }
"""

T0 = 1_750_000_000.0  # host epoch seconds of the first sample
IRR = 3.0  # mW/cm² on every 655 nm channel


def session_start(
    *,
    simulated: bool = True,
    serial: str | None = None,
    plan_id: int | None = 7,
    min_interval_s: float | None = 36 * 3600.0,
    max_sessions_per_week: int | None = 4,
) -> SessionStart:
    dev = DeviceInfo.for_profile("reference-cap")
    channels = tuple(ChannelRef(c.id, c.wavelength_nm, dev.zone_name(c.zone)) for c in dev.channels)
    per_ch = {c.id: 0.09 for c in dev.channels if c.wavelength_nm == 655}
    return SessionStart(
        protocol_id="test-red",
        protocol_name="Test, 655 nm",
        protocol_text=PROTOCOL_TEXT,
        device_serial=serial or dev.serial,
        device_model=dev.model,
        device_url="sim://reference-cap?speed=max",
        simulated=simulated,
        channels=channels,
        zones=tuple(z.name for z in dev.zones),
        phases=(
            PhasePlan("warmup", "duration", 10.0, 10.0, {655: 0.03}),
            PhasePlan("treatment", "duration", 20.0, 20.0, {655: 0.06}),
        ),
        planned_fluence_j_cm2={655: 0.09},
        planned_fluence_by_channel=per_ch,
        expected_duration_s=30.0,
        max_duration_s=30.0,
        min_interval_s=min_interval_s,
        max_sessions_per_week=max_sessions_per_week,
        plan_id=plan_id,
        cutoff_c=dev.limits.cutoff_c,
        sensor_uncertainty_c=dev.limits.sensor_uncertainty_c,
        limits={"max_fluence_j_cm2": 10.0},
    )


def frame(
    i: int,
    *,
    period_ms: int = 100,
    plan_id: int = 7,
    steps_s: float = 10.0,
    total_s: float = 30.0,
    derate: int = 1000,
) -> wire.Telemetry:
    """Frame ``i`` of a session: 655 nm channels at IRR, step 0 then 1, IDLE after."""
    t_ms = i * period_ms
    running = t_ms < total_s * 1000
    on_s = min(t_ms, total_s * 1000) / 1000.0
    irr = IRR if running else 0.0
    f = IRR * on_s / 1000.0
    red = [c % 2 == 0 for c in range(8)]
    return wire.Telemetry(
        time_ms=10_000 + t_ms,
        boot_count=1,
        state=wire.State.RUNNING if running else wire.State.IDLE,
        step=(0 if t_ms < steps_s * 1000 else 1) if running else wire.NO_INDEX,
        plan_id=plan_id,
        flags=wire.TelemetryFlag.EMITTING | wire.TelemetryFlag.HEAD_PRESENT
        if running
        else wire.TelemetryFlag.HEAD_PRESENT,
        derate_permille=derate,
        supply_mv=5000,
        elapsed_ms=min(t_ms, int(total_s * 1000)),
        step_elapsed_ms=0,
        setpoint=tuple(irr if r else 0.0 for r in red),
        irradiance=tuple(irr if r else 0.0 for r in red),
        fluence=tuple(round(f, 6) if r else 0.0 for r in red),
        temperature=(34.0 + on_s / 10, 34.5, 35.0, None),
        ambient=25.0,
    )


class FakeWall:
    """A wall clock the test moves by hand (the recorder's commit pacing)."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def record_session(
    store: Store,
    t0: float = T0,
    *,
    frames: int = 350,
    simulated: bool = True,
    serial: str | None = None,
    events: Sequence[tuple[int, str]] = (),
    status: Status = Status.COMPLETED,
    min_interval_s: float | None = 36 * 3600.0,
    max_sessions_per_week: int | None = 4,
    wall: Callable[[], float] | None = None,
) -> SessionRow:
    """A whole session at 10 Hz starting at ``t0``; ``events`` are (frame index, kind)."""
    rec = store.begin_session(
        session_start(
            simulated=simulated,
            serial=serial,
            min_interval_s=min_interval_s,
            max_sessions_per_week=max_sessions_per_week,
        ),
        created_at=t0 - 1.0,
        **({"wall_clock": wall} if wall else {}),
    )
    rec.started(t0, plan_id=7)
    marks = dict(events)
    for i in range(frames):
        t = t0 + i * 0.1
        rec.sample(t, frame(i))
        if i in marks:
            rec.event(t, marks[i], {"frame": i})
    end = t0 + frames * 0.1
    return rec.finish(end, status=status, outcome=status.value, exit_code=0)

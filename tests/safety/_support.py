"""Helpers for the safety tests: hand-made plans, devices and telemetry frames.

Plans are built from the ``lllt.plan`` data types directly (the protocol compiler has its
own tests), so each test states exactly the setpoints it checks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cache

from lllt import wire
from lllt.info import DeviceInfo
from lllt.plan import SessionPlan, Setpoint, Step, duration_for_fluence, phase_fluence

#: A fixed "now" on a whole minute (2025-06-15 15:07:00 UTC): no test reads the clock.
NOW = 1_750_000_020.0
MIN = 60.0
HOUR = 3600.0
DAY = 24 * HOUR


@dataclass(frozen=True)
class FakeSchedule:
    min_interval: float | None = None  # seconds, as lllt.protocol stores it
    max_sessions_per_week: int | None = None


@dataclass(frozen=True)
class FakeProtocol:
    """Stands in for ``lllt.protocol.Protocol``: only what preflight reads."""

    id: str = "test-protocol"
    research: bool = False
    schedule: FakeSchedule | None = None


@cache
def device(name: str = "reference-cap") -> DeviceInfo:
    return DeviceInfo.for_profile(name)


def bright_device() -> DeviceInfo:
    """reference-cap with 150 mW/cm² channels: lets the 100 mW/cm² default cap bind first."""
    hello = device().hello
    channels = tuple(replace(c, max_irradiance_mw_cm2=150.0) for c in hello.channels)
    limits = replace(hello.limits, max_irradiance_mw_cm2=150.0, max_fluence_j_cm2=500.0)
    return DeviceInfo(replace(hello, channels=channels, limits=limits))


def step(
    dev: DeviceInfo,
    emit: Mapping[int, float],
    *,
    duration: float = 25 * MIN,
    ramp: float = 10.0,
    fluence: float | None = None,
    max_duration: float | None = None,
    pulse_hz: float = 0.0,
    duty: float = 100.0,
    name: str = "treatment",
) -> Step:
    """One step driving every channel of each wavelength in ``emit`` (nm -> mW/cm²)."""
    sps = tuple(
        Setpoint(c.id, c.wavelength_nm, c.zone, emit[c.wavelength_nm], fluence or 0.0)
        for c in dev.channels
        if c.wavelength_nm in emit
    )
    if fluence is not None:
        expected = max(
            duration_for_fluence(fluence, sp.irradiance_mw_cm2, duty, ramp) for sp in sps
        )
        return Step(
            name,
            wire.StepKind.FLUENCE,
            ramp,
            pulse_hz,
            duty,
            sps,
            expected,
            max_duration if max_duration is not None else 2 * expected,
            {wl: fluence for wl in emit},
        )
    return Step(
        name,
        wire.StepKind.DURATION,
        ramp,
        pulse_hz,
        duty,
        sps,
        duration,
        duration,
        {wl: phase_fluence(irr, duty, duration, ramp) for wl, irr in emit.items()},
    )


def make_plan(dev: DeviceInfo, *steps: Step, protocol: FakeProtocol | None = None) -> SessionPlan:
    return SessionPlan(protocol or FakeProtocol(), dev, tuple(steps))  # type: ignore[arg-type]


def frame(
    dev: DeviceInfo,
    time_ms: int,
    *,
    state: wire.State = wire.State.RUNNING,
    step: int = 0,
    plan_id: int = 7,
    setpoint: Sequence[float] | float = 0.0,
    irradiance: Sequence[float] | float | None = None,
    fluence: Sequence[float] | float = 0.0,
    temperature: Sequence[float | None] | float | None = 36.0,
    flags: wire.TelemetryFlag = wire.TelemetryFlag.HEAD_PRESENT,
    derate_permille: int = 1000,
    elapsed_ms: int | None = None,
) -> wire.Telemetry:
    """A telemetry frame; scalars are repeated over every channel or zone."""
    n, nz = len(dev.channels), len(dev.zones)

    def per_channel(v: Sequence[float] | float) -> tuple[float, ...]:
        return tuple(v) if isinstance(v, Sequence) else (float(v),) * n

    sp = per_channel(setpoint)
    irr = sp if irradiance is None else per_channel(irradiance)
    if isinstance(temperature, Sequence):
        temps: tuple[float | None, ...] = tuple(temperature)
    else:
        temps = (temperature,) * nz
    if any(v > 0.05 for v in irr):
        flags |= wire.TelemetryFlag.EMITTING
    return wire.Telemetry(
        time_ms=time_ms,
        boot_count=1,
        state=state,
        step=step,
        plan_id=plan_id,
        flags=flags,
        derate_permille=derate_permille,
        supply_mv=5000,
        elapsed_ms=time_ms if elapsed_ms is None else elapsed_ms,
        step_elapsed_ms=time_ms,
        setpoint=sp,
        irradiance=irr,
        fluence=per_channel(fluence),
        temperature=temps,
        ambient=25.0,
    )


def on_channels(dev: DeviceInfo, plan_step: Step, scale: float = 1.0) -> tuple[float, ...]:
    """Per-channel (HELLO order) setpoints of a step, times ``scale``."""
    out = [0.0] * len(dev.channels)
    for sp in plan_step.setpoints:
        out[dev.channel_index[sp.channel]] = sp.irradiance_mw_cm2 * scale
    return tuple(out)

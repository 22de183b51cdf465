"""Property tests of the constraint pipeline: it only tightens, and what it accepts is safe."""

from __future__ import annotations

import math

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from lllt.info import DeviceInfo
from lllt.plan import SessionPlan
from lllt.safety.history import MemoryHistory
from lllt.safety.limits import DEFAULT_LIMITS, laser_emitter_limit_mw
from lllt.safety.preflight import check

from ._support import MIN, NOW, bright_device, device, make_plan, step

DEVICES = [
    device("reference-cap"),
    device("laser-cap-678"),
    device("led-helmet-rgb"),
    bright_device(),
]


@st.composite
def plans(draw: st.DrawFn) -> SessionPlan:
    dev: DeviceInfo = draw(st.sampled_from(DEVICES))
    steps = []
    for _ in range(draw(st.integers(1, 3))):
        wls = draw(st.sets(st.sampled_from(dev.wavelengths), min_size=1))
        emit = {wl: draw(st.floats(0.1, 200.0)) for wl in sorted(wls)}
        pulsed = draw(st.booleans())
        pulse = draw(st.floats(0.5, 20_000.0)) if pulsed else 0.0
        duty = draw(st.floats(1.0, 100.0)) if pulsed else 100.0
        ramp = draw(st.sampled_from([0.0, 5.0, 10.0]))
        if draw(st.booleans()):
            target = draw(st.floats(0.05, 15.0))
            steps.append(step(dev, emit, fluence=target, max_duration=draw(st.floats(60, 90 * MIN)),
                              ramp=ramp, pulse_hz=pulse, duty=duty))  # fmt: skip
        else:
            steps.append(step(dev, emit, duration=draw(st.floats(20.0, 80 * MIN)), ramp=ramp,
                              pulse_hz=pulse, duty=duty))  # fmt: skip
    return make_plan(dev, *steps)


def _cap(dev: DeviceInfo, channel: int) -> float:
    ch = dev.channel(channel)
    cap = min(
        DEFAULT_LIMITS.max_irradiance_mw_cm2,
        ch.max_irradiance_mw_cm2,
        dev.limits.max_irradiance_mw_cm2,
    )
    if ch.kind == "laser":
        emitter = laser_emitter_limit_mw(ch.wavelength_nm, DEFAULT_LIMITS.max_laser_emitter_mw)
        assert emitter is not None
        cap = min(cap, emitter / ch.emitter_max_mw * ch.max_irradiance_mw_cm2)
    return cap


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plans(), st.floats(15.0, 38.0))
def test_preflight_only_tightens_and_accepts_only_what_is_within_limits(
    plan: SessionPlan, ambient: float
) -> None:
    dev = plan.device
    result = check(plan, dev, None, MemoryHistory(), NOW, ambient_c=ambient)
    out = result.plan
    # only tightens: same steps, same kinds and maxima, never a higher setpoint
    assert len(out.steps) == len(plan.steps)
    for before, after in zip(plan.steps, out.steps, strict=True):
        assert (after.kind, after.max_duration_s, after.pulse_hz, after.duty_pct) == (
            before.kind, before.max_duration_s, before.pulse_hz, before.duty_pct,
        )  # fmt: skip
        for a, b in zip(after.setpoints, before.setpoints, strict=True):
            assert a.channel == b.channel
            assert a.irradiance_mw_cm2 <= b.irradiance_mw_cm2
            assert a.fluence_target_j_cm2 == b.fluence_target_j_cm2
    for r in result.tightenings:
        assert r.observed is not None and r.limit is not None and r.observed > r.limit
    assert result.accepted == (not result.refusals)
    event("accepted" if result.accepted else "refused")
    event(f"tightened: {bool(result.tightenings)}")
    if not result.accepted:
        return
    # accepted means within every default and device limit
    for s in out.steps:
        for sp in s.setpoints:
            assert sp.irradiance_mw_cm2 <= _cap(dev, sp.channel) + 1e-9
        if s.pulse_hz:
            assert DEFAULT_LIMITS.min_pulse_hz <= s.pulse_hz <= DEFAULT_LIMITS.max_pulse_hz
    assert all(
        f <= DEFAULT_LIMITS.max_fluence_session_j_cm2 + 1e-6
        for f in out.fluence_by_wavelength().values()
    )
    assert all(f <= dev.limits.max_fluence_j_cm2 + 1e-6 for f in out.fluence_by_channel().values())
    by_zone: dict[int, float] = {}
    for ch_id, f in out.fluence_by_channel().items():
        zone = dev.channel(ch_id).zone
        by_zone[zone] = by_zone.get(zone, 0.0) + f
    assert all(f <= DEFAULT_LIMITS.max_total_fluence_session_j_cm2 + 1e-6 for f in by_zone.values())
    assert out.max_duration_s <= min(DEFAULT_LIMITS.max_session_s, dev.limits.max_session_s) + 1e-6
    assert result.prediction is not None and result.prediction.ok
    assert result.prediction.peak_c < result.prediction.thresholds.abort_c
    assert all(math.isfinite(s.expected_duration_s) for s in out.steps)
    # and a second pass has nothing left to tighten
    again = check(out, dev, None, MemoryHistory(), NOW, ambient_c=ambient)
    assert again.tightenings == () and again.accepted

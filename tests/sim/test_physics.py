"""Physics of the simulated cap: the thermal behaviour DESIGN §9 promises, LED output
falling with temperature, emitter tolerance, sensor noise, and fluence from the measured
output; and the closed-form jumps agree with ticking one by one."""

from __future__ import annotations

import asyncio
import dataclasses
import statistics

import pytest

from lllt import wire as W
from lllt_sim.device import SimDevice
from lllt_sim.profiles import Profile, load_profile
from lllt_sim.thermal import ZoneThermal

from ._support import ALL_FARRED, ALL_RED, Host, plan, red, simulate, step

REF = load_profile("reference-cap")


def no_cutoff(profile: Profile = REF, **sim: float) -> Profile:
    """The profile with its thermal interlock out of the way (what the cap would do
    if nothing intervened)."""
    limits = dataclasses.replace(profile.limits, cutoff_c=70.0)
    return dataclasses.replace(profile, limits=limits, sim=dataclasses.replace(profile.sim, **sim))


def hottest(tel: W.Telemetry) -> float:
    return max(t for t in tel.temperature if t is not None)


def first_time_at(h: Host, celsius: float) -> float | None:
    """Device seconds at which some zone first read ``celsius`` or more."""
    for t in h.telemetry():
        if hottest(t) >= celsius:
            return t.time_ms / 1000
    return None


# --- DESIGN §9: thermal behaviour the safety tests rely on --------------------------------


def test_three_mw_on_red_settles_below_38() -> None:
    async def body(h: Host) -> None:
        h.hello()
        h.request(W.SetTelemetry(1000))
        h.start_plan(red(3.0, 3600))
        await asyncio.sleep(3601)
        tel = h.telemetry()
        assert max(hottest(t) for t in tel) < 38.0

        def mean_between(a_s: int, b_s: int) -> float:
            return statistics.fmean(
                statistics.fmean(t.temperature)  # type: ignore[arg-type]
                for t in tel
                if a_s * 1000 < t.time_ms <= b_s * 1000
            )

        # settled: the mean moves less than 0.05 °C between the last two 5-minute windows
        assert abs(mean_between(3300, 3600) - mean_between(3000, 3300)) < 0.05
        assert mean_between(3300, 3600) > 35.5  # it did warm from the resting ~34.6 °C

    simulate(body)


def test_full_output_passes_41_within_10_min_and_would_pass_43_within_20() -> None:
    full = dict.fromkeys(range(8), 10.0)

    async def body(h: Host) -> None:
        h.hello()
        h.request(W.SetTelemetry(1000))
        h.start_plan(plan(step(1400, full)))
        await asyncio.sleep(1200)
        t41 = first_time_at(h, 41.0)
        t43 = first_time_at(h, 43.0)
        assert t41 is not None and t41 <= 600, t41
        assert t43 is not None and t43 <= 1200, t43
        assert h.events(W.EventKind.INTERLOCK) == []

    simulate(body, profile=no_cutoff())


@pytest.mark.parametrize("irr", [9.0, 10.0])
def test_warm_ambient_brings_a_fluence_phase_into_the_derating_band(irr: float) -> None:
    async def body(h: Host) -> None:
        h.hello()
        h.request(W.SetTelemetry(1000))
        sp = dict.fromkeys(ALL_RED, irr)
        h.start_plan(plan(step(1, sp, targets=dict.fromkeys(ALL_RED, 10.0), max_s=1800)))
        await asyncio.sleep(900)
        t = first_time_at(h, 40.5)
        assert t is not None and t <= 900, t
        await asyncio.sleep(900)
        assert max(hottest(x) for x in h.telemetry()) < 42.0

    simulate(body, ambient_c=34.0)


def test_ambient_makes_the_scalp_warmer_at_rest() -> None:
    def resting(ambient: float) -> float:
        async def body(h: Host) -> float:
            await asyncio.sleep(1)
            return hottest(h.last_telemetry())

        return simulate(body, ambient_c=ambient)

    cold, warm = resting(20.0), resting(34.0)
    assert warm > cold + 1.5
    # the resting state is the model's steady state: it does not drift
    assert resting(25.0) == pytest.approx(
        ZoneThermal(REF.zones[0], 25.0, 0.01).steady_state()[1], abs=0.1
    )


# --- output, tolerance, sensor -----------------------------------------------------------


def test_tolerance_is_seeded_and_clipped_to_three_sigma() -> None:
    sigma = REF.sim.tolerance_pct / 100
    a = SimDevice("reference-cap", seed=1).tolerance
    assert a == SimDevice("reference-cap", seed=1).tolerance
    assert a != SimDevice("reference-cap", seed=2).tolerance
    many = [t for s in range(100) for t in SimDevice("reference-cap", seed=s).tolerance]
    assert max(abs(t) for t in many) <= 3 * sigma + 1e-12
    assert statistics.pstdev(many) == pytest.approx(sigma, rel=0.15)


def test_hot_board_saturates_the_drive_and_output_falls_by_the_tempco() -> None:
    """Near full output with little headroom a hot board cannot hold the setpoint: the
    measured output is max × headroom × (1 + tol) × (1 + tempco × (Tb − 25))."""
    profile = no_cutoff(headroom=1.02)

    async def body(h: Host) -> None:
        h.hello()
        h.request(W.SetTelemetry(1000))
        h.start_plan(plan(step(1400, dict.fromkeys(range(8), 10.0))))
        await asyncio.sleep(1000)
        tel = h.status()
        dev = h.dev
        tb = dev.board_temperatures
        for i, ch in enumerate(REF.channels):
            cap = ch.max_irradiance_mw_cm2 * 1.02 * (1 + dev.tolerance[i])
            cap *= 1 + ch.tempco_pct_per_k / 100 * (tb[i // 2] - 25)  # two channels a zone
            assert tel.irradiance[i] == pytest.approx(min(10.0, cap), abs=0.006), i
        # the far-red channels (-0.44 %/K) fall first and deliver less than planned
        assert any(tel.irradiance[i] < 10.0 for i in ALL_FARRED)
        rec = h.records()[0]
        far = [rec.fluence[i] for i in ALL_FARRED]
        red_ = [rec.fluence[i] for i in ALL_RED]
        assert min(far) < min(red_)
        assert max(red_) <= 10.0 * tel.elapsed_ms / 1e6 + 1e-6

    simulate(body, profile=profile, faults="overtemp:0,overtemp:1,overtemp:2,overtemp:3")


def test_sensor_noise_is_small_bounded_and_seeded() -> None:
    def readings(seed: int) -> list[tuple[float | None, ...]]:
        async def body(h: Host) -> list[tuple[float | None, ...]]:
            await asyncio.sleep(60)
            return [t.temperature for t in h.telemetry()]

        return simulate(body, seed=seed)

    a, b, c = readings(3), readings(3), readings(4)
    assert a == b and a != c
    ss = ZoneThermal(REF.zones[0], 25.0, 0.01).steady_state()[1]
    errs = [t - ss for row in a for t in row if t is not None]
    bound = 3 * REF.sim.sensor_noise_c + 0.006
    assert max(abs(e) for e in errs) <= bound
    assert abs(statistics.fmean(errs)) < 0.01
    assert statistics.pstdev(errs) > REF.sim.sensor_noise_c / 2  # noise is really there


# --- fluence --------------------------------------------------------------------------------


def test_fluence_integrates_output_duty_and_half_the_ramp_exactly() -> None:
    async def body(h: Host) -> None:
        h.hello()
        p = plan(
            step(100, {0: 6.0}, ramp_s=20),  # 6 × (100 − 10) = 540 mJ/cm²
            step(50, {0: 4.0, 2: 8.0}, pulse_hz=10, duty_pct=25),  # 4 × .25 × 50 = 50
        )
        h.start_plan(p)
        await asyncio.sleep(151)
        end = h.session_end()
        assert end.a == W.Outcome.COMPLETED
        rec = h.records()[0]
        assert rec.fluence[0] == pytest.approx(0.540 + 0.050, abs=2e-6)
        assert rec.fluence[2] == pytest.approx(8 * 0.25 * 50 / 1000, abs=2e-6)
        assert rec.fluence[1] == 0.0
        assert rec.emitting_ms == pytest.approx(150_000, abs=30)
        pulsed = [t for t in h.telemetry() if t.step == 1 and t.state == W.State.RUNNING]
        # telemetry reports the on-state value: pulsing lowers the average, not the peak
        assert pulsed and all(t.irradiance[2] == 8.0 for t in pulsed)

    simulate(body)


def test_ramp_setpoints_are_exact_integers_rounded_half_to_even() -> None:
    """Differential seed 3083: 10 mW/cm² with a 6 s ramp; at 3,040 ms into the ramp the
    setpoint is exactly 5.075 mW/cm² (507.5 in 0.01 units). The firmware rounds that half
    to even in integers (5.08); the simulator computed it in floating point (5.07), so
    their fluence differed and a fluence target was reached a tick apart."""

    async def body(h: Host) -> None:
        h.hello()
        h.request(W.SetTelemetry(10))  # every tick
        h.start_plan(plan(step(8, {0: 10.0}, ramp_s=6)))
        await asyncio.sleep(7)
        seen = {round(t.setpoint[0] * 100) for t in h.telemetry() if t.state == W.State.RUNNING}
        assert 508 in seen and 507 not in seen
        assert 1000 in seen  # the ramp ran to its end

    simulate(body)


def test_a_fluence_step_stops_each_channel_at_its_target() -> None:
    async def body(h: Host) -> None:
        h.hello()
        p = plan(step(1, {0: 5.0, 2: 2.5}, targets={0: 0.5, 2: 0.5}, max_s=600))
        h.start_plan(p)
        await asyncio.sleep(250)
        hits = h.events(W.EventKind.TARGET_REACHED)
        assert [e.b for e in hits] == [0, 2]
        # each stops in the tick its step fluence reaches the target: 100 s and 200 s
        assert hits[0].time_ms == 100_010 and hits[1].time_ms == 200_010
        assert all(e.value == 500_000 and e.limit == 500_000 for e in hits)
        end = h.session_end()
        assert end.a == W.Outcome.COMPLETED and end.time_ms == 200_010
        rec = h.records()[0]
        assert rec.fluence[0] == pytest.approx(0.5, abs=1e-6)
        assert rec.fluence[2] == pytest.approx(0.5, abs=1e-6)

    simulate(body)


def test_a_fluence_step_that_cannot_finish_in_time_ends_max_duration() -> None:
    async def body(h: Host) -> None:
        h.hello()
        p = plan(step(1, {0: 1.0}, targets={0: 5.0}, max_s=60), step(5, {2: 1.0}))
        h.start_plan(p)
        await asyncio.sleep(70)
        assert h.events(W.EventKind.TARGET_REACHED) == []
        assert [e.a for e in h.events(W.EventKind.STEP)] == [0, 1]  # the plan goes on
        assert h.session_end().a == W.Outcome.MAX_DURATION
        assert h.records()[0].outcome == W.Outcome.MAX_DURATION

    simulate(body)


# --- jumps agree with single ticks ---------------------------------------------------------


def test_results_do_not_depend_on_how_ticks_are_batched() -> None:
    """Polling GET_STATUS every 30 ms forces the device to advance in small pieces; the
    telemetry must be the same as when it jumps from sample to sample."""

    def run(poll: bool) -> list[W.Telemetry]:
        async def body(h: Host) -> list[W.Telemetry]:
            h.hello()
            h.start_plan(plan(step(60, dict.fromkeys(range(8), 9.0), ramp_s=5)))
            for _ in range(2000 if poll else 1):
                await asyncio.sleep(0.03 if poll else 60.0)
                if poll:
                    h.status()
            await asyncio.sleep(1)
            return h.telemetry()

        return simulate(body)

    jumped, polled = run(False), run(True)
    assert len(jumped) == len(polled)
    for a, b in zip(jumped, polled, strict=True):
        assert dataclasses.replace(a, temperature=()) == dataclasses.replace(b, temperature=())
        for x, y in zip(a.temperature, b.temperature, strict=True):
            assert x is not None and y is not None and abs(x - y) <= 0.011


def test_closed_form_jump_matches_ticking() -> None:
    th = ZoneThermal(REF.zones[0], 25.0, 0.01)
    st = th.step(2.0, -0.004, 1.1, -0.002)
    assert st.can_jump()
    tb, ts = th.steady_state()
    lo, hi, sum_tb = ts, ts, 0.0
    b, s = tb, ts
    for _ in range(30_000):
        sum_tb += b
        b, s = st.tick(b, s)
        lo, hi = min(lo, s), max(hi, s)
    j = st.jump(tb, ts, 30_000)
    assert j[0] == pytest.approx(b, abs=1e-9) and j[1] == pytest.approx(s, abs=1e-9)
    assert j[4] <= lo + 1e-9 and j[5] >= hi - 1e-9  # the bounds hold the true range
    assert j[6] == pytest.approx(sum_tb, rel=1e-12)


@pytest.mark.parametrize("name", ["reference-cap", "laser-cap-678", "led-helmet-rgb"])
def test_every_packaged_profile_runs_a_session(name: str) -> None:
    prof = load_profile(name)

    async def body(h: Host) -> None:
        info = h.hello()
        assert info.model == prof.model
        irr = {c.id: round(0.8 * c.max_irradiance_mw_cm2, 2) for c in prof.channels}
        h.start_plan(plan(step(120, irr, ramp_s=4)))
        await asyncio.sleep(121)
        assert h.session_end().a == W.Outcome.COMPLETED
        rec = h.records()[0]
        for i, c in enumerate(prof.channels):
            assert rec.fluence[i] == pytest.approx(irr[c.id] * 118 / 1000, abs=2e-6)
        assert all(t is not None and 30 < t < 42 for t in h.last_telemetry().temperature)

    simulate(body, profile=name)

"""Preflight: every constraint tightens or refuses, with a reason and its source."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from lllt import wire
from lllt.errors import PlanError, PreflightRefused
from lllt.safety import preflight
from lllt.safety.history import MemoryHistory, PastSession
from lllt.safety.limits import DEFAULT_LIMITS, parse_limits
from lllt.safety.preflight import SOURCES, ScheduleRules, analyze, check, format_when

from ._support import (
    DAY,
    HOUR,
    MIN,
    NOW,
    FakeProtocol,
    FakeSchedule,
    bright_device,
    device,
    make_plan,
    step,
)

LIMITS_HEAD = 'format = "lllt-limits/1"\n'


def constraints(result: preflight.PreflightResult, action: str | None = None) -> list[str]:
    return [r.constraint for r in result.reasons if action is None or r.action == action]


def session(end: float, fluence: dict[int, float] | None = None, **kw: object) -> PastSession:
    return PastSession(start=end - 25 * MIN, end=end, fluence_j_cm2=fluence or {655: 4.5}, **kw)  # type: ignore[arg-type]


# --- a plain session ---------------------------------------------------------------------


def test_a_plain_session_is_accepted_unchanged() -> None:
    dev = device()
    plan = make_plan(dev, step(dev, {655: 3.0}))
    result = check(plan, dev, None, MemoryHistory(), NOW)
    assert result.accepted
    assert result.plan is plan  # nothing tightened: the very same plan
    assert result.refusals == () and result.tightenings == ()
    assert result.next_allowed_at is None
    assert result.prediction is not None and result.prediction.ok
    assert result.raise_if_refused() is plan


# --- defaults ----------------------------------------------------------------------------


def test_irradiance_above_the_default_cap_is_lowered_to_it() -> None:
    dev = bright_device()  # channels calibrated to 150 mW/cm²: the default cap binds first
    plan = make_plan(dev, step(dev, {655: 120.0}, fluence=4.0, max_duration=10 * MIN))
    result = check(plan, dev, None, None, NOW)
    (reason,) = [r for r in result.reasons if r.constraint == "irradiance_cap"]
    assert reason.source == "default" and reason.action == "tighten"
    assert (reason.limit, reason.observed) == (100.0, 120.0)
    assert all(sp.irradiance_mw_cm2 == 100.0 for sp in result.plan.steps[0].setpoints)
    assert "100 mW/cm²" in reason.message and "fluence target is kept" in reason.message
    assert result.plan.steps[0].expected_duration_s > plan.steps[0].expected_duration_s
    assert result.plan.adjustments == ("default: irradiance_cap",)


def test_irradiance_above_the_device_maximum_is_lowered_to_it() -> None:
    dev = device()  # 10 mW/cm² per channel
    plan = make_plan(dev, step(dev, {655: 12.0}, duration=5 * MIN))
    result = check(plan, dev, None, None, NOW)
    (reason,) = [r for r in result.reasons if r.constraint == "device_irradiance"]
    assert reason.source == "device" and reason.action == "tighten"
    assert max(sp.irradiance_mw_cm2 for sp in result.plan.steps[0].setpoints) == 10.0
    # a duration phase delivers less: the reason says how much
    assert "now delivers 655 nm 2.95 J/cm² instead of 3.54" in reason.message


def test_laser_emitters_are_held_to_5_mW_each() -> None:
    dev = device("laser-cap-678")  # 7 mW lasers, 1.87 mW/cm² at full output
    plan = make_plan(dev, step(dev, {678: 1.87}, duration=20 * MIN))
    result = check(plan, dev, None, None, NOW)
    (reason,) = [r for r in result.reasons if r.constraint == "laser_emitter_power"]
    assert reason.source == "default" and reason.action == "tighten"
    new = result.plan.steps[0].setpoints[0].irradiance_mw_cm2
    assert new == pytest.approx(1.33)  # 1.87 × 5/7 = 1.3357, rounded down to the wire unit
    assert new / 1.87 * 7.0 <= 5.0
    assert "7.00 mW" in reason.message and "5 mW" in reason.message
    assert "this duration phase now delivers 678 nm" in reason.message
    # the shipped protocol's 1.3 mW/cm² (4.87 mW per laser) passes untouched
    ok = make_plan(dev, step(dev, {678: 1.3}, duration=20 * MIN))
    assert "laser_emitter_power" not in constraints(check(ok, dev, None, None, NOW))


def test_a_lowered_fluence_phase_that_no_longer_fits_its_maximum_is_refused() -> None:
    dev = device("laser-cap-678")
    st = step(dev, {678: 1.87}, fluence=1.0, max_duration=10 * MIN)  # needs 9 min at 1.87
    result = check(make_plan(dev, st), dev, None, None, NOW)
    assert not result.accepted
    refusal = [r for r in result.refusals if r.constraint == "laser_emitter_power"]
    assert refusal and "longer than its maximum duration" in refusal[0].message


def test_session_fluence_above_10_J_per_wavelength_is_refused() -> None:
    dev = device()
    plan = make_plan(dev, step(dev, {655: 8.0, 735: 8.0}, duration=22 * MIN))
    result = check(plan, dev, None, None, NOW, ambient_c=20.0)
    refused = [r for r in result.refusals if r.constraint == "session_fluence"]
    assert [r.source for r in refused] == ["default", "default"]
    assert "655 nm" in refused[0].message and "735 nm" in refused[1].message
    assert refused[0].limit == 10.0 and refused[0].observed == pytest.approx(10.52)


def test_the_per_wavelength_limit_counts_each_wavelength_alone() -> None:
    dev = device()
    plan = make_plan(dev, step(dev, {655: 4.0, 735: 4.0}, duration=20 * MIN))  # 4.78 J each
    result = check(plan, dev, None, MemoryHistory(), NOW, research_ok=True)  # 735 nm: research
    assert result.accepted, result.refusals
    # 5.98 J/cm² each is within the per-wavelength limit but not the total (see
    # tests/safety/test_wavelength_limits.py)
    plan = make_plan(dev, step(dev, {655: 5.0, 735: 5.0}, duration=20 * MIN))
    result = check(plan, dev, None, MemoryHistory(), NOW, research_ok=True)
    assert "session_total_fluence" in constraints(result, "refuse")
    assert "session_fluence" not in {r.constraint for r in result.refusals}


def test_a_session_longer_than_the_maximum_is_refused() -> None:
    dev = device()
    plan = make_plan(dev, step(dev, {655: 1.0}, duration=65 * MIN))
    result = check(plan, dev, None, None, NOW)
    by = {(r.source, r.constraint) for r in result.refusals}
    assert ("default", "session_duration") in by  # 60 min default
    assert ("device", "device_session_duration") in by  # reference-cap: 60 min


@pytest.mark.parametrize(("hz", "ok"), [(10.0, True), (2.0, True), (1.0, False), (20_000.0, False)])
def test_pulse_frequency_must_be_within_2_to_10000_Hz(hz: float, ok: bool) -> None:
    dev = device()
    plan = make_plan(dev, step(dev, {655: 3.0}, pulse_hz=hz, duty=50.0))
    result = check(plan, dev, None, None, NOW)
    sources = {r.source for r in result.refusals if r.constraint == "pulse_range"}
    assert result.accepted is ok
    assert sources == (set() if ok else {"default", "device"})


def test_continuous_wave_with_a_duty_is_refused() -> None:
    dev = device()
    plan = make_plan(dev, step(dev, {655: 3.0}, pulse_hz=0.0, duty=50.0))
    assert "pulse_range" in constraints(check(plan, dev, None, None, NOW), "refuse")


def test_research_protocols_need_the_research_flag() -> None:
    dev = device()
    proto = FakeProtocol(id="far-red", research=True)
    plan = make_plan(dev, step(dev, {735: 3.0}, duration=15 * MIN), protocol=proto)
    refused = check(plan, dev, None, None, NOW)
    assert not refused.accepted
    (reason,) = refused.refusals
    assert reason.constraint == "research_flag" and "--research" in reason.message
    allowed = check(plan, dev, None, None, NOW, research_ok=True)
    assert allowed.accepted
    assert "research_flag" in constraints(allowed, "note")


def test_the_research_gate_follows_the_wavelengths_not_the_file() -> None:
    # finding 5: a 735 nm protocol whose file says research = false is still research
    dev = device()
    proto = FakeProtocol(id="far-red-unmarked", research=False)
    plan = make_plan(dev, step(dev, {735: 3.0}, duration=15 * MIN), protocol=proto)
    refused = check(plan, dev, None, None, NOW)
    (reason,) = refused.refusals
    assert reason.constraint == "research_wavelength"
    assert "735 nm" in reason.message and "630-680 nm" in reason.message
    assert "--research" in reason.message
    allowed = check(plan, dev, None, None, NOW, research_ok=True)
    assert allowed.accepted and "research_wavelength" in constraints(allowed, "note")
    # inside the band nothing changes
    red = make_plan(dev, step(dev, {655: 3.0}, duration=15 * MIN), protocol=proto)
    assert check(red, dev, None, None, NOW).accepted


def test_device_maximum_fluence_per_channel_is_refused() -> None:
    from dataclasses import replace

    base = device()
    dev = type(base)(replace(base.hello, limits=replace(base.limits, max_fluence_j_cm2=3.0)))
    plan = make_plan(dev, step(dev, {655: 3.0}))  # 4.485 J/cm² per channel
    result = check(plan, dev, None, None, NOW)
    refused = [r for r in result.refusals if r.constraint == "device_fluence"]
    assert len(refused) == 4 and all(r.source == "device" for r in refused)
    assert refused[0].limit == 3.0


def test_a_device_without_fluence_targets_or_pulsing_refuses_those_phases() -> None:
    from dataclasses import replace

    base = device()
    caps = wire.Capability.AUTH_REQUIRED | wire.Capability.SIMULATED
    dev = type(base)(replace(base.hello, capabilities=caps))
    plan = make_plan(
        dev,
        step(dev, {655: 3.0}, fluence=1.0, max_duration=10 * MIN),
        step(dev, {655: 3.0}, duration=MIN, pulse_hz=10.0, duty=50.0),
    )
    result = check(plan, dev, None, None, NOW)
    messages = [r.message for r in result.refusals if r.constraint == "capability"]
    assert len(messages) == 2
    assert "fluence target" in messages[0] and "pulse" in messages[1]


def test_a_channel_the_device_lacks_is_refused() -> None:
    from dataclasses import replace

    dev = device()
    st = step(dev, {655: 3.0})
    st = replace(st, setpoints=(*st.setpoints, replace(st.setpoints[0], channel=99)))
    result = check(make_plan(dev, st), dev, None, None, NOW)
    assert "unknown_channel" in constraints(result, "refuse")
    assert result.prediction is None


def test_a_plan_for_another_device_is_an_input_error() -> None:
    plan = make_plan(device(), step(device(), {655: 3.0}))
    with pytest.raises(PlanError):
        check(plan, device("laser-cap-678"), None, None, NOW)


# --- limits file ----------------------------------------------------------------------------


def test_limits_file_tightens_further_and_is_named_as_the_source() -> None:
    dev = device()
    lim = parse_limits(
        LIMITS_HEAD + 'max_irradiance = "2 mW/cm^2"\nmax_fluence_per_session = "2 J/cm^2"\n',
        source="clinic.toml",
    )
    plan = make_plan(dev, step(dev, {655: 3.0}))
    result = check(plan, dev, lim, None, NOW)
    tight = [r for r in result.reasons if r.source == "limits-file" and r.action == "tighten"]
    assert [r.constraint for r in tight] == ["irradiance_cap"]
    assert "clinic.toml" in tight[0].message
    assert result.plan.steps[0].setpoints[0].irradiance_mw_cm2 == 2.0
    refused = [r for r in result.refusals if r.source == "limits-file"]
    assert [r.constraint for r in refused] == ["session_fluence"]  # 2.99 J/cm² > 2
    assert result.limits is lim


def test_limits_file_lowers_the_temperature_thresholds_of_the_prediction() -> None:
    dev = device()
    plan = make_plan(dev, step(dev, {655: 3.0}, duration=25 * MIN))
    lim = parse_limits(LIMITS_HEAD + 'warn_temperature = "36 °C"\nabort_temperature = "38 °C"\n')
    result = check(plan, dev, lim, None, NOW)
    assert "thermal_warning" in constraints(result, "refuse")  # 36 - 0.5 = 35.5 °C


def test_a_protocol_can_never_loosen_a_limit() -> None:
    dev = device()
    proto = FakeProtocol(schedule=FakeSchedule(min_interval=1 * HOUR, max_sessions_per_week=40))
    plan = make_plan(dev, step(dev, {655: 3.0}), protocol=proto)
    recent = MemoryHistory([session(NOW - 2 * HOUR)])
    result = check(plan, dev, None, recent, NOW)
    (spacing,) = [r for r in result.refusals if r.constraint == "session_spacing"]
    assert spacing.limit == DEFAULT_LIMITS.min_interval_s  # 12 h, not the protocol's 1 h
    notes = {r.constraint: r for r in result.reasons if r.source == "schedule"}
    assert notes["min_interval"].limit == 12 * HOUR
    assert notes["sessions_per_week"].limit == DEFAULT_LIMITS.max_sessions_per_week


def test_a_protocol_cannot_allow_more_sessions_per_week_than_the_limit() -> None:
    dev = device()
    proto = FakeProtocol(schedule=FakeSchedule(max_sessions_per_week=40))
    plan = make_plan(dev, step(dev, {655: 3.0}), protocol=proto)
    ends = [NOW - (12.5 + 11 * k) * HOUR for k in range(14)]  # 14 in 7 days, last 12.5 h ago
    hist = MemoryHistory(session(e, {655: 0.1}) for e in ends)
    (reason,) = check(plan, dev, None, hist, NOW).refusals
    assert reason.constraint == "sessions_per_week"
    assert reason.limit == DEFAULT_LIMITS.max_sessions_per_week
    assert "default" in reason.message


# --- history ------------------------------------------------------------------------------------


def test_too_soon_after_the_last_session_names_the_interval_and_the_next_time() -> None:
    dev = device()
    proto = FakeProtocol(schedule=FakeSchedule(min_interval=36 * HOUR))
    plan = make_plan(dev, step(dev, {655: 3.0}), protocol=proto)
    end = NOW - 2 * MIN
    result = check(plan, dev, None, MemoryHistory([session(end)]), NOW, tz=UTC)
    assert not result.accepted
    (reason,) = result.refusals
    assert (reason.source, reason.constraint) == ("history", "session_spacing")
    assert "36 h" in reason.message and "the protocol's schedule" in reason.message
    assert "in 35 h 58 min" in reason.message
    allowed = datetime.fromtimestamp(end + 36 * HOUR, UTC).strftime("%Y-%m-%d %H:%M")
    assert allowed in reason.message
    assert result.next_allowed_at == pytest.approx(end + 36 * HOUR)
    with pytest.raises(PreflightRefused) as info:
        result.raise_if_refused()
    assert "in 35 h 58 min" in str(info.value)
    assert info.value.exit_code == 1
    assert info.value.next_allowed_at == result.next_allowed_at  # type: ignore[attr-defined]


def test_a_last_end_logged_in_the_future_is_said_so() -> None:
    dev = device()
    plan = make_plan(dev, step(dev, {655: 3.0}))
    (reason,) = check(plan, dev, None, MemoryHistory([session(NOW + 25 * MIN)]), NOW).refusals
    assert "logged as ending 25 min from now" in reason.message
    assert "in 12 h 25 min" in reason.message


def test_the_12_h_default_applies_when_the_protocol_asks_less() -> None:
    dev = device()
    plan = make_plan(dev, step(dev, {655: 3.0}))
    result = check(plan, dev, None, MemoryHistory([session(NOW - 8 * HOUR)]), NOW)
    (reason,) = result.refusals
    assert "12 h" in reason.message and "Theradome" in reason.message
    assert "in 4 h" in reason.message


def test_the_previous_sessions_protocol_interval_also_applies() -> None:
    dev = device()
    plan = make_plan(dev, step(dev, {655: 3.0}))
    hist = MemoryHistory([session(NOW - 20 * HOUR, min_interval_s=48 * HOUR)])
    (reason,) = check(plan, dev, None, hist, NOW).refusals
    assert "48 h" in reason.message and "previous session" in reason.message


def test_after_the_interval_the_session_is_allowed() -> None:
    dev = device()
    plan = make_plan(dev, step(dev, {655: 3.0}))
    hist = MemoryHistory([session(NOW - 12 * HOUR - 1)])
    assert check(plan, dev, None, hist, NOW).accepted


def test_sessions_per_week_from_the_protocol() -> None:
    dev = device()
    proto = FakeProtocol(schedule=FakeSchedule(max_sessions_per_week=3))
    plan = make_plan(dev, step(dev, {655: 3.0}), protocol=proto)
    ends = [NOW - 6 * DAY, NOW - 4 * DAY, NOW - 2 * DAY]
    result = check(plan, dev, None, MemoryHistory(session(e) for e in ends), NOW)
    (reason,) = result.refusals
    assert reason.constraint == "sessions_per_week"
    assert (reason.limit, reason.observed) == (3, 3)
    assert result.next_allowed_at == pytest.approx(ends[0] + 7 * DAY)  # the oldest leaves
    assert "in 24 h" in reason.message


def test_rolling_24_h_fluence_counts_history_and_says_when_it_fits() -> None:
    dev = device()
    plan = make_plan(dev, step(dev, {655: 3.0}))  # 4.485 J/cm²
    hist = MemoryHistory(
        [session(NOW - 23.5 * HOUR, {655: 9.0}), session(NOW - 12.5 * HOUR, {655: 9.0})]
    )
    result = check(plan, dev, None, hist, NOW)
    (reason,) = result.refusals
    assert reason.constraint == "fluence_24h" and reason.source == "history"
    assert reason.observed == pytest.approx(22.485) and reason.limit == 20.0
    # once the older session leaves the window, 9 + 4.485 fits
    assert result.next_allowed_at == pytest.approx(NOW + 30 * MIN, abs=1)
    assert "in 30 min" in reason.message
    # a session at 735 nm does not count against 655 nm
    other = make_plan(dev, step(dev, {735: 3.0}))
    assert "fluence_24h" not in constraints(check(other, dev, None, hist, NOW))


def test_rolling_7_day_fluence() -> None:
    dev = device()
    plan = make_plan(dev, step(dev, {655: 3.0}))
    hist = MemoryHistory(
        session(NOW - d * DAY, {655: 9.5}) for d in (6.5, 5.5, 4.5, 3.5, 2.5, 1.5, 1)
    )
    result = check(plan, dev, None, hist, NOW)
    (reason,) = result.refusals
    assert reason.constraint == "fluence_7d"
    assert reason.observed == pytest.approx(7 * 9.5 + 4.485)
    assert result.next_allowed_at == pytest.approx(NOW + 0.5 * DAY, abs=1)


def test_a_session_alone_above_a_rolling_cap_never_fits() -> None:
    dev = device()
    lim = parse_limits(LIMITS_HEAD + 'max_fluence_per_24h = "4 J/cm^2"\n')
    plan = make_plan(dev, step(dev, {655: 3.0}))
    result = check(plan, dev, lim, MemoryHistory(), NOW)
    (reason,) = result.refusals
    assert "this session alone is above it" in reason.message
    assert result.next_allowed_at is None


def test_without_history_the_checks_say_they_did_not_run() -> None:
    dev = device()
    plan = make_plan(dev, step(dev, {655: 3.0}))
    result = check(plan, dev, None, None, NOW)
    assert result.accepted
    assert "no_history" in constraints(result, "note")


# --- thermal -----------------------------------------------------------------------------------


def test_a_duration_phase_predicted_over_the_warning_is_refused_with_the_prediction() -> None:
    dev = device()
    plan = make_plan(dev, step(dev, {655: 10.0, 735: 10.0}, duration=8 * MIN))
    result = check(plan, dev, None, None, NOW, ambient_c=34.0, research_ok=True)
    (reason,) = result.refusals
    assert (reason.source, reason.constraint) == ("thermal", "thermal_warning")
    assert reason.limit == pytest.approx(40.5)
    assert "40.5 °C" in reason.message and "after 4 min" in reason.message
    assert result.prediction is not None and not result.prediction.ok


def test_the_same_dose_as_a_fluence_phase_at_34_C_is_accepted_and_derated() -> None:
    dev = device()
    st = step(dev, {655: 10.0, 735: 10.0}, fluence=4.0, max_duration=30 * MIN)
    hist = MemoryHistory()
    result = check(make_plan(dev, st), dev, None, hist, NOW, ambient_c=34.0, research_ok=True)
    assert result.accepted, result.refusals
    (note,) = [r for r in result.reasons if r.constraint == "derated_fluence_step"]
    assert note.action == "note" and "derated to" in note.message
    assert result.prediction is not None
    assert result.prediction.steps[0].reached_target


def test_a_fluence_phase_derating_cannot_finish_is_refused() -> None:
    dev = device()
    # 4.5 J/cm² per wavelength: 9 J/cm² in total, within the total-fluence limit
    st = step(dev, {655: 10.0, 735: 10.0}, fluence=4.5, max_duration=9 * MIN)
    result = check(make_plan(dev, st), dev, None, None, NOW, ambient_c=34.0, research_ok=True)
    assert constraints(result, "refuse") == ["fluence_max_duration"]


@pytest.mark.parametrize(
    ("ambient", "scalp"), [(float("nan"), None), (25.0, [36.0, float("nan"), 36.0, 36.0]),
                           (25.0, [150.0] * 4)]
)  # fmt: skip
def test_readings_that_are_not_temperatures_refuse_instead_of_passing(
    ambient: float, scalp: list[float] | None
) -> None:
    dev = device()
    plan = make_plan(dev, step(dev, {655: 3.0}))
    result = check(plan, dev, None, None, NOW, ambient_c=ambient, scalp_c=scalp)
    assert not result.accepted
    assert constraints(result, "refuse") == ["thermal_model"]
    assert result.prediction is None


def test_unphysical_thermal_constants_refuse() -> None:
    from dataclasses import replace

    base = device()
    zones = tuple(replace(z, g_contact_w_k=-1.0) for z in base.zones)
    dev = type(base)(replace(base.hello, zones=zones))
    result = check(make_plan(dev, step(dev, {655: 3.0})), dev, None, None, NOW)
    assert constraints(result, "refuse") == ["thermal_model"]


def test_offline_analysis_assumes_25_C_and_says_so() -> None:
    dev = device()
    plan = make_plan(dev, step(dev, {655: 3.0}))
    out = analyze(plan, dev, None, None, NOW)
    json.dumps(out)
    assert out["accepted"] is True
    assert any("25 °C" in a for a in out["assumptions"])
    assert "25 °C assumed" in out["thermal"]["start"]
    assert out["thermal"]["peak_c"] < 38.0
    assert out["limits"]["max_irradiance"]["source"] == "default"
    assert out["device"]["model"] == dev.model


def test_analyze_reports_history_totals_and_the_next_allowed_time() -> None:
    dev = device()
    proto = FakeProtocol(schedule=FakeSchedule(min_interval=36 * HOUR))
    plan = make_plan(dev, step(dev, {655: 3.0}), protocol=proto)
    hist = MemoryHistory([session(NOW - HOUR, {655: 4.5})])
    out = analyze(plan, dev, None, hist, NOW, ambient_c=25.0, scalp_c=[35.0] * 4, tz=UTC)
    json.dumps(out)
    assert out["accepted"] is False
    assert out["next_allowed"].endswith("(in 35 h)")
    assert out["history"]["fluence_24h_j_cm2"]["655"] == 4.5
    assert out["history"]["sessions_7d"] == 1
    assert "readings" in out["thermal"]["start"]


# --- the pipeline as a whole --------------------------------------------------------------------


def test_every_reason_is_reported_at_once_in_source_order() -> None:
    dev = device()
    proto = FakeProtocol(id="bad", research=True, schedule=FakeSchedule(min_interval=36 * HOUR))
    plan = make_plan(
        dev, step(dev, {655: 10.0, 735: 10.0}, duration=25 * MIN, pulse_hz=1.0, duty=50.0),
        protocol=proto,
    )  # fmt: skip
    lim = parse_limits(LIMITS_HEAD + 'max_irradiance = "9 mW/cm^2"\n', source="mine.toml")
    result = check(plan, dev, lim, MemoryHistory([session(NOW - HOUR)]), NOW, ambient_c=34.0)
    sources = [r.source for r in result.reasons]
    assert sources == sorted(sources, key=SOURCES.index)
    refused = {(r.source, r.constraint) for r in result.refusals}
    assert {
        ("default", "research_flag"),
        ("default", "pulse_range"),
        ("device", "pulse_range"),
        ("history", "session_spacing"),
    } <= refused
    assert ("limits-file", "irradiance_cap") in {
        (r.source, r.constraint) for r in result.tightenings
    }
    with pytest.raises(PreflightRefused) as info:
        result.raise_if_refused()
    text = str(info.value)
    for r in result.refusals:
        assert r.message in text
    assert "Nothing was sent to the device." in text
    as_dict = info.value.to_dict()
    assert len(as_dict["reasons"]) == len(result.reasons)


def test_schedule_rules_are_read_from_a_real_protocol() -> None:
    from lllt.protocol import loads_protocol

    proto = loads_protocol(
        'format = "lllt-protocol/1"\nid = "x"\nname = "x"\nresearch = true\n'
        '[schedule]\nmin_interval = "36 h"\nmax_sessions_per_week = 4\n'
        '[[phases]]\nname = "a"\nduration = "1 min"\nemit = { "655nm" = "1 mW/cm^2" }\n'
    )
    rules = ScheduleRules.from_protocol(proto)
    assert rules == ScheduleRules("x", 36 * HOUR, 4, True)


def test_shipped_protocols_pass_offline_on_their_profiles() -> None:
    from pathlib import Path

    from lllt.plan import compile
    from lllt.protocol import load_protocol

    files = sorted((Path(__file__).parents[2] / "protocols").glob("*.toml"))
    if not files:
        pytest.skip("no shipped protocols in this checkout")
    for path in files:
        proto = load_protocol(path)
        profile = proto.meta.profile if proto.meta and proto.meta.profile else "reference-cap"
        dev = device(profile)
        result = check(compile(proto, dev), dev, None, MemoryHistory(), NOW, research_ok=True)
        assert result.accepted, (path.name, result.refusals)
        assert result.tightenings == (), path.name


def test_format_when_rounds_up_to_the_minute() -> None:
    t = NOW + 11 * HOUR + 57 * MIN + 10  # 11 h 57 min 10 s from now
    text = format_when(t, NOW, UTC)
    assert text.endswith("(in 11 h 58 min)")
    shown = datetime.fromtimestamp(NOW + 11 * HOUR + 58 * MIN, UTC).strftime("%H:%M")
    assert shown in text


def test_fluence_step_kind_constant_is_the_wire_one() -> None:
    # the pipeline keys on wire.StepKind; a plan with another kind would skip fluence rules
    dev = device()
    assert step(dev, {655: 1.0}, fluence=1.0).kind is wire.StepKind.FLUENCE


# --- when the next session is allowed, and why ---------------------------------------------


def test_next_session_names_the_rule_that_holds_it_back() -> None:
    hour = 3600.0
    rules = ScheduleRules(min_interval_s=36 * hour, max_sessions_per_week=3)
    # nothing yet: allowed now
    nxt = preflight.next_session(MemoryHistory(), DEFAULT_LIMITS, NOW, rules)
    assert (nxt.at, nxt.bound_by, nxt.sessions_7d) == (NOW, "", 0)
    # one session 2 h ago: the protocol's 36 h interval (longer than the default 12 h)
    nxt = preflight.next_session(
        MemoryHistory([session(NOW - 2 * hour)]), DEFAULT_LIMITS, NOW, rules
    )
    assert nxt.bound_by == "interval"
    assert nxt.interval_s == 36 * hour
    assert nxt.at == pytest.approx(NOW + 34 * hour)
    # three sessions in the week, the last 40 h ago: the weekly count holds it back longer
    ends = [NOW - 6 * 24 * hour, NOW - 4 * 24 * hour, NOW - 40 * hour]
    nxt = preflight.next_session(
        MemoryHistory([session(e) for e in ends]), DEFAULT_LIMITS, NOW, rules
    )
    assert nxt.bound_by == "per_week"
    assert (nxt.per_week, nxt.sessions_7d) == (3, 3)
    assert nxt.at == pytest.approx(ends[0] + 7 * 24 * hour)
    assert nxt.at == preflight.next_session_allowed_at(
        MemoryHistory([session(e) for e in ends]), DEFAULT_LIMITS, NOW, rules
    )

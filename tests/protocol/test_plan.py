"""plan.compile: phases to device steps, refusals naming the numbers, and DESIGN §5's dose.

The dose properties compare lllt's arithmetic with independent computations: the explicit
pulse train (each on-window integrated under the ramp envelope) and a numeric integration
of the envelope, not with the formulas of lllt.plan.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from lllt import wire
from lllt.errors import PlanError
from lllt.info import DeviceInfo
from lllt.plan import analyze, compile
from lllt.protocol import Phase, Protocol

REF = DeviceInfo.for_profile("reference-cap")
HELMET = DeviceInfo.for_profile("led-helmet-rgb")


def protocol(*phases: dict, **top: object) -> Protocol:
    return Protocol(id="t", name="t", phases=[Phase(**p) for p in phases], **top)


def device_with(info: DeviceInfo, **changes: object) -> DeviceInfo:
    """A variant of a device: HELLO fields or (``limits__x``) hard limits replaced."""
    hello = info.hello
    limits = {k.split("__")[1]: v for k, v in changes.items() if k.startswith("limits__")}
    rest = {k: v for k, v in changes.items() if not k.startswith("limits__")}
    if limits:
        rest["limits"] = dataclasses.replace(hello.limits, **limits)
    return DeviceInfo(dataclasses.replace(hello, **rest))


# --- independent dose computations ----------------------------------------------------


def envelope_integral(a: np.ndarray, b: np.ndarray, ramp: float) -> np.ndarray:
    """∫ min(t/ramp, 1) dt over [a, b] (vectorised), by splitting at the ramp's end."""
    if ramp == 0:
        return b - a
    c = np.clip(ramp, a, b)
    return (c**2 - a**2) / (2 * ramp) + (b - c)


def pulse_train_fluence(irr: float, duty: float, hz: float, duration: float, ramp: float) -> float:
    """J/cm² of the explicit pulse train: on for duty/hz at the start of every period."""
    period = 1.0 / hz
    starts = np.arange(0.0, duration, period)
    ends = np.minimum(starts + duty / 100.0 * period, duration)
    return float(irr * envelope_integral(starts, ends, ramp).sum() / 1000.0)


def midpoint_fluence(irr: float, duty: float, duration: float, ramp: float, n: int = 200_000):
    """J/cm² of the average (duty-weighted) output, by the midpoint rule."""
    # the ramp and the flat part are integrated on grids of their own, so that a ramp
    # shorter than one cell of a single grid is not lost between two samples
    t = (np.arange(n) + 0.5) * ramp / n
    ramped = float((t / ramp).sum() * ramp / n) if ramp > 0 else 0.0
    flat = (duration - ramp) * float(np.ones(n).sum()) / n
    return float(irr * duty / 100.0 * (ramped + flat) / 1000.0)


# --- mapping ---------------------------------------------------------------------------


def test_a_wavelength_drives_every_channel_of_it_in_the_selected_zones() -> None:
    plan = compile(
        protocol(
            {"name": "a", "duration": "10 min", "emit": {"655nm": "3 mW/cm^2"}},
            {
                "name": "b",
                "duration": "5 min",
                "emit": {"735nm": "2 mW/cm^2"},
                "zones": ["front", "crown"],
            },
        ),
        REF,
    )
    a, b = plan.steps
    assert [sp.channel for sp in a.setpoints] == [0, 2, 4, 6]  # the 655 nm channels
    assert [sp.channel for sp in b.setpoints] == [1, 5]  # 735 nm in zones 0 and 2
    assert all(sp.irradiance_mw_cm2 == 3.0 for sp in a.setpoints)
    assert a.kind == b.kind == wire.StepKind.DURATION
    assert (a.expected_duration_s, b.expected_duration_s) == (600.0, 300.0)
    assert a.pulse_hz == 0.0 and a.duty_pct == 100.0


def test_a_channel_key_drives_that_channel_only() -> None:
    plan = compile(protocol({"name": "a", "duration": "1 min", "emit": {"ch3": "4 mW/cm^2"}}), REF)
    (sp,) = plan.steps[0].setpoints
    assert (sp.channel, sp.wavelength_nm, sp.zone, sp.irradiance_mw_cm2) == (3, 735, 1, 4.0)


def test_a_fluence_phase_gives_every_channel_the_target_and_its_bound() -> None:
    plan = compile(
        protocol(
            {
                "name": "a",
                "fluence": "4 J/cm^2",
                "max_duration": "40 min",
                "ramp": "10 s",
                "emit": {"655nm": "5 mW/cm^2", "735nm": "4 mW/cm^2"},
                "pulse": {"frequency": "10 Hz", "duty": "50 %"},
            }
        ),
        REF,
    )
    (step,) = plan.steps
    assert step.kind == wire.StepKind.FLUENCE
    assert {sp.fluence_target_j_cm2 for sp in step.setpoints} == {4.0}
    assert step.max_duration_s == 2400.0
    # the slowest channel: 4 J/cm² at 4 mW/cm² x 50 % = 2 mW/cm² average, plus half the ramp
    assert step.expected_duration_s == pytest.approx(4.0 * 1000 / 2.0 + 5.0)
    assert plan.fluence_by_wavelength() == {655: 4.0, 735: 4.0}  # one each, never summed


def test_without_max_duration_a_fluence_phase_may_run_one_and_a_half_times_longer() -> None:
    phase = Phase(name="a", fluence="3 J/cm^2", emit={"655nm": "5 mW/cm^2"})
    assert phase.expected_duration_s == pytest.approx(600.0)
    assert phase.max_duration_s == pytest.approx(900.0)
    assert compile(protocol(phase.model_dump()), REF).steps[0].max_duration_s == pytest.approx(900)


def test_fluence_per_wavelength_is_the_most_dosed_channel_not_a_sum() -> None:
    plan = compile(
        protocol(
            {"name": "a", "duration": "10 min", "emit": {"655nm": "3 mW/cm^2"}, "zones": ["front"]},
            {"name": "b", "duration": "10 min", "emit": {"655nm": "5 mW/cm^2"}, "zones": ["top"]},
            {"name": "c", "duration": "10 min", "emit": {"735nm": "1 mW/cm^2"}},
        ),
        REF,
    )
    by_channel = plan.fluence_by_channel()
    assert by_channel[0] == pytest.approx(1.8)  # front: 3 mW/cm² x 600 s
    assert by_channel[2] == pytest.approx(3.0)  # top: 5 mW/cm² x 600 s
    assert plan.fluence_by_wavelength() == pytest.approx({655: 3.0, 735: 0.6})


def test_analysis_with_and_without_a_device_agree_for_wavelength_keys() -> None:
    p = protocol(
        {
            "name": "a",
            "duration": "12 min",
            "ramp": "30 s",
            "emit": {"630nm": "2 mW/cm^2", "660nm": "1.5 mW/cm^2"},
            "pulse": {"frequency": "40 Hz", "duty": "25 %"},
        },
        {"name": "b", "fluence": "1 J/cm^2", "emit": {"650nm": "3 mW/cm^2"}},
    )
    offline, online = analyze(p), analyze(p, HELMET)
    assert online["valid"] and online["errors"] == []
    for key in ("fluence_j_cm2", "total_duration_s", "max_duration_s"):
        assert online[key] == pytest.approx(offline[key])
    for a, b in zip(offline["phases"], online["phases"], strict=True):
        assert a["fluence_j_cm2"] == pytest.approx(b["fluence_j_cm2"])


def test_a_compiled_plan_encodes_for_the_wire() -> None:
    p = protocol(
        {"name": "a", "duration": "25 min", "ramp": "10 s", "emit": {"655nm": "3 mW/cm^2"}},
        {"name": "b", "fluence": "1 J/cm^2", "emit": {"ch1": "2.5 mW/cm^2"}},
    )
    msg = compile(p, REF).to_wire(7)
    again = wire.UploadPlan.parse(msg.payload())
    assert again == msg
    assert [s.kind for s in again.steps] == [wire.StepKind.DURATION, wire.StepKind.FLUENCE]
    assert again.steps[0].duration_ms == 1_500_000 and again.steps[0].ramp_ms == 10_000
    assert again.steps[1].setpoints == (wire.ChannelSetpoint(1, 2.5, 1.0),)


# --- refusals ----------------------------------------------------------------------------


def refusal(p: Protocol, device: DeviceInfo = REF) -> list[tuple[str, str]]:
    with pytest.raises(PlanError) as info:
        compile(p, device)
    return [(fp.field, fp.message) for fp in info.value.problems]


def test_refuses_a_wavelength_the_device_lacks() -> None:
    ((field, message),) = refusal(
        protocol({"name": "a", "duration": "1 min", "emit": {"810nm": "3 mW/cm^2"}})
    )
    assert field == "phases[0].emit.810nm"
    assert "phase 'a'" in message and "810 nm" in message and "655 nm, 735 nm" in message


def test_refuses_a_zone_or_channel_the_device_lacks() -> None:
    problems = refusal(
        protocol(
            {"name": "a", "duration": "1 min", "emit": {"655nm": "3 mW/cm^2"}, "zones": ["nape"]},
            {"name": "b", "duration": "1 min", "emit": {"ch9": "3 mW/cm^2"}},
            {"name": "c", "duration": "1 min", "emit": {"ch0": "3 mW/cm^2"}, "zones": ["back"]},
        )
    )
    fields = [f for f, _ in problems]
    assert fields == ["phases[0].zones[0]", "phases[1].emit.ch9", "phases[2].emit.ch0"]
    assert "'nape'" in problems[0][1] and "front, top, crown, back" in problems[0][1]
    assert "zone 'front'" in problems[2][1]


def test_refuses_irradiance_above_a_channels_calibrated_maximum_naming_the_numbers() -> None:
    ((field, message),) = refusal(
        protocol({"name": "a", "duration": "1 min", "emit": {"650nm": "6.5 mW/cm^2"}}), HELMET
    )
    assert field == "phases[0].emit.650nm"
    assert "6.5 mW/cm²" in message and "maximum of 6 mW/cm²" in message
    assert "ch1, ch4, ch7, ch10" in message


def test_the_calibrated_maximum_itself_is_accepted() -> None:
    compile(protocol({"name": "a", "duration": "1 min", "emit": {"650nm": "6 mW/cm^2"}}), HELMET)


def test_refuses_pulsing_without_the_capability_or_outside_the_device_range() -> None:
    pulsed = protocol(
        {
            "name": "a",
            "duration": "1 min",
            "emit": {"655nm": "3 mW/cm^2"},
            "pulse": {"frequency": "5 kHz", "duty": "50 %"},
        }
    )
    no_pulse = device_with(REF, capabilities=REF.hello.capabilities & ~wire.Capability.PULSE)
    ((field, message),) = refusal(pulsed, no_pulse)
    assert field == "phases[0].pulse" and "cannot pulse" in message
    slow = device_with(REF, limits__max_pulse_hz=1000.0)
    ((field, message),) = refusal(pulsed, slow)
    assert field == "phases[0].pulse.frequency" and "5000 Hz" in message and "2 to 1000" in message


def test_refuses_fluence_targets_without_the_capability() -> None:
    caps = REF.hello.capabilities & ~wire.Capability.FLUENCE_TARGET
    ((field, _),) = refusal(
        protocol({"name": "a", "fluence": "1 J/cm^2", "emit": {"655nm": "3 mW/cm^2"}}),
        device_with(REF, capabilities=caps),
    )
    assert field == "phases[0].fluence"


def test_refuses_more_than_the_devices_session_and_fluence_limits() -> None:
    ((field, message),) = refusal(
        protocol({"name": "a", "fluence": "2 J/cm^2", "emit": {"678nm": "1 mW/cm^2"}}),
        DeviceInfo.for_profile("laser-cap-678"),  # 20 min sessions at most
    )
    # 2000 s + no ramp, bounded at 1.5 x = 3000 s > 1200 s
    assert field == "phases" and "3000 s" in message and "1200 s" in message
    ((field, message),) = refusal(
        protocol(
            {"name": "a", "duration": "20 min", "emit": {"655nm": "10 mW/cm^2"}},
            {"name": "b", "duration": "10 min", "emit": {"655nm": "10 mW/cm^2"}, "zones": ["top"]},
        )
    )
    # top gets 12 + 6 = 18 J/cm², the other zones 12: only ch2 is over 15
    assert field == "phases" and "ch2 (655 nm)" in message and "18 J/cm²" in message


def test_plan_error_message_lists_every_problem() -> None:
    p = protocol(
        {"name": "a", "duration": "1 min", "emit": {"810nm": "3 mW/cm^2", "655nm": "11 mW/cm^2"}}
    )
    with pytest.raises(PlanError) as info:
        compile(p, REF)
    assert info.value.exit_code == 2
    text = str(info.value)
    assert "810 nm" in text and "11 mW/cm²" in text and "cannot run protocol 't'" in text


# --- dose properties ----------------------------------------------------------------------

irradiance = st.floats(min_value=0.05, max_value=10.0)
duty = st.floats(min_value=1.0, max_value=100.0)
ramp_fractions = st.one_of(st.just(0.0), st.floats(min_value=1e-6, max_value=1.0))


@settings(max_examples=60, deadline=None)
@given(
    irr=irradiance,
    duty_pct=duty,
    hz=st.floats(min_value=2.0, max_value=40.0),
    duration=st.floats(min_value=1.0, max_value=300.0),
    ramp_fraction=ramp_fractions,
)
def test_pulsed_ramped_fluence_matches_the_explicit_pulse_train(
    irr: float, duty_pct: float, hz: float, duration: float, ramp_fraction: float
) -> None:
    ramp = duration * ramp_fraction
    p = protocol(
        {
            "name": "a",
            "duration": f"{duration!r} s",
            "ramp": f"{ramp!r} s",
            "emit": {"655nm": f"{irr!r} mW/cm^2"},
            "pulse": {"frequency": f"{hz!r} Hz", "duty": f"{duty_pct!r} %"},
        }
    )
    planned = compile(p, REF).fluence_by_wavelength()[655]
    train = pulse_train_fluence(irr, duty_pct, hz, duration, ramp)
    # the train differs from the average by less than the energy of one period: the last,
    # partial period and the ramp's slope within each period
    tolerance = 1.5 * irr / hz / 1000.0 + 1e-12
    assert abs(planned - train) <= tolerance, (planned, train, tolerance)


@settings(max_examples=100, deadline=None)
@given(
    irr=irradiance,
    duty_pct=duty,
    duration=st.floats(min_value=1.0, max_value=1400.0),
    ramp_fraction=ramp_fractions,
)
def test_ramped_fluence_matches_numeric_integration(
    irr: float, duty_pct: float, duration: float, ramp_fraction: float
) -> None:
    ramp = duration * ramp_fraction
    phase = Phase(
        name="a",
        duration=f"{duration!r} s",
        ramp=f"{ramp!r} s",
        emit={"655nm": f"{irr!r} mW/cm^2"},
        pulse={"frequency": "100 Hz", "duty": f"{duty_pct!r} %"},
    )
    expected = midpoint_fluence(irr, duty_pct, duration, ramp)
    assert phase.fluence_at(irr) == pytest.approx(expected, rel=1e-6, abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(
    fluence=st.floats(min_value=0.01, max_value=10.0),
    irr=st.floats(min_value=0.5, max_value=10.0),
    duty_pct=duty,
    ramp=st.floats(min_value=0.0, max_value=60.0),
)
def test_fluence_target_and_duration_round_trip(
    fluence: float, irr: float, duty_pct: float, ramp: float
) -> None:
    emit = {"655nm": f"{irr!r} mW/cm^2"}
    pulse = {"frequency": "10 Hz", "duty": f"{duty_pct!r} %"}
    average = irr * duty_pct / 100.0 / 1000.0  # J/cm² per s at full output
    assume(1.5 * (fluence / average + ramp / 2) <= 3600)  # the reference cap: 1 h at most
    assume(ramp <= fluence / average)  # a ramp must end before the target is reached
    target = protocol(
        {
            "name": "a",
            "fluence": f"{fluence!r} J/cm^2",
            "ramp": f"{ramp!r} s",
            "emit": emit,
            "pulse": pulse,
        }
    )
    duration = compile(target, REF).steps[0].expected_duration_s
    # independently: the envelope integrated up to that time delivers the target
    reached = float(average * 1000.0 * envelope_integral(np.array(0.0), np.array(duration), ramp))
    assert math.isclose(reached / 1000.0, fluence, rel_tol=1e-9)
    # and a duration phase of that length plans the same fluence
    timed = protocol(
        {
            "name": "a",
            "duration": f"{duration!r} s",
            "ramp": f"{ramp!r} s",
            "emit": emit,
            "pulse": pulse,
        }
    )
    assert compile(timed, REF).fluence_by_wavelength()[655] == pytest.approx(fluence, rel=1e-9)

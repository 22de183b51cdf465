"""The thermal prediction: the two-node model solved exactly, derating as the monitor does."""

from __future__ import annotations

import pytest

from lllt import wire
from lllt.safety.limits import DeratePolicy
from lllt.safety.monitor import ActionKind, RuntimeMonitor
from lllt.safety.thermal import ZoneModel, predict

from ._support import MIN, device, frame, make_plan, on_channels, step

NO_DERATE = DeratePolicy(floor_permille=1000)  # the model without the monitor's help


def _euler(zone: wire.ZoneInfo, ambient: float, qb: float, qs: float, tb: float, ts: float,
           seconds: float, h: float = 0.01) -> tuple[float, float]:  # fmt: skip
    """The model's equations integrated naively, as an independent reference."""
    for _ in range(round(seconds / h)):
        dtb = (qb + zone.g_contact_w_k * (ts - tb) + zone.g_ambient_w_k * (ambient - tb)) / (
            zone.c_board_j_k
        )
        dts = (qs + zone.g_contact_w_k * (tb - ts) + zone.g_tissue_w_k * (zone.t_core_c - ts)) / (
            zone.c_scalp_j_k
        )
        tb, ts = tb + h * dtb, ts + h * dts
    return tb, ts


def test_steady_state_balances_the_equations() -> None:
    z = device().zones[0]
    m = ZoneModel(z, 25.0)
    for qb, qs in ((0.0, 0.0), (1.12, 0.6), (2.24, 1.2)):
        tb, ts = m.steady_state(qb, qs)
        board = qb + z.g_contact_w_k * (ts - tb) + z.g_ambient_w_k * (25.0 - tb)
        scalp = qs + z.g_contact_w_k * (tb - ts) + z.g_tissue_w_k * (z.t_core_c - ts)
        assert board == pytest.approx(0.0, abs=1e-9)
        assert scalp == pytest.approx(0.0, abs=1e-9)


def test_exact_step_matches_a_fine_numerical_integration() -> None:
    z = device().zones[0]
    m = ZoneModel(z, 30.0)
    tb0, ts0 = 33.0, 35.0
    qb, qs = 1.5, 0.8
    xb, xs = m.steady_state(qb, qs)
    p11, p12, p21, p22 = m.phi(60.0)
    tb = xb + p11 * (tb0 - xb) + p12 * (ts0 - xs)
    ts = xs + p21 * (tb0 - xb) + p22 * (ts0 - xs)
    rb, rs = _euler(z, 30.0, qb, qs, tb0, ts0, 60.0)
    assert tb == pytest.approx(rb, abs=0.01)
    assert ts == pytest.approx(rs, abs=0.01)


def test_prediction_of_a_plan_matches_numerical_integration() -> None:
    dev = device()
    plan = make_plan(dev, step(dev, {655: 6.0}, duration=10 * MIN, ramp=0.0))
    pred = predict(plan, ambient_c=25.0)
    z = dev.zones[0]
    ch = dev.channels[0]
    m = ZoneModel(z, 25.0)
    tb, ts = m.steady_state()
    _rb, rs = _euler(z, 25.0, ch.heat_board_w_per_mw_cm2 * 6, ch.heat_scalp_w_per_mw_cm2 * 6,
                    tb, ts, 600.0, h=0.05)  # fmt: skip
    assert pred.scalp_c[0][-1] == pytest.approx(rs, abs=0.02)
    assert pred.times_s[-1] == pytest.approx(600.0)


def test_reference_cap_behaves_as_design_section_9_says() -> None:
    dev = device()
    # 3 mW/cm² on 655 nm in 25 °C ambient settles below 38 °C
    low = predict(make_plan(dev, step(dev, {655: 3.0}, duration=60 * MIN)), ambient_c=25.0)
    assert low.peak_c < 38.0 and low.ok
    # full output on both wavelengths: past 41 °C within 10 min, 43 °C within 20 min
    full = make_plan(dev, step(dev, {655: 10.0, 735: 10.0}, duration=20 * MIN))
    pred = predict(full, ambient_c=25.0, derate=NO_DERATE)
    temps = pred.scalp_c[0]
    t41 = next(t for t, v in zip(pred.times_s, temps, strict=True) if v >= 41.0)
    t43 = next(t for t, v in zip(pred.times_s, temps, strict=True) if v >= 43.0)
    assert t41 <= 10 * MIN
    assert t43 <= 20 * MIN


def test_without_readings_the_start_is_the_idle_steady_state_at_25_C() -> None:
    dev = device()
    pred = predict(make_plan(dev, step(dev, {655: 3.0})))
    assert pred.ambient_c == 25.0
    idle = ZoneModel(dev.zones[0], 25.0).steady_state()[1]
    assert pred.zones[0].start_c == pytest.approx(idle)
    assert "25 °C assumed" in pred.start_source
    assert "idle steady state" in pred.start_source


def test_readings_set_the_start_and_a_warm_scalp_peaks_higher() -> None:
    dev = device()
    plan = make_plan(dev, step(dev, {655: 3.0}, duration=5 * MIN))
    cool = predict(plan, ambient_c=25.0)
    warm = predict(plan, ambient_c=25.0, scalp_c=[38.0, None, 38.0, 38.0])
    assert warm.zones[0].start_c == 38.0
    assert warm.zones[1].start_c == pytest.approx(cool.zones[1].start_c)
    assert warm.zones[0].peak_c > cool.zones[0].peak_c
    assert "readings" in warm.start_source


def test_duration_step_over_the_warning_is_a_problem() -> None:
    dev = device()
    plan = make_plan(dev, step(dev, {655: 10.0, 735: 10.0}, duration=8 * MIN))
    pred = predict(plan, ambient_c=34.0)
    assert not pred.ok
    assert [p.constraint for p in pred.problems] == ["thermal_warning"]
    assert pred.steps[0].warn_crossed_at_s is not None


def test_fluence_step_at_34_C_is_derated_and_still_reaches_its_target() -> None:
    dev = device()
    plan = make_plan(dev, step(dev, {655: 10.0, 735: 10.0}, fluence=4.0, max_duration=30 * MIN))
    pred = predict(plan, ambient_c=34.0)
    s = pred.steps[0]
    assert pred.ok, pred.problems
    assert s.derated and s.min_permille < 1000
    assert s.reached_target
    assert s.fluence_j_cm2 == {655: pytest.approx(4.0), 735: pytest.approx(4.0)}
    assert s.duration_s > s.nominal_s  # derating made it run longer, not under-dose
    assert pred.peak_c < pred.thresholds.abort_c - pred.abort_margin_c


def test_fluence_step_that_cannot_finish_within_its_maximum_is_a_problem() -> None:
    dev = device()
    plan = make_plan(dev, step(dev, {655: 10.0, 735: 10.0}, fluence=6.0, max_duration=12 * MIN))
    pred = predict(plan, ambient_c=34.0)
    assert [p.constraint for p in pred.problems] == ["fluence_max_duration"]
    assert not pred.steps[0].reached_target
    assert pred.steps[0].duration_s == pytest.approx(12 * MIN)


def test_a_hot_start_that_derating_cannot_save_is_a_problem() -> None:
    dev = device()
    plan = make_plan(dev, step(dev, {655: 10.0, 735: 10.0}, fluence=4.0, max_duration=60 * MIN))
    pred = predict(plan, ambient_c=34.0, scalp_c=[42.2] * 4)
    assert "thermal_abort" in [p.constraint for p in pred.problems]


def test_derating_carried_into_a_duration_step_is_a_problem() -> None:
    dev = device()
    plan = make_plan(
        dev,
        step(dev, {655: 10.0, 735: 10.0}, fluence=4.0, max_duration=40 * MIN, name="boost"),
        step(dev, {655: 1.0}, duration=5 * MIN, name="tail"),
    )
    pred = predict(plan, ambient_c=34.0)
    assert [p.constraint for p in pred.problems] == ["derated_duration_step"]
    assert pred.steps[1].derated


def test_identical_zones_share_one_simulation_but_different_ones_do_not() -> None:
    dev = device()
    both = make_plan(dev, step(dev, {655: 5.0}))
    pred = predict(both)
    assert len({z.peak_c for z in pred.zones}) == 1
    # drive only the front zone's channels: the other zones stay at rest
    front = step(dev, {655: 5.0})
    front = type(front)(**{**{f: getattr(front, f) for f in front.__dataclass_fields__},
                           "setpoints": front.setpoints[:1]})  # fmt: skip
    pred = predict(make_plan(dev, front))
    assert pred.zones[0].peak_c > pred.zones[1].peak_c + 1.0
    assert pred.zones[1].peak_c == pytest.approx(pred.zones[1].start_c, abs=1e-6)


def test_prediction_derates_when_the_monitor_would() -> None:
    """Feed the predicted temperatures to the monitor: it derates at the same moments."""
    dev = device()
    st = step(dev, {655: 10.0, 735: 10.0}, fluence=4.0, max_duration=30 * MIN, ramp=0.0)
    plan = make_plan(dev, st)
    pred = predict(plan, ambient_c=34.0)
    mon = RuntimeMonitor(plan, plan_id=7)
    factor = 1.0
    host_permille = [1000]
    sp = on_channels(dev, st)
    fluence = 0.0  # what an exact device counter shows for this output
    prev_t, prev_out = 0.0, 0.0
    for t, temp in zip(pred.times_s[1:], pred.scalp_c[0][1:], strict=True):
        scaled = tuple(v * factor for v in sp)
        fluence += (prev_out + max(scaled)) / 2 * (t - prev_t) / 1000
        prev_t, prev_out = t, max(scaled)
        f = frame(dev, round(t * 1000), setpoint=scaled, temperature=temp, fluence=fluence)
        action = mon.on_telemetry(f)
        assert action.kind in (ActionKind.CONTINUE, ActionKind.DERATE), action
        if action.kind is ActionKind.DERATE:
            assert action.permille is not None
            factor = action.permille / 1000
        host_permille.append(mon.permille)
    assert host_permille == list(pred.permille)


def test_to_dict_is_thinned_and_json_friendly() -> None:
    import json

    dev = device()
    pred = predict(make_plan(dev, step(dev, {655: 3.0})))
    d = pred.to_dict(every_s=60)
    json.dumps(d)
    assert len(d["trajectory"]["t_s"]) == 26  # 0..25 min, one per minute
    assert set(d["trajectory"]["scalp_c"]) == {"front", "top", "crown", "back"}
    assert d["ok"] is True

"""The runtime monitor: every rule on synthetic telemetry, plus a whole nominal session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lllt import wire
from lllt.errors import DeviceFault, LinkLost, SafetyAbort
from lllt.plan import SessionPlan
from lllt.safety.limits import DEFAULT_DERATE, parse_limits
from lllt.safety.monitor import CONTINUE, ActionKind, MonitorAction, RuntimeMonitor

from ._support import MIN, device, frame, make_plan, on_channels, step

DEV = device()
ST = step(DEV, {655: 3.0}, duration=25 * MIN, ramp=10.0)
PLAN = make_plan(DEV, ST)
SP = on_channels(DEV, ST)  # 3.0 on the 655 nm channels, 0 on the 735 nm ones
F = wire.TelemetryFlag


def monitor(plan: SessionPlan = PLAN, **kw: object) -> RuntimeMonitor:
    return RuntimeMonitor(plan, plan_id=7, **kw)  # type: ignore[arg-type]


class Cap:
    """An ideal cap for ``steady`` runs: it applies each DERATE at once, counts exactly."""

    def __init__(self) -> None:
        self.factor = 1.0
        self.fluence = 0.0  # of each 655 nm channel
        self.last_ms: int | None = None

    def frame(self, t: int, **kw: object) -> wire.Telemetry:
        if self.last_ms is not None:
            self.fluence += 3.0 * self.factor * (t - self.last_ms) / 1e6
        self.last_ms = t
        sp = tuple(v * self.factor for v in SP)
        fl = tuple(self.fluence if v else 0.0 for v in SP)
        return frame(DEV, t, setpoint=sp, fluence=fl, **kw)  # type: ignore[arg-type]


def steady(
    mon: RuntimeMonitor, start_ms: int, end_ms: int, cap: Cap | None = None, **kw: object
) -> list[MonitorAction]:
    """Frames every 100 ms from an ideal cap that obeys derates; returns the non-continues."""
    cap = cap or Cap()
    out = []
    for t in range(start_ms, end_ms, 100):
        a = mon.on_telemetry(cap.frame(t, **kw))
        if a.kind is ActionKind.DERATE and a.permille is not None:
            cap.factor = a.permille / 1000
        if not a.is_continue:
            out.append(a)
    return out


def session_frames(
    plan: SessionPlan, *, period_ms: int = 100, temperature: float = 36.0
) -> Iterator[wire.Telemetry]:
    """A whole session as an ideal device reports it: output = setpoint, exact counters."""
    t0 = 0.0
    n = len(DEV.channels)
    done = [0.0] * n  # fluence of finished steps
    for index, st in enumerate(plan.steps):
        sp_full = on_channels(DEV, st)
        duty = st.duty_pct / 100
        length = st.expected_duration_s
        k = 0
        while True:
            t = k * period_ms / 1000
            if t > length + 1e-9:
                break
            r = min(1.0, t / st.ramp_s) if st.ramp_s > 0 else 1.0
            on = (
                t
                if st.ramp_s == 0
                else (t * t / (2 * st.ramp_s) if t < st.ramp_s else t - st.ramp_s / 2)
            )
            sp = tuple(v * r for v in sp_full)
            fl = tuple(done[i] + sp_full[i] * duty * on / 1000 for i in range(n))
            yield frame(DEV, round((t0 + t) * 1000), step=index, setpoint=sp, fluence=fl,
                        temperature=temperature, elapsed_ms=round((t0 + t) * 1000))  # fmt: skip
            k += 1
        for i in range(n):
            done[i] += sp_full[i] * duty * (length - st.ramp_s / 2) / 1000
        t0 += length


# --- a nominal session ------------------------------------------------------------------


def test_a_whole_nominal_session_passes_and_the_host_integral_matches() -> None:
    mon = monitor()
    last = None
    for f in session_frames(PLAN):
        action = mon.on_telemetry(f)
        assert action is CONTINUE, action
        last = f
    assert last is not None and mon.frames == 15001
    for host, dev in zip(mon.host_fluence, last.fluence, strict=True):
        assert host == pytest.approx(dev, abs=1e-6)
    assert mon.permille == 1000 and mon.first_abort is None


def test_a_pulsed_two_step_session_passes() -> None:
    plan = make_plan(
        DEV,
        step(DEV, {655: 4.0, 735: 2.0}, duration=2 * MIN, ramp=5.0, pulse_hz=10.0, duty=50.0),
        step(DEV, {735: 5.0}, duration=3 * MIN, ramp=0.0),
    )
    mon = monitor(plan)
    assert all(mon.on_telemetry(f) is CONTINUE for f in session_frames(plan))


# --- temperature ----------------------------------------------------------------------------


def test_warning_derates_in_steps_while_hot_and_never_raises_again() -> None:
    mon, cap = monitor(), Cap()
    assert mon.thresholds.warn_c == pytest.approx(40.5)  # 41 °C − 0.5 °C uncertainty
    assert steady(mon, 0, 5000, cap, temperature=40.4) == []
    hot = steady(mon, 5000, 35_000, cap, temperature=[40.5, 36, 36, 36])
    assert [a.kind for a in hot] == [ActionKind.DERATE] * 3  # at 5 s, 15 s, 25 s
    assert [a.permille for a in hot] == [900, 810, 729]
    assert hot[0].zone == DEV.zones[0].id and hot[0].observed == 40.5
    assert hot[0].time_ms == 5000
    # cooler again: no derate and no restore
    assert steady(mon, 35_000, 60_000, cap, temperature=37.0) == []
    assert mon.permille == 729
    # a device that went back to full output is caught
    cap.factor = 1.0
    (a,) = steady(mon, 60_000, 60_100, cap)
    assert a.rule == "setpoint_above_plan"


def test_derating_stops_at_the_floor() -> None:
    mon = monitor()
    actions = steady(mon, 0, 400_000, temperature=41.5)
    assert actions and all(a.kind is ActionKind.DERATE for a in actions)
    assert actions[-1].permille == DEFAULT_DERATE.floor_permille
    assert mon.permille == DEFAULT_DERATE.floor_permille


def test_abort_threshold_less_the_uncertainty() -> None:
    assert steady(monitor(), 0, 300, temperature=42.49)[0].kind is ActionKind.DERATE
    (a,) = steady(monitor(), 0, 100, temperature=[36, 36, 42.5, 36])
    assert (a.kind, a.rule) == (ActionKind.ABORT, "overtemp")
    assert a.zone == DEV.zones[2].id and a.limit == pytest.approx(42.5)


def test_a_limits_file_lowers_the_thresholds() -> None:
    lim = parse_limits('format = "lllt-limits/1"\nwarn_temperature = "39 °C"\n')
    (a,) = steady(monitor(limits=lim), 0, 100, temperature=38.6)
    assert a.kind is ActionKind.DERATE


def test_a_missing_reading_while_emitting_aborts() -> None:
    (a,) = steady(monitor(), 0, 100, temperature=[36, None, 36, 36])
    assert (a.kind, a.rule, a.zone) == (ActionKind.ABORT, "sensor_missing", DEV.zones[1].id)
    idle = frame(DEV, 0, state=wire.State.IDLE, temperature=[None, 36, 36, 36])
    assert monitor().on_telemetry(idle) is CONTINUE


# --- output ------------------------------------------------------------------------------------


def test_irradiance_off_its_setpoint_aborts_after_the_grace() -> None:
    mon = monitor()
    low = tuple(v * 0.75 for v in SP)  # 25 % under
    actions = [
        mon.on_telemetry(frame(DEV, t, setpoint=SP, irradiance=low)) for t in range(0, 1000, 100)
    ]
    kinds = [a.kind for a in actions]
    # first seen at 0 ms; still inside the 0.5 s grace at 500 ms; aborted at 600 ms
    assert kinds[:6] == [ActionKind.CONTINUE] * 6
    assert kinds[6] is ActionKind.ABORT
    a = actions[6]
    assert a.rule == "irradiance_deviation" and a.channel == DEV.channels[0].id


def test_a_brief_deviation_or_one_within_20_percent_is_tolerated() -> None:
    mon = monitor()
    near = tuple(v * 0.82 for v in SP)
    assert all(
        mon.on_telemetry(frame(DEV, t, setpoint=SP, irradiance=near)) is CONTINUE
        for t in range(0, 3000, 100)
    )
    mon = monitor()
    blip = [
        frame(DEV, t, setpoint=SP, irradiance=tuple(v * 0.5 for v in SP)) for t in (0, 100, 200)
    ]
    blip += [frame(DEV, t, setpoint=SP) for t in range(300, 2000, 100)]
    assert all(mon.on_telemetry(f) is CONTINUE for f in blip)


def test_setpoints_near_zero_are_not_judged_for_deviation() -> None:
    mon = monitor()
    tiny = tuple(0.03 if v else 0.0 for v in SP)
    assert all(
        mon.on_telemetry(frame(DEV, t, setpoint=tiny, irradiance=tuple(v * 2 for v in tiny)))
        is CONTINUE
        for t in range(0, 2000, 100)
    )


def test_a_setpoint_above_the_plan_aborts() -> None:
    high = tuple(v * 1.1 if v else 0.0 for v in SP)
    a = monitor().on_telemetry(frame(DEV, 0, setpoint=high))
    assert (a.kind, a.rule) == (ActionKind.ABORT, "setpoint_above_plan")
    assert a.limit == pytest.approx(3.0) and a.observed == pytest.approx(3.3)
    # a channel the step does not drive at all
    other = tuple(0.5 if v == 0 else v for v in SP)
    assert monitor().on_telemetry(frame(DEV, 0, setpoint=other)).rule == "setpoint_above_plan"


def test_after_a_derate_the_old_setpoint_is_tolerated_only_for_a_grace() -> None:
    mon = monitor()
    (d,) = steady(mon, 0, 100, temperature=41.0)
    assert d.permille == 900
    # the device has not applied it yet: tolerated for the grace (1 s), then an abort
    late = [mon.on_telemetry(frame(DEV, t, setpoint=SP)) for t in range(100, 1500, 100)]
    assert all(a is CONTINUE for a in late[:9])
    assert late[-1].rule == "setpoint_above_plan"


def test_emitting_while_commanded_off_aborts_on_the_second_frame() -> None:
    stuck = tuple(4.0 if v == 0 else v for v in SP)  # 735 nm measures 4 with setpoint 0
    mon = monitor()
    first = mon.on_telemetry(frame(DEV, 0, setpoint=SP, irradiance=stuck))
    second = mon.on_telemetry(frame(DEV, 100, setpoint=SP, irradiance=stuck))
    assert first is CONTINUE
    assert (second.kind, second.rule) == (ActionKind.ABORT, "emitting_while_off")
    assert second.channel == DEV.channels[1].id
    # after the session ended: any output is stuck-on
    mon = monitor()
    idle = [frame(DEV, t, state=wire.State.IDLE, irradiance=[2.0] + [0.0] * 7) for t in (0, 100)]
    assert mon.on_telemetry(idle[0]) is CONTINUE
    assert mon.on_telemetry(idle[1]).rule == "emitting_while_off"


def test_one_frame_of_switch_off_lag_is_not_stuck_on() -> None:
    mon = monitor()
    lag = frame(DEV, 0, state=wire.State.PAUSED, irradiance=SP)  # the tick that switches off
    off = frame(DEV, 100, state=wire.State.PAUSED)
    assert mon.on_telemetry(lag) is CONTINUE
    assert mon.on_telemetry(off) is CONTINUE
    assert mon.on_telemetry(frame(DEV, 200, state=wire.State.PAUSED)) is CONTINUE


def test_the_emitting_flag_without_any_channel_output_while_idle_is_stuck_on() -> None:
    mon = monitor()
    f = [frame(DEV, t, state=wire.State.IDLE, flags=F.HEAD_PRESENT | F.EMITTING) for t in (0, 100)]
    mon.on_telemetry(f[0])
    assert mon.on_telemetry(f[1]).rule == "emitting_while_off"


def test_another_running_plan_aborts() -> None:
    a = monitor().on_telemetry(frame(DEV, 0, setpoint=SP, plan_id=8))
    assert a.rule == "plan_mismatch"


# --- fluence ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("gain", "aborts"), [(1.0, False), (1.03, False), (1.08, True), (0.9, True)]
)
def test_device_counters_must_agree_with_the_host_integral(gain: float, aborts: bool) -> None:
    mon = monitor()
    actions = []
    for t in range(0, 120_000, 100):
        fl = tuple(3.0 * t / 1e6 * gain if s else 0.0 for s in SP)
        actions.append(mon.on_telemetry(frame(DEV, t, setpoint=SP, fluence=fl)))
    bad = [a for a in actions if not a.is_continue]
    if aborts:
        assert bad and bad[0].rule == "fluence_mismatch"
        assert bad[0].channel == DEV.channels[0].id
    else:
        assert bad == []


def test_tiny_fluences_never_trip_the_comparison() -> None:
    mon = monitor()
    # double counting, but the whole difference stays under the 0.02 J/cm² floor
    for t in range(0, 3000, 100):
        fl = tuple(2 * 3.0 * t / 1e6 if s else 0.0 for s in SP)
        assert mon.on_telemetry(frame(DEV, t, setpoint=SP, fluence=fl)) is CONTINUE


def test_lost_frames_restart_the_integral_instead_of_tripping() -> None:
    mon = monitor()
    steady(mon, 0, 1000)
    fl = tuple(3.0 * 10.0 / 1000 + 0.5 if s else 0.0 for s in SP)  # jumped during the gap
    assert mon.on_telemetry(frame(DEV, 10_000, setpoint=SP, fluence=fl)) is CONTINUE
    assert mon.rebases == 1


# --- link, events, flags -----------------------------------------------------------------------


def test_silent_telemetry_past_the_deadline_is_a_link_fault() -> None:
    mon = monitor(telemetry_period_s=0.1)
    assert mon.silence_timeout_s == 1.0
    assert mon.deadline(100.0) == 101.0  # armed by the first call
    mon.on_telemetry(frame(DEV, 0, setpoint=SP), now=100.5)
    assert mon.deadline(100.6) == 101.5
    assert mon.check_silence(101.49) is CONTINUE
    a = mon.check_silence(101.5)  # no frame by the deadline
    assert (a.kind, a.rule) == (ActionKind.LINK_FAULT, "telemetry_silent")
    assert a.observed == pytest.approx(1.0)
    assert isinstance(a.to_error(), LinkLost)


def test_device_interlock_events_stop_the_session_as_a_device_fault() -> None:
    mon = monitor()
    ev = wire.Event(300_000, wire.EventKind.INTERLOCK, wire.Interlock.THERMAL_CUTOFF, 2, 4260, 4250)
    a = mon.on_event(ev)
    assert (a.kind, a.rule, a.by_device) == (ActionKind.ABORT, "device_interlock", True)
    assert a.zone == DEV.zones[2].id
    assert (a.observed, a.limit, a.unit) == (pytest.approx(42.6), pytest.approx(42.5), "°C")
    err = a.to_error()
    assert isinstance(err, DeviceFault) and err.exit_code == 1
    assert "THERMAL_CUTOFF" in str(err)


def test_reboot_and_latched_fault_events_abort() -> None:
    assert monitor().on_event(wire.Event(5, wire.EventKind.BOOT, 1)).rule == "device_reboot"
    fault = wire.Event(5, wire.EventKind.FAULT, wire.Interlock.SENSOR_FAULT, 0, 1)
    assert monitor().on_event(fault).rule == "device_fault"
    cleared = wire.Event(5, wire.EventKind.FAULT, wire.Interlock.SENSOR_FAULT, 0, 0)
    assert monitor().on_event(cleared) is CONTINUE


def test_fault_flags_in_telemetry_abort() -> None:
    f = frame(DEV, 0, setpoint=SP, flags=F.HEAD_PRESENT | F.FAULT_OUTPUT)
    a = monitor().on_telemetry(f)
    assert a.rule == "device_fault" and "FAULT_OUTPUT" in a.reason


def test_a_step_event_restarts_the_deviation_grace() -> None:
    mon = monitor()
    low = tuple(v * 0.5 for v in SP)
    mon.on_telemetry(frame(DEV, 0, setpoint=SP, irradiance=low))
    mon.on_event(wire.Event(400, wire.EventKind.STEP, 0))
    assert mon.on_telemetry(frame(DEV, 700, setpoint=SP, irradiance=low)) is CONTINUE


def test_monitor_abort_becomes_a_safety_abort_with_fields() -> None:
    (a,) = steady(monitor(), 0, 100, temperature=43.0)
    err = a.to_error()
    assert isinstance(err, SafetyAbort) and err.exit_code == 1
    assert err.to_dict()["rule"] == "overtemp"
    assert a.to_dict()["kind"] == "abort"


# --- head-present rule (finding 8 of the lost-frames review) --------------------------------


def test_off_the_head_the_host_aborts_after_five_minutes_whatever_the_device_does() -> None:
    mon = monitor()
    off = F(0)  # HEAD_PRESENT cleared
    paused = {"state": wire.State.PAUSED, "setpoint": SP, "irradiance": 0.0, "flags": off}
    assert mon.on_telemetry(frame(DEV, 0, setpoint=SP)) is CONTINUE
    for t in range(100, 300_000, 1000):  # paused off the head for just under 5 min
        assert mon.on_telemetry(frame(DEV, t, **paused)) is CONTINUE  # type: ignore[arg-type]
    action = mon.on_telemetry(frame(DEV, 300_100, **paused))  # type: ignore[arg-type]
    assert (action.kind, action.rule) == (ActionKind.ABORT, "head_off_timeout")
    assert action.limit == DEV.limits.head_off_abort_s and action.unit == "s"


def test_back_on_the_head_restarts_the_head_off_clock() -> None:
    mon = monitor()
    off = {"state": wire.State.PAUSED, "setpoint": SP, "irradiance": 0.0, "flags": F(0)}
    for t in range(0, 200_000, 1000):
        assert mon.on_telemetry(frame(DEV, t, **off)) is CONTINUE  # type: ignore[arg-type]
    assert mon.on_telemetry(frame(DEV, 200_000, setpoint=SP)) is CONTINUE  # back on
    for t in range(201_000, 450_000, 1000):
        assert mon.on_telemetry(frame(DEV, t, **off)) is CONTINUE  # type: ignore[arg-type]


def test_emitting_off_the_head_aborts_on_the_second_frame() -> None:
    mon = monitor()
    first = mon.on_telemetry(frame(DEV, 0, setpoint=SP, flags=F(0)))
    second = mon.on_telemetry(frame(DEV, 100, setpoint=SP, flags=F(0)))
    assert first is CONTINUE
    assert (second.kind, second.rule) == (ActionKind.ABORT, "head_off_emitting")

"""Device interlocks (wire spec §8): each trips in the tick its condition is met, switches
the emitters off in that same tick, and leaves a documented safe state with a complete
session record. These are the tests named in docs/simulator.md's hazard table."""

from __future__ import annotations

import asyncio

import pytest

from lllt import wire as W
from lllt_sim.profiles import load_profile

from ._support import Host, plan, red, simulate, step

IL = W.Interlock
EK = W.EventKind
CUTOFF = load_profile("reference-cap").limits.cutoff_c


def trip(h: Host) -> W.Event:
    """The first interlock (more zones may follow one that tripped)."""
    il = h.events(EK.INTERLOCK)
    assert il, "no interlock tripped"
    return il[0]


def check_ended(
    h: Host, interlock: IL, outcome: W.Outcome, state: W.State, *, dark_from: int | None = None
) -> W.SessionRecord:
    """The safe state: session ended with a complete record, emitters off from the trip
    (or from ``dark_from`` ms)."""
    il = trip(h)
    assert il.a == interlock
    end = h.session_end()
    assert end.a == outcome and end.b == interlock and end.time_ms == il.time_ms
    assert h.dev.state == state
    start = il.time_ms if dark_from is None else dark_from
    after = [t for t in h.telemetry() if t.time_ms >= start]
    assert after, "no telemetry after the trip"
    assert all(not t.emitting and t.irradiance == (0.0,) * 8 for t in after)
    rec = h.records()[0]
    assert rec.outcome == outcome and rec.reason == interlock
    assert rec.end_ms == il.time_ms and rec.end_ms > rec.start_ms
    return rec


def test_thermal_cutoff_trips_in_the_tick_the_reading_reaches_it() -> None:
    full = dict.fromkeys(range(8), 10.0)

    async def body(h: Host) -> None:
        h.hello()
        h.request(W.SetTelemetry(1000))
        h.start_plan(plan(step(1400, full)))
        await h.until(lambda: max(h.last_telemetry().temperature) >= CUTOFF - 0.4, 900, 1.0)
        h.request(W.SetTelemetry(10))  # every tick from here on
        await h.until(lambda: bool(h.events(EK.INTERLOCK)), 300, 1.0)
        il = trip(h)
        assert il.value >= il.limit == round(CUTOFF * 100)
        every_tick = [t for t in h.telemetry() if t.time_ms >= il.time_ms - 3000]
        before = [t for t in every_tick if t.time_ms < il.time_ms]
        at = [t for t in every_tick if t.time_ms == il.time_ms]
        assert len(before) == 300  # the last 3 s, every tick: none reached the cut-off
        assert all(max(t.temperature) < CUTOFF for t in before)  # type: ignore[type-var]
        assert before[-1].emitting
        assert at and at[0].temperature[il.b] == il.value / 100 and not at[0].emitting
        assert at[0].flags & W.TelemetryFlag.FAULT_THERMAL
        rec = check_ended(h, IL.THERMAL_CUTOFF, W.Outcome.INTERLOCK, W.State.FAULT)
        # emitting stopped in the trip tick: full output from tick 1 up to the trip
        z = il.b
        assert rec.fluence[2 * z] == pytest.approx(10.0 * (il.time_ms - 10) / 1e6, abs=1e-6)
        # the other zones, still warming from their boards, latch as they reach it too
        assert {e.a for e in h.events(EK.FAULT)} == {IL.THERMAL_CUTOFF}

    simulate(body)


@pytest.mark.parametrize(
    ("fault", "reading"), [("thermistor_open", -55.0), ("thermistor_short", 150.0)]
)
def test_sensor_fault_trips_in_the_tick_the_reading_leaves_0_to_80(
    fault: str, reading: float
) -> None:
    async def body(h: Host) -> None:
        h.hello()
        h.start_plan(red(3.0, 60))
        await asyncio.sleep(6)
        il = trip(h)
        assert il.time_ms == 5000 and il.b == 2 and il.value == round(reading * 100)
        rec = check_ended(h, IL.SENSOR_FAULT, W.Outcome.INTERLOCK, W.State.FAULT)
        assert rec.fluence[0] == pytest.approx(3.0 * 4.99 / 1000, abs=1e-6)
        tel = h.last_telemetry()
        assert tel.temperature[2] == reading and tel.flags & W.TelemetryFlag.FAULT_SENSOR

    simulate(body, faults=f"{fault}:2@5s")


def test_over_output_opens_the_master_switch_within_two_ticks() -> None:
    async def body(h: Host) -> None:
        h.hello()
        h.request(W.SetTelemetry(10))
        h.start_plan(red(3.0, 60))
        await asyncio.sleep(6)
        il = trip(h)
        # stuck from tick 500: over in ticks 500 and 501, cut in tick 502
        assert il.time_ms == 5020 and il.b == 0
        assert il.value > il.limit == round((1.2 * 3.0 + 0.05) * 100)
        stuck = [t for t in h.telemetry() if 5000 <= t.time_ms < 5020]
        assert [t.irradiance[0] > 10 for t in stuck] == [True, True]
        rec = check_ended(h, IL.OVER_OUTPUT, W.Outcome.INTERLOCK, W.State.FAULT)
        assert rec.fluence[0] > 3.0 * 4.99 / 1000  # the stuck channel did over-deliver
        assert h.last_telemetry().flags & W.TelemetryFlag.FAULT_OUTPUT

    simulate(body, faults="stuck_on:0@5s")


def test_brownout_switches_off_in_its_tick() -> None:
    async def body(h: Host) -> None:
        h.hello()
        h.start_plan(red(3.0, 60))
        await asyncio.sleep(6)
        il = trip(h)
        brownout = load_profile("reference-cap").sim.brownout_mv
        assert il.time_ms == 5000 and il.value < il.limit == brownout
        check_ended(h, IL.BROWNOUT, W.Outcome.INTERLOCK, W.State.FAULT)
        tel = h.last_telemetry()
        assert tel.supply_mv < brownout and tel.flags & W.TelemetryFlag.FAULT_SUPPLY

    simulate(body, faults="brownout@5s")


def test_max_duration_holds_even_if_a_plan_got_past_the_upload_check() -> None:
    async def body(h: Host) -> None:
        h.hello()
        h.start_plan(red(3.0, 60))
        h.dev._max_ms = 20_000  # as if the upload check had let a longer plan through
        h.dev._dirty = True
        await asyncio.sleep(25)
        il = trip(h)
        assert il.value == il.limit == 20_000 and il.time_ms == 20_010
        check_ended(h, IL.MAX_DURATION, W.Outcome.INTERLOCK, W.State.IDLE)

    simulate(body)


def test_max_fluence_stops_a_channel_stuck_at_full_drive() -> None:
    """Stuck at full drive under a full-output plan (not over 120 % of its setpoint, so
    OVER_OUTPUT cannot see it), channel 0 over-delivers until MAX_FLUENCE stops it."""

    async def body(h: Host) -> None:
        h.hello()
        h.request(W.SetTelemetry(1000))
        h.start_plan(plan(step(1500, {0: 10.0})))  # planned 15 J/cm²: exactly the limit
        await asyncio.sleep(1500)
        il = trip(h)
        assert il.b == 0 and il.limit == 15_000_000
        assert 15_000_000 <= il.value < 15_000_000 + 120  # within one tick's fluence
        assert il.time_ms < 1_450_000  # well before the plan's end
        # commanded off now, the stuck channel still shines: OVER_OUTPUT opens the master
        # switch two ticks later and latches a fault
        over = h.events(EK.INTERLOCK)[1]
        assert over.a == IL.OVER_OUTPUT and over.time_ms == il.time_ms + 20
        rec = check_ended(
            h, IL.MAX_FLUENCE, W.Outcome.INTERLOCK, W.State.FAULT, dark_from=over.time_ms
        )
        assert rec.fluence[0] == il.value / 1e6

    simulate(body, faults="stuck_on:0")


def test_head_off_pauses_at_once_and_aborts_after_the_timeout() -> None:
    async def body(h: Host) -> None:
        h.hello()
        h.request(W.SetTelemetry(10))
        h.start_plan(red(3.0, 600))
        await asyncio.sleep(5.05)
        (head,) = h.events(EK.HEAD)
        assert head.a == 0 and head.time_ms == 5000
        paused = [t for t in h.telemetry() if t.time_ms >= 5000]
        assert paused and all(not t.emitting for t in paused)
        assert paused[0].state == W.State.PAUSED
        assert paused[0].flags & W.TelemetryFlag.PAUSED_HEAD_OFF
        h.request(W.SetTelemetry(1000))
        await asyncio.sleep(301)
        il = trip(h)
        assert il.time_ms == 305_000 and il.value == il.limit == 300_000
        rec = check_ended(h, IL.HEAD_OFF_TIMEOUT, W.Outcome.INTERLOCK, W.State.IDLE)
        assert rec.fluence[0] == pytest.approx(3.0 * 4.99 / 1000, abs=1e-6)

    simulate(body, faults="head_off@5s")


def test_lease_stop_trips_in_the_tick_the_lease_runs_out() -> None:
    async def body(h: Host) -> None:
        h.hello()
        h.start_plan(red(3.0, 60, lease_ms=1234, policy=W.LinkPolicy.STOP))
        await asyncio.sleep(0.4)
        h.request(W.Heartbeat())  # renewed at 400 ms: runs out at 1634 ms -> tick 1640
        await asyncio.sleep(3)
        il = trip(h)
        assert il.time_ms == 1640 and il.value == 1240 and il.limit == 1234
        rec = check_ended(h, IL.LEASE_STOP, W.Outcome.LEASE_STOP, W.State.IDLE)
        assert rec.fluence[0] == pytest.approx(3.0 * 1.63 / 1000, abs=1e-6)

    simulate(body)


def test_a_latched_fault_clears_only_once_its_cause_is_gone() -> None:
    async def body(h: Host) -> None:
        h.hello()
        h.start_plan(red(3.0, 60))
        await asyncio.sleep(6)
        assert h.dev.state == W.State.FAULT
        n = h.request(W.ClearFault())
        assert isinstance(n, W.Nack) and n.code == W.NackCode.FAULT_LATCHED
        assert isinstance(h.request(W.Start(1), sign=True), W.Started)  # recorded: finished
        await asyncio.sleep(5)  # the sensor recovers at 10 s
        assert isinstance(h.request(W.ClearFault()), W.Ack)
        assert h.dev.state == W.State.IDLE
        faults = h.events(EK.FAULT)
        assert [(e.a, e.value) for e in faults] == [(IL.SENSOR_FAULT, 1), (IL.SENSOR_FAULT, 0)]
        await asyncio.sleep(0.2)
        tel = h.last_telemetry()
        assert tel.state == W.State.IDLE and not tel.flags & W.TelemetryFlag.FAULT_SENSOR
        h.start_plan(red(3.0, 5, plan_id=2))  # usable again
        await asyncio.sleep(6)
        assert h.records()[0].outcome == W.Outcome.COMPLETED

    simulate(body, faults="thermistor_short:0@5s+5s")


def test_a_fault_while_idle_latches_without_a_session() -> None:
    async def body(h: Host) -> None:
        h.hello()
        h.start_plan(red(3.0, 2))  # the first START arms the faults
        await asyncio.sleep(3)
        h.upload(red(3.0, 5, plan_id=2))
        await asyncio.sleep(300)
        il = trip(h)
        assert il.a == IL.THERMAL_CUTOFF and il.time_ms > 60_000
        assert h.dev.state == W.State.FAULT
        assert len(h.events(EK.SESSION_END)) == 1  # only the first, completed session
        assert h.records()[0].outcome == W.Outcome.COMPLETED
        n = h.request(W.Start(2), sign=True)
        assert isinstance(n, W.Nack) and n.code == W.NackCode.FAULT_LATCHED

    simulate(body, faults="overtemp:top")

"""The simulator speaks wire protocol v1 as docs/wire-protocol.md says: handshake, NACKs,
START idempotency, pause/resume/abort, lease, telemetry, records, auth, retries."""

from __future__ import annotations

import asyncio

import pytest

from lllt import wire as W
from lllt_sim.device import SimDevice
from lllt_sim.profiles import load_profile

from ._support import Host, plan, red, simulate, step

C = W.NackCode
EK = W.EventKind


def nack(reply: W.Message) -> W.Nack:
    assert isinstance(reply, W.Nack), reply
    return reply


# --- handshake ---------------------------------------------------------------------------


def test_hello_describes_the_profile_and_draws_a_fresh_nonce() -> None:
    async def body(h: Host) -> None:
        a = h.hello()
        b = h.hello()
        ref = load_profile("reference-cap")
        assert (a.major, a.minor) == (W.PROTOCOL_MAJOR, W.PROTOCOL_MINOR)
        assert a.model == ref.model and a.serial == ref.serial
        assert a.channels == ref.channels and a.zones == ref.zones
        assert a.limits == ref.limits
        assert a.capabilities & W.Capability.DEV_KEY
        assert a.capabilities & W.Capability.AUTH_REQUIRED
        assert a.capabilities & W.Capability.SIMULATED
        assert a.clock_rate == 0.0  # lockstep
        assert a.boot_count == 1
        assert a.nonce != b.nonce

    simulate(body)


def test_hello_of_another_version_still_gets_hello_info_other_frames_get_version() -> None:
    async def body(h: Host) -> None:
        info = h.request_raw(W.encode_frame(W.MsgType.HELLO, 7, bytes((2, 3)), version=2), 7)
        assert isinstance(info, W.HelloInfo)
        n = nack(h.request_raw(W.encode_frame(W.MsgType.GET_STATUS, 8, version=2), 8))
        assert n.code == C.VERSION and n.limit == 1 and n.observed == 2

    simulate(body)


def test_unknown_request_and_malformed_payload() -> None:
    async def body(h: Host) -> None:
        n = nack(h.request_raw(W.encode_frame(0x3E, 9), 9))
        assert n.code == C.UNKNOWN_TYPE
        n = nack(h.request_raw(W.encode_frame(W.MsgType.START, 10, b"\x01\x02"), 10))
        assert n.code == C.BAD_LENGTH
        n = nack(h.request_raw(W.encode_frame(W.MsgType.HEARTBEAT, 11, b"\x00"), 11))
        assert n.code == C.BAD_LENGTH
        h.hello()
        payload = red(3.0, 10).payload()[:-3]
        signed = W.AuthState(h.key, h.auth.nonce, 50) if h.auth else None
        assert signed is not None
        flags, body_ = signed.sign(W.MsgType.UPLOAD_PLAN, 12, payload)
        raw = W.encode_frame(W.MsgType.UPLOAD_PLAN, 12, body_, flags=flags)
        assert nack(h.request_raw(raw, 12)).code == C.BAD_LENGTH
        assert h.dev.stats["malformed"] == 3

    simulate(body)


# --- plan upload checks, in the spec's order ----------------------------------------------


def _upload_nack(p: W.UploadPlan, **device: object) -> W.Nack:
    async def body(h: Host) -> W.Nack:
        h.hello()
        return nack(h.upload(p))

    return simulate(body, **device)  # type: ignore[arg-type]


LIM = load_profile("reference-cap").limits


@pytest.mark.parametrize(
    ("p", "code", "fields"),
    [
        (red(3, 10, plan_id=0), C.BAD_VALUE, {}),
        (red(3, 10, plan_id=2**31), C.BAD_VALUE, {}),
        (plan(*[step(1, {0: 1.0})] * 17), C.TOO_LARGE, {"limit": 16, "observed": 17}),
        (plan(step(1, {})), C.TOO_LARGE, {"observed": 0}),
        (red(3, 10, lease_ms=499), C.BAD_VALUE, {"limit": 500, "observed": 499}),
        (plan(step(10, {0: 3.0, 42: 3.0})), C.UNKNOWN_CHANNEL, {"channel": 42}),
        (
            plan(
                step(10, {0: 3.0}),
                W.PlanStep(
                    W.StepKind.DURATION,
                    1000,
                    0,
                    0,
                    100,
                    (W.ChannelSetpoint(2, 1.0), W.ChannelSetpoint(2, 1.0)),
                ),
            ),
            C.BAD_VALUE,
            {"channel": 2},
        ),
        (
            plan(step(10, {3: 10.01})),
            C.LIMIT_IRRADIANCE,
            {"channel": 3, "limit": 1000, "observed": 1001},
        ),
        (plan(step(0, {0: 3.0})), C.BAD_VALUE, {}),
        (plan(step(10, {0: 3.0}, ramp_s=10.01)), C.BAD_VALUE, {"limit": 10000, "observed": 10010}),
        (plan(step(10, {0: 3.0}, duty_pct=50)), C.PULSE_RANGE, {}),
        (plan(step(10, {0: 3.0}, pulse_hz=1.0, duty_pct=50)), C.PULSE_RANGE, {"limit": 2000}),
        (
            plan(step(10, {0: 3.0}, pulse_hz=10001, duty_pct=50)),
            C.PULSE_RANGE,
            {"limit": 10_000_000},
        ),
        (plan(step(10, {0: 3.0}, pulse_hz=10, duty_pct=0.5)), C.PULSE_RANGE, {"limit": 100}),
        (
            plan(W.PlanStep(W.StepKind.DURATION, 1000, 0, 0, 100, (W.ChannelSetpoint(0, 1, 0.5),))),
            C.BAD_VALUE,
            {"channel": 0},
        ),
        (
            plan(W.PlanStep(W.StepKind.FLUENCE, 1000, 0, 0, 100, (W.ChannelSetpoint(0, 1, 0.0),))),
            C.BAD_VALUE,
            {"channel": 0},
        ),
        (red(1, 3600.01), C.LIMIT_DURATION, {"limit": 3_600_000, "observed": 3_600_010}),
        # 10 mW/cm² for 1500.001 s is 15.00001 J/cm², one step over the 15 J/cm² limit
        (
            plan(step(1500.001, {5: 10.0})),
            C.LIMIT_FLUENCE,
            {"channel": 5, "limit": 15_000_000, "observed": 15_000_010},
        ),
    ],
)
def test_upload_refusals(p: W.UploadPlan, code: W.NackCode, fields: dict[str, int]) -> None:
    n = _upload_nack(p)
    assert n.code == code, n
    for name, value in fields.items():
        assert getattr(n, name) == value, (name, n)


def test_upload_checks_come_in_spec_order() -> None:
    # unknown channel AND too much irradiance AND too long: the first check wins
    p = plan(step(4000, {0: 11.0, 99: 1.0}))
    assert _upload_nack(p).code == C.UNKNOWN_CHANNEL
    p = plan(step(4000, {0: 11.0}))
    assert _upload_nack(p).code == C.LIMIT_IRRADIANCE


def test_plan_exactly_at_the_limits_is_accepted_and_ramp_counts_half() -> None:
    async def body(h: Host) -> None:
        h.hello()
        # 10 mW/cm² for 1500 s: exactly 15 J/cm²
        assert isinstance(h.upload(plan(step(1500, {5: 10.0}))), W.Ack)
        # a 20 s ramp counts half: 10 × (1510 − 10) s = 15 J/cm², still exactly at the limit
        assert isinstance(h.upload(plan(step(1510, {5: 10.0}, ramp_s=20))), W.Ack)
        assert h.dev.state == W.State.READY
        # fluence targets count as they are: 15.000001 J/cm² is over
        over = plan(step(1, {5: 10.0}, targets={5: 15.000001}, max_s=3000))
        assert nack(h.upload(over)).code == C.LIMIT_FLUENCE

    simulate(body)


def test_upload_refused_while_running_and_in_fault() -> None:
    async def body(h: Host) -> None:
        h.hello()
        h.start_plan(red(3, 60))
        assert nack(h.upload(red(3, 60, plan_id=2))).code == C.BAD_STATE
        await asyncio.sleep(3)  # thermistor_open at 2 s latches a FAULT
        assert h.dev.state == W.State.FAULT
        assert nack(h.upload(red(3, 60, plan_id=3))).code == C.FAULT_LATCHED

    simulate(body, faults="thermistor_open@2s")


# --- START ----------------------------------------------------------------------------------


def test_start_refusals_and_idempotency() -> None:
    async def body(h: Host) -> None:
        h.hello()
        assert nack(h.request(W.Start(5), sign=True)).code == C.NO_PLAN
        assert isinstance(h.upload(red(3, 5, plan_id=5)), W.Ack)
        n = nack(h.request(W.Start(6), sign=True))
        assert n.code == C.PLAN_MISMATCH and n.limit == 5 and n.observed == 6
        first = h.request(W.Start(5), sign=True)
        assert isinstance(first, W.Started) and first.result == W.StartResult.STARTED
        await asyncio.sleep(1)
        again = h.request(W.Start(5), sign=True)
        assert isinstance(again, W.Started)
        assert again.result == W.StartResult.ALREADY_RUNNING
        assert again.start_ms == first.start_ms
        await asyncio.sleep(6)
        done = h.request(W.Start(5), sign=True)
        assert isinstance(done, W.Started)
        assert done.result == W.StartResult.ALREADY_FINISHED
        assert done.start_ms == first.start_ms
        # nothing started again: one session, one record
        assert len(h.events(EK.SESSION_END)) == 1
        assert [r.plan_id for r in h.records()] == [5]

    simulate(body)


def test_start_needs_a_head_and_a_cool_scalp() -> None:
    async def body(h: Host) -> None:
        h.hello()
        h.start_plan(red(1, 5, plan_id=1))  # arms the faults; head leaves at 1 s
        await asyncio.sleep(2)
        assert h.request(W.Abort(W.AbortReason.USER))
        assert isinstance(h.upload(red(1, 5, plan_id=2)), W.Ack)
        assert nack(h.request(W.Start(2), sign=True)).code == C.HEAD_NOT_PRESENT

    simulate(body, faults="head_off@1s")

    async def hot(h: Host) -> None:
        h.hello()
        # full output on both wavelengths warms the scalp to within 1 °C of the cut-off
        h.start_plan(plan(step(1400, dict.fromkeys(range(8), 10.0))))

        def warm() -> bool:
            return max(t or 0 for t in h.last_telemetry().temperature) >= 41.7

        await h.until(warm, 900)
        h.request(W.Abort(W.AbortReason.USER))
        assert isinstance(h.upload(red(1, 5, plan_id=2)), W.Ack)
        n = nack(h.request(W.Start(2), sign=True))
        assert n.code == C.TOO_HOT
        assert n.limit == 4150 and n.observed >= 4150
        assert h.dev.state == W.State.READY

    simulate(hot)


# --- pause, resume, abort -------------------------------------------------------------------


def test_pause_and_resume_stop_and_restart_the_clock() -> None:
    async def body(h: Host) -> None:
        h.hello()
        h.start_plan(red(5, 20))
        await asyncio.sleep(5)
        assert isinstance(h.request(W.Pause()), W.Ack)  # PAUSE needs no proof
        await asyncio.sleep(0.2)
        paused = h.last_telemetry()
        assert paused.state == W.State.PAUSED
        assert paused.flags & W.TelemetryFlag.PAUSED_BY_HOST
        assert not paused.emitting and paused.irradiance == (0.0,) * 8
        el = paused.elapsed_ms
        await asyncio.sleep(10)
        assert h.last_telemetry().elapsed_ms == el  # pauses do not count
        assert nack(h.request(W.Resume())).code == C.AUTH_REQUIRED
        assert isinstance(h.request(W.Resume(), sign=True), W.Ack)
        await asyncio.sleep(0.2)
        assert h.last_telemetry().emitting
        await asyncio.sleep(20)
        end = h.session_end()
        assert end.a == W.Outcome.COMPLETED
        rec = h.records()[0]
        assert rec.fluence[0] == pytest.approx(5 * 20 / 1000, abs=2e-6)
        assert nack(h.request(W.Resume(), sign=True)).code == C.BAD_STATE
        assert nack(h.request(W.Pause())).code == C.BAD_STATE

    simulate(body)


def test_abort_turns_emitters_off_by_the_next_telemetry_frame() -> None:
    async def body(h: Host) -> None:
        h.hello()
        h.start_plan(red(8, 60))
        await asyncio.sleep(3.05)  # mid-period: the next sample is 50 ms away
        assert h.last_telemetry().emitting
        n_before = len(h.telemetry())
        # ABORT is accepted without authentication, and with a wrong tag too
        bad = W.AuthState(b"x" * 32, bytes(16), 99)
        assert isinstance(h.request(W.Abort(W.AbortReason.SAFETY_MONITOR), sign=False), W.Ack)
        now = h.status()  # at once, unlike PAUSE, which takes effect at the next tick
        assert not now.emitting and now.irradiance == (0.0,) * 8
        await asyncio.sleep(0.1)
        nxt = h.telemetry()[n_before]
        assert not nxt.emitting and nxt.irradiance == (0.0,) * 8
        assert nxt.state == W.State.IDLE and nxt.setpoint == (0.0,) * 8
        end = h.session_end()
        assert end.a == W.Outcome.ABORTED and end.b == W.AbortReason.SAFETY_MONITOR
        rec = h.records()[0]
        assert rec.outcome == W.Outcome.ABORTED and rec.reason == W.AbortReason.SAFETY_MONITOR
        # emitting from the tick after START (10 ms) to the abort (3050 ms), not a tick more
        assert rec.end_ms == 3050 and rec.fluence[0] == pytest.approx(8 * 3.04 / 1000, abs=1e-7)
        # an abort with a broken trailer is still accepted
        raw = W.encode_message(W.Abort(), 77, auth=bad)
        assert isinstance(h.request_raw(raw, 77), W.Ack)
        # the plan is unloaded: START has nothing to start
        assert h.dev.state == W.State.IDLE

    simulate(body)


def test_replies_come_before_the_events_they_cause() -> None:
    async def body(h: Host) -> None:
        h.hello()
        h.upload(red(3, 10))
        before = len(h.received)
        h.request(W.Start(1), sign=True)
        kinds = [r.frame.type for r in h.received[before:]]
        assert kinds[0] == W.MsgType.STARTED
        assert kinds[1:] == [W.MsgType.EVENT, W.MsgType.EVENT]
        ev = [r.msg for r in h.received[before + 1 :]]
        assert isinstance(ev[0], W.Event) and ev[0].kind == EK.STATE
        assert isinstance(ev[1], W.Event) and ev[1].kind == EK.STEP

    simulate(body)


# --- lease ---------------------------------------------------------------------------------


def test_a_telemetry_sample_follows_session_end_at_once() -> None:
    """wire 1.1: the session's end is confirmed in the same tick, not at the next period."""

    async def body(h: Host) -> None:
        h.hello()
        h.request(W.SetTelemetry(1000))  # 1 Hz: the next periodic sample is far away
        h.start_plan(red(3, 2.5))
        await asyncio.sleep(4)
        end_at = [r for r in h.received if isinstance(r.msg, W.Event)
                  and r.msg.kind == EK.SESSION_END]  # fmt: skip
        assert len(end_at) == 1
        after = [r for r in h.received if r.t >= end_at[0].t
                 and r.frame.type == W.MsgType.TELEMETRY]  # fmt: skip
        first = after[0]
        assert first.t == end_at[0].t  # same loop time as SESSION_END
        assert h.received.index(first) == h.received.index(end_at[0]) + 1
        assert isinstance(first.msg, W.Telemetry)
        assert first.msg.time_ms == end_at[0].msg.time_ms  # the same device tick
        assert end_at[0].msg.value == 2500  # emitting ms
        assert not first.msg.emitting and first.msg.state == W.State.IDLE
        assert first.msg.fluence[0] == pytest.approx(3 * 2.5 / 1000, rel=0.01)

    simulate(body)


def test_lease_expiry_with_finish_runs_the_plan_to_its_end() -> None:
    async def body(h: Host) -> None:
        h.hello()
        h.start_plan(red(3, 10, lease_ms=1000))
        await asyncio.sleep(0.5)
        h.request(W.Heartbeat())
        await asyncio.sleep(2)
        exp = h.events(EK.LEASE_EXPIRED)
        assert len(exp) == 1
        assert exp[0].a == W.LinkPolicy.FINISH and exp[0].limit == 1000
        assert exp[0].time_ms == 1500 and exp[0].value == 1000
        tel = h.last_telemetry()
        assert tel.state == W.State.RUNNING and tel.emitting
        assert tel.flags & W.TelemetryFlag.LEASE_EXPIRED
        h.request(W.Heartbeat())
        assert len(h.events(EK.LEASE_RESTORED)) == 1
        await asyncio.sleep(10)
        assert h.session_end().a == W.Outcome.COMPLETED

    simulate(body)


def test_lease_expiry_with_stop_ends_the_session_at_once() -> None:
    async def body(h: Host) -> None:
        h.hello()
        h.start_plan(red(3, 10, lease_ms=700, policy=W.LinkPolicy.STOP))
        await asyncio.sleep(2)
        exp = h.events(EK.LEASE_EXPIRED)
        assert len(exp) == 1 and exp[0].a == W.LinkPolicy.STOP and exp[0].time_ms == 700
        il = h.events(EK.INTERLOCK)
        assert [e.a for e in il] == [W.Interlock.LEASE_STOP]
        end = h.session_end()
        assert end.a == W.Outcome.LEASE_STOP and end.time_ms == 700
        assert h.dev.state == W.State.IDLE
        tel = [t for t in h.telemetry() if t.time_ms > 700]
        assert tel and not any(t.emitting for t in tel)
        assert h.records()[0].outcome == W.Outcome.LEASE_STOP

    simulate(body)


def test_a_session_paused_by_the_host_ends_on_lease_expiry_under_finish() -> None:
    async def body(h: Host) -> None:
        h.hello()
        h.start_plan(red(3, 10, lease_ms=1000))
        await asyncio.sleep(0.3)
        h.request(W.Pause())
        await asyncio.sleep(2)
        exp = h.events(EK.LEASE_EXPIRED)
        assert exp[0].a == W.LinkPolicy.STOP
        assert h.session_end().a == W.Outcome.LEASE_STOP

    simulate(body)


# --- telemetry -----------------------------------------------------------------------------


def test_telemetry_period_is_set_and_checked() -> None:
    async def body(h: Host) -> None:
        await asyncio.sleep(1.0)
        times = [t.time_ms for t in h.telemetry()]
        assert times == list(range(100, 1001, 100))  # 10 Hz from boot
        arrived = [r.t for r in h.received if r.frame.type == W.MsgType.TELEMETRY]
        assert arrived == pytest.approx([t / 1000 for t in times])
        n = nack(h.request(W.SetTelemetry(4)))
        assert n.code == C.BAD_VALUE and n.limit == 5  # max 200 Hz
        assert isinstance(h.request(W.SetTelemetry(25)), W.Ack)
        before = len(h.telemetry())
        await asyncio.sleep(1.0)
        times = [t.time_ms for t in h.telemetry()[before:]]
        assert times == list(range(1025, 2001, 25))
        assert isinstance(h.request(W.SetTelemetry(0)), W.Ack)
        before = len(h.telemetry())
        await asyncio.sleep(5.0)
        assert len(h.telemetry()) == before  # off

    simulate(body)


def test_telemetry_reports_setpoints_output_fluence_and_temperatures() -> None:
    async def body(h: Host) -> None:
        h.hello()
        h.start_plan(plan(step(30, {0: 4.0, 1: 2.5}, ramp_s=10)))
        await asyncio.sleep(5.0)
        ramp = h.last_telemetry()
        assert ramp.flags & W.TelemetryFlag.RAMPING
        assert 0 < ramp.setpoint[0] < 4.0
        await asyncio.sleep(10.0)
        tel = h.last_telemetry()
        assert not tel.flags & W.TelemetryFlag.RAMPING
        assert tel.setpoint[:2] == (4.0, 2.5) and tel.irradiance[:2] == (4.0, 2.5)
        assert tel.setpoint[2:] == (0.0,) * 6
        assert tel.flags & W.TelemetryFlag.EMITTING
        assert tel.flags & W.TelemetryFlag.HEAD_PRESENT
        assert tel.flags & W.TelemetryFlag.LEASE_ACTIVE
        assert tel.flags & W.TelemetryFlag.AUTHENTICATED
        assert tel.step == 0 and tel.plan_id == 1
        assert tel.ambient == 25.0
        assert all(t is not None and 30 < t < 40 for t in tel.temperature)
        assert 4900 <= tel.supply_mv <= 5000
        # ramp delivers half: 4 mW/cm² × (15 s − 5 s) at t = 15.0 s (outputs from the tick
        # after START, so 10 ms less)
        assert tel.fluence[0] == pytest.approx(4.0 * (tel.elapsed_ms / 1000 - 5) / 1000, abs=1e-4)

    simulate(body)


# --- derate --------------------------------------------------------------------------------


def test_derate_lowers_freely_and_raising_needs_proof() -> None:
    async def body(h: Host) -> None:
        h.hello()
        assert nack(h.request(W.Derate(500))).code == C.BAD_STATE
        h.start_plan(red(8, 60))
        assert nack(h.request(W.Derate(0))).code == C.BAD_VALUE
        assert nack(h.request(W.Derate(1001))).code == C.BAD_VALUE
        assert isinstance(h.request(W.Derate(500)), W.Ack)
        await asyncio.sleep(0.2)
        tel = h.last_telemetry()
        assert tel.setpoint[0] == 4.0 and tel.flags & W.TelemetryFlag.DERATED
        assert tel.derate_permille == 500
        assert nack(h.request(W.Derate(800))).code == C.AUTH_REQUIRED
        assert isinstance(h.request(W.Derate(800), sign=True), W.Ack)
        ev = h.events(EK.DERATE)
        assert [(e.value, e.limit) for e in ev] == [(500, 1000), (800, 500)]

    simulate(body)


# --- records -------------------------------------------------------------------------------


def test_records_newest_first_running_included_last_sixteen() -> None:
    async def body(h: Host) -> None:
        h.hello()
        for pid in range(1, 19):
            h.start_plan(red(2, 1, plan_id=pid))
            await asyncio.sleep(1.1)
        h.start_plan(red(2, 30, plan_id=100))
        await asyncio.sleep(2)
        recs = h.records()
        assert len(recs) == 16
        assert [r.plan_id for r in recs] == [100, *range(18, 3, -1)]
        assert recs[0].outcome == W.Outcome.RUNNING and recs[0].end_ms == 0
        assert recs[0].fluence[0] > 0
        assert all(r.outcome == W.Outcome.COMPLETED for r in recs[1:])
        assert all(r.fluence[0] == pytest.approx(0.002, abs=1e-6) for r in recs[1:])
        assert [r.plan_id for r in h.records(3)] == [100, 18, 17]
        assert h.records(0) == ()

    simulate(body)


# --- authentication ------------------------------------------------------------------------


def test_auth_required_failed_and_counter_replay() -> None:
    async def body(h: Host) -> None:
        h.hello()
        assert nack(h.request(red(3, 10))).code == C.AUTH_REQUIRED  # no trailer
        assert nack(h.request(W.Start(1))).code == C.AUTH_REQUIRED
        assert h.dev.state == W.State.IDLE

    simulate(body)

    async def replay(h: Host) -> None:
        h.hello()
        assert isinstance(h.upload(red(3, 10)), W.Ack)
        assert h.auth is not None
        # same counter again (a fresh seq so it is not a dedup'd retry)
        h.auth.counter -= 1
        n = nack(h.request(W.Start(1), sign=True))
        assert n.code == C.AUTH_FAILED and n.limit == 1 and n.observed == 1
        # wrong key
        h.auth = W.AuthState(b"k" * 32, h.auth.nonce, 10)
        assert nack(h.request(W.Start(1), sign=True)).code == C.AUTH_FAILED
        # a new HELLO resets the counter: counting from 1 works again
        h.hello()
        started = h.request(W.Start(1), sign=True)
        assert isinstance(started, W.Started)

    simulate(replay)


def test_an_explicit_key_clears_dev_key_and_refuses_the_development_key() -> None:
    key = bytes(range(32))

    async def body(h: Host) -> None:
        info = h.hello()
        assert not info.capabilities & W.Capability.DEV_KEY
        assert nack(h.upload(red(3, 10))).code == C.AUTH_FAILED  # signed with the dev key
        h.key = key
        h.hello()
        assert isinstance(h.upload(red(3, 10)), W.Ack)

    simulate(body, key=key)


def test_a_retried_request_is_answered_from_memory_not_executed_again() -> None:
    async def body(h: Host) -> None:
        h.hello()
        h.upload(red(3, 10))
        assert h.auth is not None
        raw = W.encode_message(W.Start(1), 500, auth=h.auth)
        first = h.request_raw(raw, 500)
        n_events = len(h.events())
        again = h.request_raw(raw, 500)  # same seq, same bytes: a retry
        assert again == first
        assert isinstance(again, W.Started) and again.result == W.StartResult.STARTED
        assert len(h.events()) == n_events  # no second STATE/STEP
        assert h.dev.stats["dedup_hits"] == 1
        # an ABORT retried after the session ended is not executed twice either
        raw = W.encode_message(W.Abort(W.AbortReason.USER), 501)
        h.request_raw(raw, 501)
        h.request_raw(raw, 501)
        assert len(h.events(EK.SESSION_END)) == 1
        # HELLO empties the memory: the same START is a new request now
        h.hello()
        fresh = h.request(W.Start(1), sign=True)
        assert isinstance(fresh, W.Started) and fresh.result == W.StartResult.ALREADY_FINISHED

    simulate(body)


def test_a_device_fed_before_run_answers_at_time_zero() -> None:
    """The in-process transport writes HELLO before the device task has started."""

    async def main() -> None:
        dev = SimDevice("reference-cap")
        out = bytearray()
        dev.attach(out.extend)
        dev.feed(b"\x00" + W.encode_message(W.Hello(), 1))
        (frame,) = W.FrameDecoder().feed(bytes(out))
        assert frame.type == W.MsgType.HELLO_INFO
        task = asyncio.get_running_loop().create_task(dev.run())
        await asyncio.sleep(0.15)
        dev.close()
        await task
        frames = W.FrameDecoder().feed(bytes(out))
        assert [f.type for f in frames] == [W.MsgType.HELLO_INFO, W.MsgType.TELEMETRY]

    from lllt import clock

    clock.run(main(), virtual=True)

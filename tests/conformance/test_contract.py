"""The device contract: one suite, run unchanged against every target (see conftest).

Each test talks to the device only through :class:`lllt.device.Cap` and wire messages,
so the same assertions hold for the in-process simulator, a simulator served over a
pseudo-terminal or TCP, and a real cap given with ``--lllt-device``.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from lllt import wire as W
from lllt.device import Cap
from lllt.errors import AuthError, Rejected

from .conftest import Target

pytestmark = pytest.mark.filterwarnings("error")


def red(cap: Cap) -> list[int]:
    return [c.id for c in cap.info.channels if c.wavelength_nm == 655]


def plan(
    cap: Cap,
    *,
    seconds: float = 2.0,
    irr: float = 3.0,
    policy: W.LinkPolicy = W.LinkPolicy.FINISH,
    lease_ms: int = 1000,
    steps: int = 1,
    **step: Any,
) -> W.UploadPlan:
    s = W.PlanStep(
        kind=step.pop("kind", W.StepKind.DURATION),
        duration_ms=step.pop("duration_ms", round(seconds * 1000)),
        ramp_ms=step.pop("ramp_ms", 0),
        pulse_hz=step.pop("pulse_hz", 0.0),
        duty_pct=step.pop("duty_pct", 100.0),
        setpoints=step.pop("setpoints", tuple(W.ChannelSetpoint(c, irr) for c in red(cap))),
    )
    assert not step, step
    return W.UploadPlan(Cap.new_plan_id(), policy, lease_ms, (s,) * steps)


async def idle(cap: Cap) -> None:
    """Bring a (possibly shared) device back to IDLE with no plan loaded."""
    await cap.abort(W.AbortReason.UNSPECIFIED)
    status = await cap.status()
    if status.state == W.State.FAULT:
        await cap.clear_fault()


# Host seconds added to every wait for a device message: a served device runs in its own
# process, and on a loaded 2-core CI machine a frame due in 5 ms once took over 2 s to
# arrive. What the tests check is in device time (time_ms, events), which a slow host
# does not change.
HOST_SLACK_S = 5.0


async def next_event(sub: Any, cap: Cap, kind: W.EventKind, device_s: float) -> W.Event:
    while True:
        msg = await sub.get(cap.host_seconds(device_s * 1000) + HOST_SLACK_S)
        if isinstance(msg, W.Event) and msg.kind == kind:
            return msg


async def next_telemetry(sub: Any, cap: Cap, device_s: float = 2.0) -> W.Telemetry:
    while True:
        msg = await sub.get(cap.host_seconds(device_s * 1000) + HOST_SLACK_S)
        if isinstance(msg, W.Telemetry):
            return msg


# --- handshake ------------------------------------------------------------------------------


def test_handshake_describes_the_reference_cap(target: Target) -> None:
    async def body(cap: Cap) -> None:
        info = cap.info
        assert info.protocol == f"{W.PROTOCOL_MAJOR}.{W.PROTOCOL_MINOR}"
        assert len(info.channels) == 8
        assert sorted(c.wavelength_nm for c in info.channels) == [655] * 4 + [735] * 4
        assert {z.name for z in info.zones} == {"front", "top", "crown", "back"}
        for zone in info.zones:
            assert sorted(c.wavelength_nm for c in info.channels if c.zone == zone.id) == [655, 735]
        lim = info.limits
        assert 0 < lim.max_irradiance_mw_cm2 <= 100
        assert lim.cutoff_c <= 43 - lim.sensor_uncertainty_c
        assert lim.head_off_abort_s == 300

    target.run(body)


def test_foreign_version_frame_is_refused_with_version_nack(target: Target) -> None:
    async def body(cap: Cap) -> None:
        import asyncio

        seq = 4242
        fut = asyncio.get_running_loop().create_future()
        cap._pending[seq] = (fut, W.MsgType.GET_STATUS)
        cap.transport.write(W.encode_frame(W.MsgType.GET_STATUS, seq, version=2))
        reply = await asyncio.wait_for(fut, 2.0)
        assert isinstance(reply, W.Nack) and reply.code == W.NackCode.VERSION
        assert reply.limit == W.PROTOCOL_MAJOR and reply.observed == 2

    target.run(body)


# --- plan upload ------------------------------------------------------------------------------


def _bad_plans(cap: Cap) -> dict[str, tuple[W.UploadPlan, W.NackCode]]:
    r = red(cap)
    sp = W.ChannelSetpoint
    lim = cap.info.limits
    long_s = lim.max_session_s + 1
    return {
        "unknown channel": (plan(cap, setpoints=(sp(99, 3.0),)), W.NackCode.UNKNOWN_CHANNEL),
        "irradiance over max": (
            plan(cap, setpoints=(sp(r[0], lim.max_irradiance_mw_cm2 + 0.5),)),
            W.NackCode.LIMIT_IRRADIANCE,
        ),
        "longer than max session": (plan(cap, seconds=long_s), W.NackCode.LIMIT_DURATION),
        "fluence over max": (
            plan(
                cap,
                irr=lim.max_irradiance_mw_cm2,
                seconds=(lim.max_fluence_j_cm2 + 1) * 1000 / lim.max_irradiance_mw_cm2,
            ),
            W.NackCode.LIMIT_FLUENCE,
        ),
        "lease too short": (plan(cap, lease_ms=lim.min_lease_ms - 1), W.NackCode.BAD_VALUE),
        "ramp longer than step": (plan(cap, ramp_ms=5000), W.NackCode.BAD_VALUE),
        "zero duration": (plan(cap, duration_ms=0), W.NackCode.BAD_VALUE),
        "pulse below range": (plan(cap, pulse_hz=1.0, duty_pct=50.0), W.NackCode.PULSE_RANGE),
        "duty zero": (plan(cap, pulse_hz=10.0, duty_pct=0.0), W.NackCode.PULSE_RANGE),
        "too many steps": (plan(cap, steps=W.MAX_STEPS + 1), W.NackCode.TOO_LARGE),
        "channel twice": (
            plan(cap, setpoints=(sp(r[0], 1.0), sp(r[0], 2.0))),
            W.NackCode.BAD_VALUE,
        ),
        "fluence step without target": (plan(cap, kind=W.StepKind.FLUENCE), W.NackCode.BAD_VALUE),
        "plan id zero": (
            W.UploadPlan(0, W.LinkPolicy.FINISH, 1000, plan(cap).steps),
            W.NackCode.BAD_VALUE,
        ),
    }


BAD_PLAN_CASES = [
    "unknown channel",
    "irradiance over max",
    "longer than max session",
    "fluence over max",
    "lease too short",
    "ramp longer than step",
    "zero duration",
    "pulse below range",
    "duty zero",
    "too many steps",
    "channel twice",
    "fluence step without target",
    "plan id zero",
]


@pytest.mark.parametrize("case", BAD_PLAN_CASES)
def test_plan_upload_nacks(target: Target, case: str) -> None:
    async def body(cap: Cap) -> None:
        await idle(cap)
        bad, code = _bad_plans(cap)[case]
        with pytest.raises(Rejected) as exc:
            await cap.upload(bad)
        assert exc.value.code == code, exc.value
        if code == W.NackCode.LIMIT_IRRADIANCE:
            assert exc.value.channel == red(cap)[0]
            assert exc.value.limit == round(cap.info.limits.max_irradiance_mw_cm2 * 100)
        assert (await cap.status()).state == W.State.IDLE  # nothing was loaded

    target.run(body)


def test_good_plan_loads_and_replaces(target: Target) -> None:
    async def body(cap: Cap) -> None:
        await idle(cap)
        first = await cap.upload(plan(cap))
        assert (await cap.status()).state == W.State.READY
        second = await cap.upload(plan(cap))
        with pytest.raises(Rejected) as exc:
            await cap.start(first)
        assert exc.value.code == W.NackCode.PLAN_MISMATCH
        assert exc.value.limit == second or exc.value.limit == second - 2**32
        await idle(cap)

    target.run(body)


def test_unsigned_upload_needs_auth(target: Target) -> None:
    async def body(cap: Cap) -> None:
        await idle(cap)
        if not cap.info.hello.capabilities & W.Capability.AUTH_REQUIRED:
            pytest.skip("this device does not ask for authentication")
        with pytest.raises(AuthError) as exc:
            await cap.request(plan(cap), sign=False)
        assert exc.value.code == W.NackCode.AUTH_REQUIRED

    target.run(body)


def test_wrong_key_is_refused(target: Target) -> None:
    async def body(cap: Cap) -> None:
        await idle(cap)
        with pytest.raises(AuthError) as exc:
            await cap.upload(plan(cap))
        assert exc.value.code == W.NackCode.AUTH_FAILED

    target.run(body, key=bytes(range(32)))


def test_start_without_plan(target: Target) -> None:
    async def body(cap: Cap) -> None:
        await idle(cap)
        with pytest.raises(Rejected) as exc:
            await cap.start(Cap.new_plan_id())
        assert exc.value.code == W.NackCode.NO_PLAN

    target.run(body)


# --- sessions ------------------------------------------------------------------------------


def test_start_is_idempotent_and_recorded_once(target: Target) -> None:
    async def body(cap: Cap) -> None:
        await idle(cap)
        p = plan(cap, seconds=2.0)
        pid = await cap.upload(p)
        with cap.events() as events:
            first = await cap.start(pid)
            assert first.result == W.StartResult.STARTED
            again = await cap.start(pid)
            assert again.result == W.StartResult.ALREADY_RUNNING
            assert again.start_ms == first.start_ms
            end = await next_event(events, cap, W.EventKind.SESSION_END, 5.0)
        assert end.a == W.Outcome.COMPLETED
        late = await cap.start(pid)
        assert late.result == W.StartResult.ALREADY_FINISHED
        records = [r for r in await cap.records() if r.plan_id == pid]
        assert len(records) == 1
        rec = records[0]
        assert rec.outcome == W.Outcome.COMPLETED
        idx = [cap.info.channel_index[c] for c in red(cap)]
        for i in idx:
            assert rec.fluence[i] == pytest.approx(3.0 * 2.0 / 1000, rel=0.02)

    target.run(body)


def test_pause_and_resume(target: Target) -> None:
    async def body(cap: Cap) -> None:
        await idle(cap)
        pid = await cap.upload(plan(cap, seconds=4.0))
        with cap.telemetry() as tel:
            await cap.start(pid)
            t = await next_telemetry(tel, cap)
            while not t.emitting:
                t = await next_telemetry(tel, cap)
            await cap.pause()
            t = await next_telemetry(tel, cap)
            while t.state != W.State.PAUSED:
                t = await next_telemetry(tel, cap)
            paused_at = t.elapsed_ms
            t2 = await next_telemetry(tel, cap)
            t2 = await next_telemetry(tel, cap)
            assert t2.state == W.State.PAUSED and not t2.emitting
            assert t2.flags & W.TelemetryFlag.PAUSED_BY_HOST
            assert all(v == 0 for v in t2.irradiance)
            assert t2.elapsed_ms == paused_at  # paused time does not count
            await cap.resume()
            t = await next_telemetry(tel, cap)
            while not t.emitting:
                t = await next_telemetry(tel, cap)
            assert t.state == W.State.RUNNING
        await idle(cap)

    target.run(body)


def test_abort_turns_emitters_off_by_the_next_frame(target: Target) -> None:
    async def body(cap: Cap) -> None:
        await idle(cap)
        pid = await cap.upload(plan(cap, seconds=30.0))
        with cap.stream() as stream:
            await cap.start(pid)
            t = await next_telemetry(stream, cap)
            while not t.emitting:
                t = await next_telemetry(stream, cap)
            await cap.abort(W.AbortReason.USER)
            after: W.Telemetry | None = None
            end: W.Event | None = None
            while after is None or end is None:
                msg = await stream.get(cap.host_seconds(1000) + HOST_SLACK_S)
                if isinstance(msg, W.Telemetry) and after is None:
                    after = msg
                elif isinstance(msg, W.Event) and msg.kind == W.EventKind.SESSION_END:
                    end = msg
        # the very first frame after the ACK shows the emitters off
        assert not after.emitting
        assert all(v == 0 for v in after.irradiance)
        assert after.state == W.State.IDLE
        assert end.a == W.Outcome.ABORTED and end.b == W.AbortReason.USER
        rec = next(r for r in await cap.records() if r.plan_id == pid)
        assert rec.outcome == W.Outcome.ABORTED

    target.run(body)


@pytest.mark.parametrize("policy", [W.LinkPolicy.STOP, W.LinkPolicy.FINISH])
def test_lease_expiry_applies_the_plan_policy(target: Target, policy: W.LinkPolicy) -> None:
    async def body(cap: Cap) -> None:
        await idle(cap)
        p = plan(cap, seconds=4.0, policy=policy, lease_ms=1000)
        pid = await cap.upload(p)
        with cap.events() as events:
            # START without the client's heartbeat: the host "vanishes" after starting
            await cap.request(W.Start(pid), sign=True)
            expired = await next_event(events, cap, W.EventKind.LEASE_EXPIRED, 3.0)
            assert expired.a == policy
            end = await next_event(events, cap, W.EventKind.SESSION_END, 6.0)
        rec = next(r for r in await cap.records() if r.plan_id == pid)
        if policy == W.LinkPolicy.STOP:
            assert end.a == W.Outcome.LEASE_STOP
            assert rec.outcome == W.Outcome.LEASE_STOP
            assert expired.time_ms - rec.start_ms == pytest.approx(1000, abs=30)
            assert end.time_ms - expired.time_ms <= 10  # emitters off within one tick
        else:
            assert end.a == W.Outcome.COMPLETED
            assert rec.outcome == W.Outcome.COMPLETED
            assert rec.end_ms - rec.start_ms == pytest.approx(4000, abs=30)
        status = await cap.status()
        assert not status.emitting

    target.run(body)


def test_heartbeats_keep_the_lease(target: Target) -> None:
    async def body(cap: Cap) -> None:
        await idle(cap)
        pid = await cap.upload(plan(cap, seconds=4.0, policy=W.LinkPolicy.STOP, lease_ms=1000))
        with cap.events() as events:
            await cap.start(pid)  # the client renews the lease in the background
            seen = []
            while True:
                msg = await events.get(cap.host_seconds(6000) + HOST_SLACK_S)
                seen.append(msg.kind)
                if msg.kind == W.EventKind.SESSION_END:
                    break
        assert W.EventKind.LEASE_EXPIRED not in seen
        assert msg.a == W.Outcome.COMPLETED

    target.run(body)


def test_telemetry_rate_follows_request(target: Target) -> None:
    async def body(cap: Cap) -> None:
        await idle(cap)
        await cap.set_telemetry_rate(20)
        try:
            with cap.telemetry() as tel:
                first = await next_telemetry(tel, cap)
                times = [first.time_ms]
                while times[-1] - times[0] < 2000:
                    times.append((await next_telemetry(tel, cap)).time_ms)
        finally:
            await cap.set_telemetry_rate(10)
        gaps = {b - a for a, b in itertools.pairwise(times)}
        assert gaps == {50}
        with pytest.raises(Rejected) as exc:
            await cap.set_telemetry_rate(cap.info.limits.max_telemetry_hz * 2)
        assert exc.value.code == W.NackCode.BAD_VALUE

    target.run(body)


def test_status_reports_device_time_and_state(target: Target) -> None:
    async def body(cap: Cap) -> None:
        await idle(cap)
        a = await cap.status()
        assert a.state == W.State.IDLE and a.step == W.NO_INDEX
        assert len(a.irradiance) == len(cap.info.channels)
        assert len(a.temperature) == len(cap.info.zones)
        assert all(t is not None and 20 < t < 40 for t in a.temperature)

    target.run(body)

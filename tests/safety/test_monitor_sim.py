"""The runtime monitor on the simulator's real telemetry, in virtual time.

A minimal supervisor (what the session runner does with the monitor's actions: send the
derate, abort on an abort) runs sessions on ``sim://`` so that the monitor's thresholds
and graces meet real ramps, emitter tolerance, sensor noise and the device's own timing:
a nominal session must not trip anything, a hot room must derate a fluence phase that
still delivers its target, and faults must end in an abort.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from lllt import clock, wire
from lllt.device import Cap
from lllt.info import DeviceInfo
from lllt.plan import SessionPlan
from lllt.safety.monitor import ActionKind, MonitorAction, RuntimeMonitor
from lllt.safety.thermal import predict

from ._support import MIN, make_plan, step


@dataclass
class Supervised:
    plan: SessionPlan
    monitor: RuntimeMonitor
    actions: list[MonitorAction]
    record: wire.SessionRecord


async def _supervise(url: str, build: Callable[[DeviceInfo], SessionPlan]) -> Supervised:
    async with Cap.connect(url) as cap:
        plan = build(cap.info)
        plan_id = await cap.upload(plan.to_wire(cap.new_plan_id()))
        mon = RuntimeMonitor(plan, cap.info, plan_id=plan_id)
        actions: list[MonitorAction] = []
        loop = asyncio.get_running_loop()
        # a bound in loop time (device time restarts at a reboot), so that a monitor that
        # misses the end cannot loop forever
        give_up = loop.time() + cap.host_seconds((plan.max_duration_s + 60.0) * 1000)
        with cap.stream() as sub:
            await cap.start(plan_id)
            while True:
                msg = await sub.get(timeout=mon.silence_timeout_s)
                if loop.time() > give_up:
                    pytest.fail(f"no end or abort after {plan.max_duration_s + 60:g} s")
                if isinstance(msg, wire.Telemetry):
                    action = mon.on_telemetry(msg, loop.time())
                else:
                    action = mon.on_event(msg)
                if action.kind is ActionKind.DERATE:
                    assert action.permille is not None
                    await cap.derate(action.permille)
                elif action.kind is ActionKind.ABORT:
                    if not action.by_device:
                        await cap.abort(wire.AbortReason.SAFETY_MONITOR)
                    actions.append(action)
                    break
                if not action.is_continue:
                    actions.append(action)
                if isinstance(msg, wire.Event) and msg.kind == wire.EventKind.SESSION_END:
                    break
        (record,) = await cap.records(1)
        return Supervised(plan, mon, actions, record)


def supervise(url: str, build: Callable[[DeviceInfo], SessionPlan]) -> Supervised:
    return clock.run(_supervise(url, build), virtual=True)


def test_a_nominal_session_trips_nothing_and_the_integrals_agree() -> None:
    run = supervise(
        "sim://reference-cap?speed=max&seed=3",
        lambda d: make_plan(d, step(d, {655: 3.0, 735: 2.0}, duration=5 * MIN, ramp=10.0)),
    )
    assert run.actions == []
    assert run.record.outcome is wire.Outcome.COMPLETED
    for host, device in zip(run.monitor.host_fluence, run.record.fluence, strict=True):
        assert host == pytest.approx(device, rel=0.01, abs=1e-3)


def test_a_fluence_phase_at_34_C_is_derated_and_still_delivers_its_target() -> None:
    def build(d: DeviceInfo) -> SessionPlan:
        return make_plan(d, step(d, {655: 10.0, 735: 10.0}, fluence=3.0, max_duration=30 * MIN))

    run = supervise("sim://reference-cap?speed=max&seed=3&ambient=34", build)
    derates = [a for a in run.actions if a.kind is ActionKind.DERATE]
    assert derates and all(a.rule == "overtemp_derate" for a in derates)
    assert [a for a in run.actions if a.kind is ActionKind.ABORT] == []
    assert run.record.outcome is wire.Outcome.COMPLETED
    assert all(f == pytest.approx(3.0, rel=0.01) for f in run.record.fluence)
    # preflight's prediction foresaw the derating and accepted the phase
    pred = predict(run.plan, ambient_c=34.0)
    assert pred.ok and pred.steps[0].derated


@pytest.mark.parametrize(
    ("fault", "rule"),
    [
        ("led_open:0@20s", "irradiance_deviation"),  # only the host sees an emitter go dark
        ("stuck_on:1@20s", "device_interlock"),  # the cap's OVER_OUTPUT trips first
        ("reboot@20s", "device_reboot"),
    ],
)
def test_faults_end_in_an_abort(fault: str, rule: str) -> None:
    run = supervise(
        f"sim://reference-cap?speed=max&seed=3&faults={fault}",
        lambda d: make_plan(d, step(d, {655: 3.0}, duration=2 * MIN)),
    )
    abort = run.actions[-1]
    assert (abort.kind, abort.rule) == (ActionKind.ABORT, rule)
    assert run.record.outcome is not wire.Outcome.COMPLETED

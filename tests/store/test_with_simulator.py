"""The recorder fed by a real simulated device: what the runner will hand it, frame by frame."""

from __future__ import annotations

import pytest

from lllt import clock, wire
from lllt.device import Cap
from lllt.plan import compile as compile_plan
from lllt.protocol import loads_protocol
from lllt.store import Kept, SessionRow, SessionStart, Status, Store

from ._support import PROTOCOL_TEXT


async def _run(store: Store) -> SessionRow:
    async with Cap.connect("sim://reference-cap?speed=max&seed=1") as cap:
        plan = compile_plan(loads_protocol(PROTOCOL_TEXT), cap.info)
        plan_id = cap.new_plan_id()
        start = SessionStart.from_plan(
            plan, protocol_text=PROTOCOL_TEXT, device_url="sim://reference-cap", plan_id=plan_id
        )
        rec = store.begin_session(start, created_at=clock.wall_time())
        with cap.stream() as stream:
            await cap.upload(plan.to_wire(plan_id))
            await cap.start(plan_id)
            rec.started(clock.wall_time(), plan_id=plan_id)
            async for msg in stream:
                if isinstance(msg, wire.Telemetry):
                    rec.sample(clock.wall_time(), msg)
                elif isinstance(msg, wire.Event):
                    rec.device_event(clock.wall_time(), msg)
                    if msg.kind == wire.EventKind.SESSION_END:
                        break
            after = await stream.get(timeout=1.0)
            while not isinstance(after, wire.Telemetry):
                after = await stream.get(timeout=1.0)
            rec.sample(clock.wall_time(), after)  # the frame showing the emitters off
        (record, *_older) = await cap.records()
        return rec.finish(
            clock.wall_time(),
            status=Status.COMPLETED,
            outcome=record.outcome.name.lower(),
            exit_code=0,
            delivered_by_channel=record.fluence,
        )


def test_a_simulated_session_is_recorded_in_full(store: Store) -> None:
    row = clock.run(_run(store), virtual=True)
    assert row.status == Status.COMPLETED and row.outcome == "completed"
    assert row.delivered_fluence[655] == pytest.approx(row.planned_fluence[655], rel=0.01)
    assert row.duration_s == pytest.approx(30.0, abs=0.2)  # virtual time, not wall time
    warmup, treatment = store.phases(row.id)
    assert warmup.ended_at == treatment.started_at
    assert treatment.ended_at - warmup.started_at == pytest.approx(30.0, abs=0.2)
    assert warmup.delivered_fluence[655] == pytest.approx(0.03, rel=0.02)
    assert treatment.delivered_fluence[655] == pytest.approx(0.06, rel=0.02)
    kinds = [e.kind for e in store.events(row.id)]
    assert kinds.count("STEP") == 2 and kinds[-1] == "SESSION_END"
    telemetry = store.telemetry(row.id)
    assert sum(1 for t in telemetry if t.kept == Kept.PERIODIC) == pytest.approx(31, abs=1)
    assert not telemetry[-1].flags & wire.TelemetryFlag.EMITTING  # the record ends dark

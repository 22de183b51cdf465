"""Record retrieval with Record Access Control Point semantics (wire spec §9.1)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from lllt import clock
from lllt import wire as W
from lllt.device import Cap, fetch_records
from lllt.errors import Rejected


async def sessions(cap: Cap, n: int) -> list[int]:
    red = [c.id for c in cap.info.channels if c.wavelength_nm == 655]
    step = W.PlanStep(
        W.StepKind.DURATION, 200, 0, 0.0, 100.0, tuple(W.ChannelSetpoint(c, 3.0) for c in red)
    )
    ids = []
    for _ in range(n):
        plan = W.UploadPlan(Cap.new_plan_id(), W.LinkPolicy.FINISH, 1000, (step,))
        await cap.upload(plan)
        await cap.start(plan.plan_id)
        await asyncio.sleep(0.5)
        ids.append(plan.plan_id)
    return ids


def run(url: str, body: Any) -> Any:
    async def main() -> Any:
        async with Cap.connect(url) as cap:
            return await body(cap)

    return clock.run(main(), virtual=True, speed=None)


def test_count_report_from_n_and_sequence_numbers_survive_deletion_and_reboot(
    tmp_path: Path,
) -> None:
    state = tmp_path / "sim.json"
    url = f"blesim://reference-cap?speed=max&state={state}"

    async def first(cap: Cap) -> Any:
        ids = await sessions(cap, 18)  # two more than the device keeps
        recs = [r async for r in cap.report_records(0)]
        return ids, recs, await cap.record_count(0), await cap.record_count(10)

    ids, recs, count, from10 = run(url, first)
    seqs = [r.seq for r in recs]
    assert seqs == list(range(3, 19))  # the oldest two deleted; numbers never reused
    assert [r.record.plan_id for r in recs] == ids[2:]
    assert count == 16 and from10 == 9

    async def after_reboot(cap: Cap) -> Any:
        await sessions(cap, 1)
        return [r.seq async for r in cap.report_records(18)]

    assert run(url, after_reboot) == [18, 19]  # a new process: numbering goes on


def test_one_procedure_at_a_time_and_abort() -> None:
    async def body(cap: Cap) -> Any:
        await sessions(cap, 5)
        types = frozenset({W.MsgType.RECORD, W.MsgType.RECORDS_END})
        with cap._subscribe(types, 100) as sub:
            await cap.request(W.RecordAccess(W.RecordOp.REPORT, 0))
            try:
                await cap.request(W.RecordAccess(W.RecordOp.REPORT, 0))
                busy = 0
            except Rejected as err:
                busy = err.code  # type: ignore[attr-defined]
            first = await sub.get(2.0)
            await cap.request(W.RecordAccess(W.RecordOp.ABORT))
            msgs = [first]
            while not isinstance(msgs[-1], W.RecordsEnd):
                msgs.append(await sub.get(2.0))
        return busy, msgs

    busy, msgs = run("blesim://reference-cap?speed=max", body)
    assert busy == W.NackCode.BUSY
    end = msgs[-1]
    assert end.status == W.RecordsEndStatus.ABORTED
    assert 1 <= end.count < 5 and end.count == len(msgs) - 1


@pytest.mark.parametrize("mtu", [23, 247])
def test_a_retrieval_cut_by_a_link_drop_resumes_without_gaps_or_duplicates(mtu: int) -> None:
    async def body(cap: Cap) -> Any:
        await sessions(cap, 12)
        t: Any = cap.transport
        received = 0

        def cut_after_five(msg: W.Message) -> None:
            nonlocal received
            received += 1
            if received == 5:  # the cap goes out of range mid-report
                conn = t.setup.peripheral.connection
                asyncio.get_running_loop().create_task(conn.disconnect())

        original = cap._unsolicited

        def spy(seq: int, msg: W.Message) -> None:
            if isinstance(msg, W.Record):
                cut_after_five(msg)
            original(seq, msg)

        cap._unsolicited = spy  # type: ignore[method-assign]
        got = await fetch_records(cap, 0, reconnect_s=10.0)
        return got, t.setup.peripheral.stats.connections

    got, connections = run(f"blesim://reference-cap?speed=max&mtu={mtu}", body)
    assert connections == 2  # it really dropped and came back
    assert [r.seq for r in got] == list(range(1, 13))

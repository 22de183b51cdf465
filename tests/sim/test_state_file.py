"""The optional state file: records and boot count survive a restart of the simulator, and
a session the process died in comes back as POWER_LOSS with its last checkpoint."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from lllt import wire as W
from lllt_sim.device import SimDevice
from lllt_sim.records import StateFileError

from ._support import Host, red, simulate


def test_records_and_boot_count_survive_a_restart(tmp_path: Path) -> None:
    state = str(tmp_path / "cap.json")

    async def first(h: Host) -> None:
        h.hello()
        h.start_plan(red(3.0, 2, plan_id=11))
        await asyncio.sleep(3)
        h.start_plan(red(3.0, 60, plan_id=12))
        await asyncio.sleep(5.5)  # then the process stops mid-session

    simulate(first, state_file=state)

    async def second(h: Host) -> None:
        info = h.hello()
        assert info.boot_count == 2
        recs = h.records()
        assert [r.plan_id for r in recs] == [12, 11]
        assert recs[1].outcome == W.Outcome.COMPLETED
        assert recs[1].fluence[0] == pytest.approx(0.006, abs=1e-6)
        # found unfinished at boot: power loss, with the last checkpoint (5 s after START)
        assert recs[0].outcome == W.Outcome.POWER_LOSS
        assert recs[0].fluence[0] == pytest.approx(3.0 * (5.0 - 0.01) / 1000, abs=1e-6)
        h.upload(red(3.0, 60, plan_id=12))
        again = h.request(W.Start(12), sign=True)
        assert isinstance(again, W.Started)
        assert again.result == W.StartResult.ALREADY_FINISHED  # never twice

    simulate(second, state_file=state)


def test_a_bad_state_file_is_refused_with_its_name(tmp_path: Path) -> None:
    path = tmp_path / "cap.json"
    path.write_text("{not json")
    with pytest.raises(StateFileError, match=r"cap\.json"):
        SimDevice("reference-cap", state_file=str(path))
    path.write_text(
        json.dumps(
            {
                "format": "lllt-sim-state/1",
                "profile": "laser-cap-678",
                "boot_count": 1,
                "records": [],
            }
        )
    )
    with pytest.raises(StateFileError, match="laser-cap-678"):
        SimDevice("reference-cap", state_file=str(path))

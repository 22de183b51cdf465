"""Idle stretches in one step (``lllt_fw_idle``): the same firmware, the same runs.

Under the fault explorer most device time is an idle cap between sessions, and stepping
the firmware library through it one 10 ms tick at a time was most of CI's time. The
library passes an idle stretch in one call, and the fw:// device uses it only where the
plant can prove nothing happens (dark, readings far from every threshold, no timer of
the host's before the end). These tests hold it to "nothing changes": the firmware left
by one call is the firmware left by the ticks one by one, a run of the explorer is the
same run bit for bit, and the library refuses (or traps on) a stretch that is not idle.
"""

from __future__ import annotations

import ctypes
import re
from typing import Any

import pytest

from lllt import wire
from lllt_sim.fwdevice import FirmwareDevice

from .test_firmware_build import _fresh


class Fw:
    """One library instance on the test plant, driven by hand."""

    def __init__(self) -> None:
        self.lib, self.mem, self.plant, self._cfg, self._board = _fresh()
        self.dec = wire.FrameDecoder()
        self.out: list[bytes] = []  # every frame it sent, in order
        self.auth: wire.AuthState | None = None
        (info,) = self.send(wire.Hello(), 1, 0)
        assert isinstance(info, wire.HelloInfo)
        self.auth = wire.AuthState(wire.DEVELOPMENT_KEY, info.nonce)

    def collect(self) -> list[wire.Message]:
        frames = self.dec.feed(bytes(self.plant.out))
        self.plant.out.clear()
        self.out += [wire.encode_frame(f.type, f.seq, f.payload, flags=f.flags) for f in frames]
        return [wire.decode_message(f) for f in frames]

    def send(self, msg: wire.Message, seq: int, t: int, sign: bool = False) -> list[wire.Message]:
        b = wire.encode_message(msg, seq, auth=self.auth if sign else None)
        self.lib.lllt_fw_rx(self.mem, b, len(b))
        self.lib.lllt_fw_poll(self.mem, t)
        return self.collect()

    def next_due(self) -> int:
        return int(self.lib.lllt_fw_next_due(self.mem))

    def snapshot(self) -> dict[str, Any]:
        from .fwlib_ctypes import Snapshot

        s = Snapshot()
        self.lib.lllt_fw_snapshot_get(self.mem, ctypes.byref(s))
        out = {}
        for name, _ in Snapshot._fields_:
            v = getattr(s, name)
            out[name] = list(v) if hasattr(v, "__len__") else v
        return out


def _session(fw: Fw) -> None:
    fw.send(wire.SetTelemetry(1), 2, 0)  # a sample a second: the idle room ends at each
    step = wire.PlanStep(
        wire.StepKind.DURATION, 3000, 0, 0.0, 100.0, (wire.ChannelSetpoint(0, 3.0),)
    )
    plan = wire.UploadPlan(plan_id=9, policy=wire.LinkPolicy.FINISH, lease_ms=5000, steps=(step,))
    assert isinstance(fw.send(plan, 3, 0, sign=True)[0], wire.Ack)
    assert isinstance(fw.send(wire.Start(9), 4, 0, sign=True)[0], wire.Started)


def test_one_idle_call_leaves_the_firmware_as_its_ticks_one_by_one() -> None:
    one, many = Fw(), Fw()
    for fw in (one, many):
        _session(fw)
    assert one.lib.lllt_fw_idle_room(one.mem) == 0  # a session runs: no idle stretch
    assert one.lib.lllt_fw_idle(one.mem, 5) == 0
    end = 60_000
    while one.next_due() <= end:  # ticks one by one
        one.lib.lllt_fw_poll(one.mem, one.next_due())
        one.collect()
    calls = 0
    while many.next_due() <= end:  # idle stretches in one call where the library allows
        room = min(many.lib.lllt_fw_idle_room(many.mem), (end - many.next_due()) // 10 + 1)
        if room >= 2:
            n = min(room, 37 + calls % 50)  # stretches of many lengths
            assert many.lib.lllt_fw_idle(many.mem, n) == n
            calls += 1
        else:
            many.lib.lllt_fw_poll(many.mem, many.next_due())
        many.collect()
    assert calls > 100  # the idle path was taken, between the samples
    drop = {"now_ms"}  # the clock of the last call: a sample's time or a tick's
    snap_one = {k: v for k, v in one.snapshot().items() if k not in drop}
    snap_many = {k: v for k, v in many.snapshot().items() if k not in drop}
    assert snap_one == snap_many and snap_one["ticks"] >= 5999
    for fw in (one, many):
        fw.send(wire.GetStatus(), 20, end)
        fw.send(wire.GetRecords(4), 21, end)
    # everything either sent: the samples (times, temperatures, fluence), the session's
    # end, the status and records at the end; the nonces differ, so HELLO_INFO is left out
    assert one.out[1:] == many.out[1:] and len(one.out) > 60
    assert one.lib.lllt_fw_traps(one.mem) == 0 and many.lib.lllt_fw_traps(many.mem) == 0


def test_a_stretch_that_is_not_idle_is_refused_or_traps() -> None:
    fw = Fw()
    fw.lib.lllt_fw_poll(fw.mem, 100)
    room = fw.lib.lllt_fw_idle_room(fw.mem)
    assert room >= 2
    assert fw.lib.lllt_fw_idle(fw.mem, 0) == 0
    assert fw.lib.lllt_fw_idle(fw.mem, room + 1) == 0  # beyond the room: nothing done
    assert fw.snapshot()["ticks"] == 10
    # the caller's promise broken: the last reading is at the cut-off (it would have
    # tripped in a tick passed over) -> a trap, the instance reboots, nothing is idled
    fw.plant.temp_q = 9000
    assert fw.lib.lllt_fw_idle(fw.mem, fw.lib.lllt_fw_idle_room(fw.mem)) == 0
    assert fw.lib.lllt_fw_traps(fw.mem) == 1
    assert fw.plant.pwm[0][0] == 0  # emitters dark


def _strip(logs: Any) -> str:
    # what differs between any two runs: random ids and this process's pid
    return re.sub(r"(uuid|host_token)='[^']*'|host_pid=\d+|process \d+", "", repr(logs))


@pytest.mark.parametrize("seed", [1, 6])
def test_explorer_runs_are_the_same_with_idle_stretches_in_one_step(
    fw_library: None, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lllt.explore.adapter import adapter
    from lllt.explore.runner import run_scenario
    from lllt.explore.scenario import draw

    passed = [0]  # ticks passed over in idle steps
    idle = FirmwareDevice._idle

    def counting(self: FirmwareDevice, due: int) -> bool:
        before = self.stats["ticks"]
        ok = idle(self, due)
        if ok:
            passed[0] += self.stats["ticks"] - before
        return ok

    monkeypatch.setattr(FirmwareDevice, "_idle", counting)
    fast = run_scenario(draw(seed), adapter("fw"))
    assert passed[0] > 10_000, "no idle stretch was stepped over"
    monkeypatch.setattr(FirmwareDevice, "IDLE_MAX_TICKS", 0)  # one tick at a time
    slow = run_scenario(draw(seed), adapter("fw"))
    assert _strip(fast.logs) == _strip(slow.logs)
    for name, value in vars(slow).items():
        if name not in ("logs", "wall_s"):
            assert repr(vars(fast)[name]) == repr(value), name

"""The fault explorer's view of the C firmware: a ``DeviceHandle`` over ``fw://``.

The explorer (``lllt.explore.adapter.FwAdapter``) drives the firmware library
(``lllt_sim.fwdevice.FirmwareDevice``) through the same host code as the simulator. The
ground truth comes from outside the firmware's own accounting: sessions from the events it
sends, the fluence and emitting time of each from the light the plant really emitted
(``Plant.emitted``), the records from the firmware at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from pathlib import Path
from typing import Any

from lllt import wire as W
from lllt.explore.adapter import CapHandle, TrueSession, Truth, _enum, _sample, _SharedLink
from lllt.transport import DeviceURL
from lllt.transport.base import Transport


def explorer_handle(spec: Any, workdir: Path) -> Any:
    """One firmware cap for the explorer: the ``DeviceHandle`` of ``lllt.explore.adapter``.

    The ground truth comes from outside the firmware's own accounting: sessions from the
    events it sends, the fluence and emitting time of each from the light the plant
    really emitted (``Plant.emitted``), the records from the firmware at the end.
    """
    return FwHandle(spec, workdir)


class FwHandle(CapHandle):
    """A firmware cap (``lllt_sim.fwdevice.FirmwareDevice``) and its ground truth."""

    scheme = "fw"

    def __init__(self, spec: Any, workdir: Path) -> None:
        from lllt_sim import fwlib

        self.spec = spec
        self.workdir = workdir
        self.nv = bytearray(b"\xff" * fwlib.NV_SIZE)  # the cap's flash, across power cycles
        self.device: Any = None
        self.attached: Any = None
        self.truth = Truth()
        self._task: asyncio.Task[None] | None = None
        self._powered = 0
        self._last_sample_s = -1
        self._plans: dict[int, tuple[int, ...]] = {}
        self._out = W.FrameDecoder()
        self._in = W.FrameDecoder()
        self._at_start: tuple[list[int], int] = ([], 0)

    # --- power ---------------------------------------------------------------------------
    async def power_on(self, *, wiped: bool = False) -> None:
        """Switch the cap on; ``wiped``: its flash is erased (a reset, a repaired cap)."""
        from lllt_sim.fwdevice import FirmwareDevice

        if wiped:
            self.nv[:] = b"\xff" * len(self.nv)
        faults = self.spec.faults if self._powered == 0 else ""
        self._powered += 1
        dev = FirmwareDevice(
            self.spec.profile,
            seed=self.spec.seed,
            faults=faults,
            ambient_c=self.spec.ambient_c,
            clock_rate=0.0,
            nv=self.nv,
        )
        p = dev.profile
        self.truth.describe(p)
        self._index = {c.id: i for i, c in enumerate(p.channels)}
        self._out = W.FrameDecoder()
        self._in = W.FrameDecoder()
        dev.on_output = self._observe_out
        dev.on_input = self._observe_in
        dev.attach(self._from_device)
        self.device = dev
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(dev.run(), name="explore:fw")
        await asyncio.sleep(0)
        self._snap("power_on", boot=dev.snapshot()["boot_count"])
        self._quiet()

    async def power_off(self) -> None:
        """Switch the cap off: a running session ends in the truth as ``power_off``, the records
        are read from the firmware, the host link is lost; the flash survives."""
        dev = self.device
        if dev is None:
            return
        running = self.truth.running
        if running is not None:
            self._end(running, "power_off", asyncio.get_running_loop().time())
        self._snap("power_off")
        with contextlib.suppress(Exception):
            self.truth.records = dev.records()
        if self.attached is not None:
            self.attached.replaced()
            self.attached = None
        self.device = None
        dev.close()
        if self._task is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(self._task, 1.0)
            self._task = None

    def final_records(self) -> tuple[W.SessionRecord, ...]:
        """The firmware's session records; when it is off, those read at the last power-off."""
        if self.device is None:
            return self.truth.records
        return tuple(self.device.records())

    # --- links ---------------------------------------------------------------------------
    def transport(self, link: str, link_seed: int) -> Transport:
        """A new host link to this cap, with the ``link`` fault rules (seeded by ``link_seed``)
        when given; opening it replaces the previous link."""
        s = self.spec
        query = f"speed=max&seed={s.seed}&ambient={s.ambient_c:g}"
        options = {"link": link, "link_seed": str(link_seed)} if link else {}
        url = DeviceURL(f"fw://{s.profile}?{query}", "fw", "", options)
        return _SharedLink(url, self)

    def side_channel(self, data: bytes) -> bool:
        """Bytes from a second wired client, as the simulator's handle takes them. False
        when they cannot reach the firmware intact: off, or its own link faults
        (``link_drop``, ``corrupt``) active on its input now. (It said nothing, and the
        explorer took every such ABORT as delivered: differential seed 3412.)"""
        from lllt_sim.link import link_state

        dev = self.device
        if dev is None:
            return False
        windows = dev._windows
        drop, rate = (
            link_state(windows, dev._abs_now())
            if windows and dev._loop is not None
            else (False, 0.0)
        )
        dev.feed(data)
        return not drop and rate == 0.0

    # --- ground truth ----------------------------------------------------------------------
    def _loop_t(self, abs_ms: int) -> float:
        return float(self.device._t0) + abs_ms / 1000.0

    def _observe_in(self, at: int, data: bytes) -> None:
        for f in self._in.feed(data):
            if f.type != W.MsgType.UPLOAD_PLAN:
                continue
            payload = f.payload
            if f.flags & W.FLAG_AUTH and len(payload) >= W.AUTH_TRAILER.size:
                payload = payload[: -W.AUTH_TRAILER.size]
            try:
                plan = W.UploadPlan.parse(payload)
            except W.WireError:
                continue
            on = {
                self._index[sp.channel]
                for st in plan.steps
                for sp in st.setpoints
                if sp.irradiance_mw_cm2 > 0 and sp.channel in self._index
            }
            self._plans[plan.plan_id] = tuple(sorted(on))

    def _observe_out(self, at: int, data: bytes) -> None:
        truth = self.truth
        for f in self._out.feed(data):
            if f.type == W.MsgType.TELEMETRY:
                try:
                    t = W.Telemetry.parse(f.payload)
                except W.WireError:
                    continue
                when = self._loop_t(at)
                if t.flags & W.TelemetryFlag.EMITTING:
                    hot = max((c for c in t.temperature if c is not None), default=-math.inf)
                    if hot > truth.max_emitting_c:
                        truth.max_emitting_c, truth.max_emitting_at = hot, when
                sec = int(when)
                if sec != self._last_sample_s:
                    self._last_sample_s = sec
                    truth.trace.append(_sample(t, when))
            elif f.type == W.MsgType.EVENT:
                try:
                    e = W.Event.parse(f.payload)
                except W.WireError:
                    continue
                when = self._loop_t(at)
                kind = int(e.kind)
                if kind == W.EventKind.SESSION_END:
                    s = truth.running
                    if s is not None:
                        self._end(s, _enum(W.Outcome, e.a), when)
                    if self.attached is None:
                        asyncio.get_running_loop().call_soon(self._quiet)
                elif kind == W.EventKind.BOOT:
                    s = truth.running
                    if s is not None:  # the record says less (its last checkpoint)
                        self._end(s, "power_loss", when)
                    if self.attached is None:
                        asyncio.get_running_loop().call_soon(self._quiet)
                truth.trace.append({
                    "t_ms": round(when * 1000), "kind": "event",
                    "event": _enum(W.EventKind, kind), "a": e.a, "b": e.b,
                    "value": e.value, "limit": e.limit,
                })  # fmt: skip
                if kind == W.EventKind.STEP and e.a == 0 and truth.running is None:
                    self._start(e.value, when)

    def _start(self, plan_id: int, when: float) -> None:
        plant = self.device.plant
        self._at_start = (list(plant.emitted), plant.emitting_ticks)
        boot = self.device.snapshot()["boot_count"]
        s = TrueSession(plan_id, when, boot, self._plans.get(plan_id, ()))
        self.truth.sessions.append(s)
        self.truth.trace.append(
            {"t_ms": round(when * 1000), "kind": "session_start", "plan_id": plan_id, "boot": boot}
        )

    def _end(self, s: Any, outcome: str, when: float) -> None:
        from lllt_sim.engine import _u2uj

        plant = self.device.plant
        emitted0, ticks0 = self._at_start
        s.end_t = when
        s.outcome = outcome
        s.fluence_uj = tuple(_u2uj(a - b) for a, b in zip(plant.emitted, emitted0, strict=True))
        s.emit_ms = (plant.emitting_ticks - ticks0) * plant.tick_ms
        self.truth.trace.append({"t_ms": round(when * 1000), "kind": "session_end", **s.to_dict()})

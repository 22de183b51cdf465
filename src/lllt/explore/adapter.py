"""Ground truth behind a small interface: what the device really did, whatever the host saw.

The explorer drives a device through the host's real code (``lllt.device.Cap`` over a
:class:`lllt.transport.base.Transport`) and judges the host against what the device
really emitted. Everything it needs from the device goes through two small classes, so
that another device implementation (the C firmware as a library, ``fw://``; the
simulator behind an in-process BLE link, ``blesim://``) plugs in by providing its own:

:class:`DeviceAdapter`
    ``name`` (``sim``, ``fw``, ...), ``unavailable()`` (None, or why it cannot run on
    this machine) and ``create(spec, workdir)`` -> a :class:`DeviceHandle`.

:class:`DeviceHandle` (one cap, kept across host runs and power cycles)
    ``power_on()`` / ``power_off()`` (records survive, RAM does not),
    ``transport(link, link_seed)`` (a new host connection to this cap, with the link
    fault layer in front; a new connection replaces the previous one, as on a TCP server
    or a BLE peripheral), ``busy`` (a session is running on the device), and
    ``truth``, a :class:`Truth` the handle fills in as the device acts.

:class:`Truth` is plain data: every session the device started (plan id, start and end
on the loop clock, the *true* fluence per channel and emitting time, including what a
power loss hides from the record), the device's records as the device holds them, the
worst zone reading while emitting, and a trace of device snapshots for step-by-step
comparison of two device implementations.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

from lllt import wire as W
from lllt.errors import LlltError, URLError
from lllt.transport import DeviceURL, parse_url
from lllt.transport.base import Transport


@dataclass(frozen=True)
class DeviceSpec:
    """What cap to build: the same options as a ``sim://`` URL."""

    profile: str = "reference-cap"
    seed: int = 0
    faults: str = ""
    ambient_c: float = 25.0
    #: firmware defects to model (comma-separated), for the host's defence in depth:
    #: ``head_interlock`` (the device neither pauses off the head nor times out)
    defects: str = ""

    def query(self) -> str:
        """This cap's ``sim://`` URL query: ``speed=max``, seed, ambient, faults (no defects)."""
        q = f"speed=max&seed={self.seed}&ambient={self.ambient_c:g}"
        return q + (f"&faults={self.faults}" if self.faults else "")


@dataclass
class TrueSession:
    """One session as the device ran it (times in loop seconds)."""

    plan_id: int
    start_t: float
    boot: int
    channels_on: tuple[int, ...]  # channel indexes the plan drives (HELLO order)
    end_t: float | None = None
    outcome: str = "running"
    fluence_uj: tuple[int, ...] = ()  # true, per channel (HELLO order), µJ/cm²
    emit_ms: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The session as JSON-able data, times rounded to 1 ms (``channels_on`` left out)."""
        return {
            "plan_id": self.plan_id,
            "start_t": round(self.start_t, 3),
            "end_t": None if self.end_t is None else round(self.end_t, 3),
            "boot": self.boot,
            "outcome": self.outcome,
            "fluence_uj": list(self.fluence_uj),
            "emit_ms": self.emit_ms,
        }


@dataclass
class Truth:
    """What the device really did (filled in by a :class:`DeviceHandle`)."""

    serial: str = ""
    channel_wavelengths: tuple[int, ...] = ()
    cutoff_c: float = math.inf
    sessions: list[TrueSession] = field(default_factory=list)
    #: the worst zone reading in any sample sent while emitting, and when
    max_emitting_c: float = -math.inf
    max_emitting_at: float = 0.0
    #: stretches of samples sent while emitting off the head: [start, length] (s)
    off_head: list[list[float]] = field(default_factory=list)
    #: device snapshots (events, state changes, one sample a second), loop time in ms
    trace: list[dict[str, Any]] = field(default_factory=list)
    records: tuple[W.SessionRecord, ...] = ()

    def describe(self, profile: Any) -> None:
        """What a powered-on cap says of itself: serial, wavelengths, cut-off."""
        self.serial = profile.serial
        self.channel_wavelengths = tuple(int(c.wavelength_nm) for c in profile.channels)
        self.cutoff_c = float(profile.limits.cutoff_c)

    def session(self, plan_id: int) -> TrueSession | None:
        """The true session of ``plan_id``, or None if the device never started it."""
        return next((s for s in self.sessions if s.plan_id == plan_id), None)

    @property
    def running(self) -> TrueSession | None:
        """The session still running on the device (no end time yet), or None."""
        return next((s for s in self.sessions if s.end_t is None), None)


class DeviceHandle(Protocol):
    """One cap for the explorer, kept across host runs and power cycles (see the module doc)."""

    truth: Truth

    async def power_on(self, *, wiped: bool = False) -> None:
        """Switch the cap on; ``wiped``: its records are gone (a reset, a repaired cap)."""

    async def power_off(self) -> None:
        """Switch the cap off; its records survive (unless wiped at the next power-on)."""

    def transport(self, link: str, link_seed: int) -> Transport:
        """A new host connection, with the ``link`` fault rules (seeded by ``link_seed``) in
        front; opening it replaces the previous connection."""

    @property
    def busy(self) -> bool:
        """True while a session runs on the device."""

    def final_records(self) -> tuple[W.SessionRecord, ...]:
        """The device's session records at the end (the last ones seen if it is off)."""

    def side_channel(self, data: bytes) -> bool:
        """Bytes from a second wired client; False when they cannot reach the device intact
        (it is off, or its own link faults act on its input)."""


class DeviceAdapter(Protocol):
    """A device implementation the explorer runs seeds on (``sim``, ``fw``, ``blesim``)."""

    name: str

    def unavailable(self) -> str | None:
        """None when this device can run on this machine, else why it cannot."""

    def create(self, spec: DeviceSpec, workdir: Path) -> DeviceHandle:
        """A new cap built from ``spec``, keeping its files in ``workdir``."""


# --- the simulator ---------------------------------------------------------------------------


class _SharedLink(Transport):
    """A host connection to a device the explorer owns (one at a time, newest wins)."""

    OPTIONS: ClassVar[dict[str, str]] = {}
    FORM: ClassVar[str] = "explore://"

    def __init__(self, url: DeviceURL, handle: CapHandle) -> None:
        super().__init__(url)
        self.handle = handle
        self.dead = False  # the host process was killed: this link never works again

    async def _open(self) -> None:
        if self.dead:
            raise ConnectionError("the host process is gone")
        if self.handle.device is None:
            raise ConnectionError("the cap is switched off")
        self.handle.attach(self)

    async def _close(self) -> None:
        self.handle.detach(self)

    def _write(self, data: bytes) -> None:
        dev = self.handle.device
        if dev is not None and self.handle.attached is self and not self.dead:
            dev.feed(data)

    def from_device(self, data: bytes) -> None:
        if self.is_open and not self.dead:
            self._received(data)

    def kill(self) -> None:
        self.dead = True
        self.handle.detach(self)
        self.is_open = False
        self._lost_reason = ConnectionError("the host process is gone")

    def replaced(self) -> None:
        self._lost(ConnectionError("another connection replaced this one"))


class CapHandle:
    """What the simulator's and the firmware's handles share: the one host link a cap has
    at a time, the telemetry switched off while nobody listens, the trace of power events.

    A subclass sets ``device`` (the running cap or None), ``truth`` and ``attached``.
    """

    device: Any
    truth: Truth
    attached: _SharedLink | None

    def attach(self, link: _SharedLink) -> None:
        """Make ``link`` the cap's host connection; the previous one is told it was replaced."""
        old = self.attached
        self.attached = link
        if old is not None and old is not link:
            old.replaced()

    def detach(self, link: _SharedLink) -> None:
        """Drop ``link`` if it is the cap's current connection: the cap sees its link closed, and
        its telemetry goes off unless a session runs."""
        if self.attached is link:
            self.attached = None
            if self.device is not None:
                self.device.link_closed()
                self._quiet()

    def _quiet(self) -> None:
        """Nobody listens and nothing runs: telemetry off until a host sets its rate (the
        idle hours between sessions then cost nothing; the next host sets its own rate).
        Both handles do it, so that the simulator and the firmware send the same."""
        if self.device is not None and self.attached is None and self.truth.running is None:
            self.device.feed(
                W.encode_frame(int(W.MsgType.SET_TELEMETRY), 0x7F00, W.SetTelemetry(0).payload())
            )

    def _from_device(self, data: bytes) -> None:
        if self.attached is not None:
            self.attached.from_device(data)

    def _snap(self, kind: str, **data: Any) -> None:
        t = asyncio.get_running_loop().time()
        self.truth.trace.append({"t_ms": round(t * 1000), "kind": kind, **data})

    @property
    def busy(self) -> bool:
        """True while a session runs on the cap."""
        return self.truth.running is not None


class SimHandle(CapHandle):
    """One simulated cap (``lllt_sim.device.SimDevice``) and its ground truth."""

    scheme = "sim"

    def __init__(self, spec: DeviceSpec, workdir: Path) -> None:
        self.spec = spec
        self.state_file = str(workdir / "cap-state.json")
        self.device: Any = None
        self.attached: _SharedLink | None = None
        self.truth = Truth()
        self._task: asyncio.Task[None] | None = None
        self._powered = 0
        self._last_sample_s = -1
        self._off_head_since: float | None = None

    # --- power -----------------------------------------------------------------------------
    async def power_on(self, *, wiped: bool = False) -> None:
        """Switch the cap on; ``wiped``: its records are gone (a reset, a repaired cap)."""
        from lllt_sim.device import SimDevice

        if wiped:
            Path(self.state_file).unlink(missing_ok=True)

        # device faults belong to the first power-on (the cap's bad day)
        faults = self.spec.faults if self._powered == 0 else ""
        self._powered += 1
        dev = SimDevice(
            self.spec.profile,
            seed=self.spec.seed,
            faults=faults,
            ambient_c=self.spec.ambient_c,
            clock_rate=0.0,
            state_file=self.state_file,
        )
        self.truth.describe(dev.profile)
        self._instrument(dev)
        if "head_interlock" in self.spec.defects.split(","):
            _break_head_interlock(dev)
        dev.attach(self._from_device)
        self.device = dev
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(dev.run(), name="explore:sim")
        await asyncio.sleep(0)
        self._snap("power_on", boot=dev.boot_count)
        self._quiet()

    async def power_off(self) -> None:
        """Switch the cap off: a running session ends in the truth as ``power_off``, the host
        link is lost; the records stay in the state file."""
        dev = self.device
        if dev is None:
            return
        running = self.truth.running
        if running is not None:  # switched off mid-session: the truth is what it had
            self._end(running, dev, "power_off", asyncio.get_running_loop().time())
        self._snap("power_off")
        if self.attached is not None:
            self.attached.replaced()
            self.attached = None
        self.device = None
        dev.close()
        if self._task is not None:
            with _suppress():
                await asyncio.wait_for(self._task, 1.0)
            self._task = None

    def final_records(self) -> tuple[W.SessionRecord, ...]:
        """The cap's session records; when it is off, those kept at the last session end or
        reset."""
        if self.device is None:
            return self.truth.records
        return tuple(self.device.records)

    # --- links --------------------------------------------------------------------------------
    def transport(self, link: str, link_seed: int) -> Transport:
        """A new host link to this cap, with the ``link`` fault rules (seeded by ``link_seed``)
        when given; opening it replaces the previous link."""
        options = {"link": link, "link_seed": str(link_seed)} if link else {}
        url = DeviceURL(f"sim://{self.spec.profile}?{self.spec.query()}", "sim", "", options)
        return _SharedLink(url, self)

    def side_channel(self, data: bytes) -> bool:
        """Bytes from a second wired client (its replies go where the device's output
        goes). False when they cannot reach the device intact: off, or its own link
        faults (``link_drop``, ``corrupt``) active on its input now."""
        from lllt_sim.link import link_state

        dev = self.device
        if dev is None:
            return False
        drop, rate = (
            link_state(dev._link_windows, dev._abs_now()) if dev._link_windows else (False, 0.0)
        )
        dev.feed(data)
        return not drop and rate == 0.0

    # --- ground truth ---------------------------------------------------------------------------
    def _loop_t(self, dev: Any, abs_ms: int) -> float:
        return float(dev._t0) + abs_ms / 1000.0

    def _end(self, s: TrueSession, dev: Any, outcome: str, t: float) -> None:
        from lllt_sim.engine import _u2uj

        ph = dev._ph
        s.end_t = t
        s.outcome = outcome
        s.fluence_uj = tuple(_u2uj(v) for v in ph.fl)
        s.emit_ms = int(ph.emit)
        self.truth.records = tuple(dev.records)
        self.truth.trace.append({"t_ms": round(t * 1000), "kind": "session_end", **s.to_dict()})

    def _instrument(self, dev: Any) -> None:
        """Watch the engine's committed state changes (never its speculation)."""
        truth = self.truth
        start0, end0, reboot0, send0 = (
            dev._start_session,
            dev._end_session,
            dev._reboot,
            dev._send_unsolicited,
        )
        tel_type = int(W.MsgType.TELEMETRY)
        ev_type = int(W.MsgType.EVENT)

        def start_session(plan: Any, now: int) -> None:
            start0(plan, now)
            self._session_started(dev, plan, now)

        def end_session(outcome: int, reason: int, new_state: Any, t_abs: int) -> None:
            s = truth.running
            end0(outcome, reason, new_state, t_abs)
            if s is not None:
                name = _enum(W.Outcome, outcome)
                self._end(s, dev, name, self._loop_t(dev, t_abs))
            self._quiet_soon()

        def reboot(tick: int) -> None:
            s = truth.running
            if s is not None:  # the record will say less (the last checkpoint): keep the truth
                self._end(s, dev, "power_loss", self._loop_t(dev, tick * dev.tick_ms))
            reboot0(tick)
            truth.records = tuple(dev.records)
            self._quiet_soon()

        def send_unsolicited(msg_type: int, payload: bytes, at_abs: int) -> None:
            if msg_type == tel_type and (
                (truth.sessions and truth.sessions[-1].end_t is None)
                or int(self._loop_t(dev, at_abs)) != self._last_sample_s
            ):
                self._watch_telemetry(payload, self._loop_t(dev, at_abs))
            elif msg_type == ev_type:
                self._watch_event(payload, self._loop_t(dev, at_abs))
            send0(msg_type, payload, at_abs)

        dev._start_session = start_session
        dev._end_session = end_session
        dev._reboot = reboot
        dev._send_unsolicited = send_unsolicited

    def _quiet_soon(self) -> None:
        """Telemetry off once nobody listens, when the engine's current step is done."""
        if self.attached is None:
            asyncio.get_running_loop().call_soon(self._quiet)

    def _session_started(self, dev: Any, plan: Any, now: int) -> None:
        """A session the device started: a new true session, and its trace entry."""
        on = sorted({sp.index for st in plan.steps for sp in st.setpoints if sp.irr > 0})
        s = TrueSession(plan.plan_id, self._loop_t(dev, now), dev.boot_count, tuple(on))
        self.truth.sessions.append(s)
        self.truth.trace.append(
            {
                "t_ms": round(s.start_t * 1000),
                "kind": "session_start",
                "plan_id": s.plan_id,
                "boot": s.boot,
            }
        )

    def _watch_telemetry(self, payload: bytes, at: float) -> None:
        """A sample sent at loop time ``at``: the hottest zone and off-head emission while
        emitting, and one trace sample a second."""
        try:
            t = W.Telemetry.parse(payload)
        except W.WireError:
            return
        truth = self.truth
        emitting = int(W.TelemetryFlag.EMITTING)
        head = int(W.TelemetryFlag.HEAD_PRESENT)
        if t.flags & emitting:
            hot = max((c for c in t.temperature if c is not None), default=-math.inf)
            if hot > truth.max_emitting_c:
                truth.max_emitting_c, truth.max_emitting_at = hot, at
        if t.flags & emitting and not t.flags & head:
            if self._off_head_since is None:
                self._off_head_since = at
                truth.off_head.append([at, 0.0])
            truth.off_head[-1][1] = at - self._off_head_since
        else:
            self._off_head_since = None
        sec = int(at)
        if sec != self._last_sample_s:
            self._last_sample_s = sec
            truth.trace.append(_sample(t, at))

    def _watch_event(self, payload: bytes, at: float) -> None:
        """An event the device sent at loop time ``at``, into the trace."""
        try:
            e = W.Event.parse(payload)
            self.truth.trace.append(
                {
                    "t_ms": round(at * 1000),
                    "kind": "event",
                    "event": _enum(W.EventKind, int(e.kind)),
                    "a": e.a,
                    "b": e.b,
                    "value": e.value,
                    "limit": e.limit,
                }
            )
        except W.WireError:
            pass


def _break_head_interlock(dev: Any) -> None:
    """A firmware defect: the head sensor is read and reported, but the device neither
    pauses nor ends the session off the head (the host's head-present rule must)."""

    def set_head(present: bool, t_abs: int) -> None:
        if present == dev._head:
            return
        dev._head = present
        dev._event(W.EventKind.HEAD, t_abs, a=1 if present else 0)
        if not present:
            dev._head_off_ms = t_abs
        dev._dirty = True

    dev._set_head = set_head
    dev._head_abort_ms = 1 << 40


def _sample(t: W.Telemetry, at: float) -> dict[str, Any]:
    return {
        "t_ms": round(at * 1000),
        "kind": "sample",
        "state": _enum(W.State, int(t.state)),
        "plan_id": t.plan_id,
        "emitting": bool(t.flags & W.TelemetryFlag.EMITTING),
        "fluence": [round(f, 6) for f in t.fluence],
        "temperature": [None if c is None else round(c, 2) for c in t.temperature],
    }


def _enum(enum: Any, value: int) -> str:
    try:
        return str(enum(value).name.lower())
    except ValueError:
        return str(value)


class _suppress:
    def __enter__(self) -> None:
        return None

    def __exit__(self, et: Any, ev: Any, tb: Any) -> bool:
        return et is not None and issubclass(et, (Exception, asyncio.CancelledError))


class SimAdapter:
    """The in-process simulator (``lllt_sim``) on the virtual clock."""

    name = "sim"

    def unavailable(self) -> str | None:
        """None, or why the simulator package cannot be imported."""
        try:
            import lllt_sim.device  # noqa: F401
        except ImportError as err:
            return f"the simulator package lllt_sim is not installed ({err})"
        return None

    def create(self, spec: DeviceSpec, workdir: Path) -> DeviceHandle:
        """A :class:`SimHandle` for ``spec``, its state file in ``workdir``."""
        return SimHandle(spec, workdir)


class FwAdapter:
    """The C firmware as a library (``fw://``), when a build provides it.

    A plug-in found by name, like ``blesim``: ``lllt.explore.fwhandle.explorer_handle(spec,
    workdir)`` builds on this module (same :class:`DeviceHandle` interface), so that the
    firmware library loads only when asked for; without it the explorer says why instead of
    running.
    """

    name = "fw"

    def _factory(self) -> Any:
        import importlib

        module = importlib.import_module("lllt.explore.fwhandle")
        return module.explorer_handle

    def unavailable(self) -> str | None:
        """None when the fw:// transport, the firmware's explorer handle and the firmware library
        all load; else why not."""
        try:
            parse_url("fw://reference-cap")
        except URLError:
            return "this lllt has no fw:// transport"
        try:
            self._factory()
        except (ImportError, AttributeError) as err:
            return f"the firmware's explorer handle (lllt.explore.fwhandle) cannot be loaded: {err}"
        except LlltError as err:
            return err.message
        from lllt_sim import fwlib

        try:
            fwlib.load()
        except fwlib.FirmwareLibraryError as err:
            return f"the firmware library is not usable: {err}"
        return None

    def create(self, spec: DeviceSpec, workdir: Path) -> DeviceHandle:
        """A firmware cap from ``lllt.explore.fwhandle.explorer_handle``."""
        return self._factory()(spec, workdir)  # type: ignore[no-any-return]


class BleSimAdapter:
    """``blesim``: the simulator behind the Bumble GATT peripheral.

    A plug-in found by name (``lllt.explore.ble`` builds on this module, not the other way
    round), so that bleak and Bumble load only when asked for."""

    name = "blesim"

    def _impl(self) -> Any:
        import importlib

        return importlib.import_module("lllt.explore.ble").BleAdapter()

    def unavailable(self) -> str | None:
        """None when the BLE transport, Bumble and the simulator load; else why not."""
        try:
            impl = self._impl()
        except ImportError as err:
            return f"the BLE transport cannot be imported ({err})"
        return impl.unavailable()  # type: ignore[no-any-return]

    def create(self, spec: DeviceSpec, workdir: Path) -> DeviceHandle:
        """A simulated cap reached over BLE (``lllt.explore.ble.BleHandle``)."""
        return self._impl().create(spec, workdir)  # type: ignore[no-any-return]


ADAPTERS: dict[str, type] = {"sim": SimAdapter, "fw": FwAdapter, "blesim": BleSimAdapter}


def adapter(name: str) -> DeviceAdapter:
    """A new adapter for the device scheme ``name`` (``sim``, ``fw``, ``blesim``); URLError for
    any other."""
    cls = ADAPTERS.get(name)
    if cls is None:
        raise URLError(
            f"unknown device scheme {name!r} for the explorer",
            advice="Use --device-scheme " + " or ".join(sorted(ADAPTERS)) + ".",
        )
    return cls()  # type: ignore[no-any-return]

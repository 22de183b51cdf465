"""Every other message of wire protocol v1, and :data:`MESSAGE_TYPES`."""

from __future__ import annotations

import dataclasses
import functools
import struct
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, ClassVar

from lllt.wire.base import _U16, _U32, Message, _enum, _fixed, _fl, _irr, _temp
from lllt.wire.constants import (
    KEY_SIZE,
    MAX_RECORDS,
    NO_INDEX,
    PROTOCOL_MAJOR,
    PROTOCOL_MINOR,
    TEMP_UNKNOWN,
    WireError,
)
from lllt.wire.description import HelloInfo
from lllt.wire.enums import (
    AbortReason,
    EventKind,
    LinkPolicy,
    MsgType,
    NackCode,
    Outcome,
    State,
    StepKind,
    TelemetryFlag,
)
from lllt.wire.framing import _utf8_cut


@dataclass(frozen=True, slots=True)
class Hello(Message):
    """HELLO (host → device): opens a conversation, naming the host's protocol version
    (``major``, ``minor``); answered by HELLO_INFO with a fresh nonce. Longer payloads from
    newer hosts are accepted: only the first two bytes are frozen."""

    TYPE: ClassVar[MsgType] = MsgType.HELLO
    major: int = PROTOCOL_MAJOR
    minor: int = PROTOCOL_MINOR

    def payload(self) -> bytes:
        return bytes((self.major, self.minor))

    @classmethod
    def parse(cls, payload: bytes) -> Hello:
        # tolerate longer payloads from newer hosts: the first two bytes are frozen
        if len(payload) < 2:
            raise WireError("HELLO payload must start with major and minor version")
        return cls(payload[0], payload[1])


@dataclass(frozen=True, slots=True)
class ChannelSetpoint:
    """One channel's part in a plan step: its id, the on-state irradiance at the scalp
    (mW/cm²) and, in a FLUENCE step, the fluence at which it switches off (J/cm²; 0 in a
    DURATION step)."""

    channel: int  # channel id
    irradiance_mw_cm2: float  # on-state irradiance at the scalp
    fluence_target_j_cm2: float = 0.0  # FLUENCE steps: this channel stops at its target


@dataclass(frozen=True, slots=True)
class PlanStep:
    """One step of UPLOAD_PLAN: how it ends (``kind``), its duration and the ramp at its start
    (ms), pulse frequency (Hz; 0 = continuous) and duty (%), and its channel setpoints."""

    kind: StepKind
    duration_ms: int  # DURATION: exact length; FLUENCE: the most it may run
    ramp_ms: int  # linear rise from 0 to the setpoints at the start of the step
    pulse_hz: float  # 0 = continuous wave
    duty_pct: float  # 100 = continuous wave
    setpoints: tuple[ChannelSetpoint, ...]


_PLAN_HEAD = struct.Struct("<IBIB")
_STEP_HEAD = struct.Struct("<BIIIHB")
_SETPOINT = struct.Struct("<BHI")


@dataclass(frozen=True, slots=True)
class UploadPlan(Message):
    """The whole session: the device runs it on its own clock after START.

    ``lease_ms`` is the lease (device ms) that heartbeats renew, ``policy`` what the device
    does when it runs out. Answered ACK, or NACK for the first check that fails
    (docs/wire-protocol.md §6); a good upload replaces any loaded plan.
    """

    TYPE: ClassVar[MsgType] = MsgType.UPLOAD_PLAN
    plan_id: int
    policy: LinkPolicy
    lease_ms: int
    steps: tuple[PlanStep, ...]

    def payload(self) -> bytes:
        out = bytearray(_PLAN_HEAD.pack(self.plan_id, self.policy, self.lease_ms, len(self.steps)))
        for s in self.steps:
            out += _STEP_HEAD.pack(
                s.kind,
                s.duration_ms,
                s.ramp_ms,
                round(s.pulse_hz * 1000),
                round(s.duty_pct * 100),
                len(s.setpoints),
            )
            for sp in s.setpoints:
                out += _SETPOINT.pack(
                    sp.channel, _irr(sp.irradiance_mw_cm2), _fl(sp.fluence_target_j_cm2)
                )
        return bytes(out)

    @classmethod
    def parse(cls, payload: bytes) -> UploadPlan:
        try:
            plan_id, policy, lease, n = _PLAN_HEAD.unpack_from(payload, 0)
            off = _PLAN_HEAD.size
            steps = []
            for _ in range(n):
                kind, dur, ramp, mhz, duty, nsp = _STEP_HEAD.unpack_from(payload, off)
                off += _STEP_HEAD.size
                sps = []
                for _ in range(nsp):
                    ch, irr, tgt = _SETPOINT.unpack_from(payload, off)
                    off += _SETPOINT.size
                    sps.append(ChannelSetpoint(ch, irr / 100, tgt / 1e6))
                steps.append(
                    PlanStep(_enum(StepKind, kind), dur, ramp, mhz / 1000, duty / 100, tuple(sps))
                )
        except struct.error as err:
            raise WireError(f"UPLOAD_PLAN payload is truncated: {err}") from None
        if off != len(payload):
            raise WireError(f"UPLOAD_PLAN has {len(payload) - off} unexpected trailing bytes")
        return cls(plan_id, _enum(LinkPolicy, policy), lease, tuple(steps))


@dataclass(frozen=True, slots=True)
class Start(Message):
    """Start the loaded plan. Idempotent: a second START of the same id starts nothing.

    Answered STARTED (or NACK); the lease runs from then on.
    """

    TYPE: ClassVar[MsgType] = MsgType.START
    plan_id: int

    def payload(self) -> bytes:
        return _U32.pack(self.plan_id)

    @classmethod
    def parse(cls, payload: bytes) -> Start:
        _fixed(cls, 4, payload)
        return cls(_U32.unpack(payload)[0])


@dataclass(frozen=True, slots=True)
class Pause(Message):
    """PAUSE: emitters off from the next control tick; step time stops until RESUME. No
    payload; answered ACK, or NACK outside a session."""

    TYPE: ClassVar[MsgType] = MsgType.PAUSE


@dataclass(frozen=True, slots=True)
class Resume(Message):
    """RESUME: a session paused by the host continues at its setpoints, without a new ramp
    (it stays paused while the cap is off the head). Needs authentication on a device that
    requires it; no payload."""

    TYPE: ClassVar[MsgType] = MsgType.RESUME


@dataclass(frozen=True, slots=True)
class Abort(Message):
    """Emitters off and end the session. Always accepted, authenticated or not."""

    TYPE: ClassVar[MsgType] = MsgType.ABORT
    reason: AbortReason = AbortReason.UNSPECIFIED

    def payload(self) -> bytes:
        return bytes((self.reason,))

    @classmethod
    def parse(cls, payload: bytes) -> Abort:
        _fixed(cls, 1, payload)
        try:
            reason = AbortReason(payload[0])
        except ValueError:
            reason = AbortReason.UNSPECIFIED  # an abort is never refused
        return cls(reason)


@dataclass(frozen=True, slots=True)
class Heartbeat(Message):
    """HEARTBEAT: renews the session's lease to ``lease_ms`` from now (after an expiry the
    device sends LEASE_RESTORED). No payload; answered ACK."""

    TYPE: ClassVar[MsgType] = MsgType.HEARTBEAT


@dataclass(frozen=True, slots=True)
class SetTelemetry(Message):
    """SET_TELEMETRY: the telemetry period in ms of device time (0 = off); at least
    1000 / ``max_telemetry_hz``, else NACK BAD_VALUE."""

    TYPE: ClassVar[MsgType] = MsgType.SET_TELEMETRY
    period_ms: int  # 0 = off

    def payload(self) -> bytes:
        return _U16.pack(self.period_ms)

    @classmethod
    def parse(cls, payload: bytes) -> SetTelemetry:
        _fixed(cls, 2, payload)
        return cls(_U16.unpack(payload)[0])


@dataclass(frozen=True, slots=True)
class Derate(Message):
    """Scale every setpoint by ``permille``/1000 from now on (lowering needs no auth)."""

    TYPE: ClassVar[MsgType] = MsgType.DERATE
    permille: int

    def payload(self) -> bytes:
        return _U16.pack(self.permille)

    @classmethod
    def parse(cls, payload: bytes) -> Derate:
        _fixed(cls, 2, payload)
        return cls(_U16.unpack(payload)[0])


@dataclass(frozen=True, slots=True)
class GetStatus(Message):
    """GET_STATUS: asks for a STATUS sample taken now. No payload."""

    TYPE: ClassVar[MsgType] = MsgType.GET_STATUS


@dataclass(frozen=True, slots=True)
class GetRecords(Message):
    """GET_RECORDS: asks for at most ``max_count`` session records; answered by RECORDS,
    newest first."""

    TYPE: ClassVar[MsgType] = MsgType.GET_RECORDS
    max_count: int = MAX_RECORDS

    def payload(self) -> bytes:
        return bytes((self.max_count,))

    @classmethod
    def parse(cls, payload: bytes) -> GetRecords:
        _fixed(cls, 1, payload)
        return cls(payload[0])


@dataclass(frozen=True, slots=True)
class ClearFault(Message):
    """CLEAR_FAULT: clears a latched fault once its cause is gone (NACK while it remains). No
    payload."""

    TYPE: ClassVar[MsgType] = MsgType.CLEAR_FAULT


@dataclass(frozen=True, slots=True)
class ProvisionKey(Message):
    """A new 32-byte device key; accepted over the wired link in a provisioning state."""

    TYPE: ClassVar[MsgType] = MsgType.PROVISION_KEY
    key: bytes

    def payload(self) -> bytes:
        return bytes(self.key)

    @classmethod
    def parse(cls, payload: bytes) -> ProvisionKey:
        _fixed(cls, KEY_SIZE, payload)
        return cls(bytes(payload))


class RecordOp(IntEnum):
    """The operations of RECORD_ACCESS (docs/wire-protocol.md §9.1)."""

    COUNT = 1  # RECORD_COUNT of the records with sequence number >= from_seq
    REPORT = 2  # ACK, then RECORD for each record with seq >= from_seq, then RECORDS_END
    ABORT = 3  # stop the report under way (RECORDS_END ABORTED); ACK even with none


class RecordsEndStatus(IntEnum):
    """How a record report ended: DONE, or ABORTED by the host's RECORD_ACCESS ABORT."""

    DONE = 0
    ABORTED = 1


_RECORD_ACCESS = struct.Struct("<BI")


@dataclass(frozen=True, slots=True)
class RecordAccess(Message):
    """RECORD_ACCESS: count the records with sequence number ``from_seq`` or later, report
    them (RECORD frames, oldest first, then RECORDS_END), or stop a report under way
    (``op``)."""

    TYPE: ClassVar[MsgType] = MsgType.RECORD_ACCESS
    op: RecordOp
    from_seq: int = 0

    def payload(self) -> bytes:
        return _RECORD_ACCESS.pack(self.op, self.from_seq)

    @classmethod
    def parse(cls, payload: bytes) -> RecordAccess:
        _fixed(cls, _RECORD_ACCESS.size, payload)
        op, from_seq = _RECORD_ACCESS.unpack(payload)
        if op not in RecordOp._value2member_map_:
            raise WireError(f"unknown record access op {op}")
        return cls(RecordOp(op), from_seq)


@dataclass(frozen=True, slots=True)
class RecordCount(Message):
    """RECORD_COUNT: the answer to RECORD_ACCESS COUNT, how many records it asked about."""

    TYPE: ClassVar[MsgType] = MsgType.RECORD_COUNT
    count: int

    def payload(self) -> bytes:
        return _U16.pack(self.count)

    @classmethod
    def parse(cls, payload: bytes) -> RecordCount:
        _fixed(cls, 2, payload)
        return cls(_U16.unpack(payload)[0])


@dataclass(frozen=True, slots=True)
class Ack(Message):
    """ACK: the request was accepted. No payload."""

    TYPE: ClassVar[MsgType] = MsgType.ACK


_NACK = struct.Struct("<BBii")


@dataclass(frozen=True, slots=True)
class Nack(Message):
    """NACK: the request was refused. ``code`` says why (a plain number when the code is newer
    than this host); ``channel`` is the channel id concerned (0xFF: none); ``limit`` and
    ``observed`` are in the wire unit of the quantity (0.01 mW/cm², ms, µJ/cm², 0.01 °C,
    mHz); ``detail`` is text, at most 64 bytes of UTF-8."""

    TYPE: ClassVar[MsgType] = MsgType.NACK
    code: NackCode
    channel: int = NO_INDEX  # channel id the refusal is about, 0xFF = none
    limit: int = 0  # in the unit of the code (see docs/wire-protocol.md)
    observed: int = 0
    detail: str = ""

    def payload(self) -> bytes:
        return _NACK.pack(self.code, self.channel, self.limit, self.observed) + _utf8_cut(
            self.detail, 64
        )

    @classmethod
    def parse(cls, payload: bytes) -> Nack:
        if len(payload) < _NACK.size:
            raise WireError("NACK payload is truncated")
        code, ch, limit, observed = _NACK.unpack_from(payload)
        try:
            nack_code: Any = NackCode(code)
        except ValueError:
            nack_code = code  # a newer device's code: keep the number
        detail = payload[_NACK.size :].decode("utf-8", errors="replace")
        return cls(nack_code, ch, limit, observed, detail)


class StartResult(IntEnum):
    """What START did: started the session, or nothing (already running, already finished)."""

    STARTED = 0
    ALREADY_RUNNING = 1
    ALREADY_FINISHED = 2


_STARTED = struct.Struct("<IBI")


@dataclass(frozen=True, slots=True)
class Started(Message):
    """STARTED: the answer to START, with the plan id, what START did (``result``) and the
    device time (ms since boot) at which the session started."""

    TYPE: ClassVar[MsgType] = MsgType.STARTED
    plan_id: int
    result: StartResult
    start_ms: int  # device time the session started

    def payload(self) -> bytes:
        return _STARTED.pack(self.plan_id, self.result, self.start_ms)

    @classmethod
    def parse(cls, payload: bytes) -> Started:
        _fixed(cls, _STARTED.size, payload)
        pid, res, t = _STARTED.unpack(payload)
        return cls(pid, _enum(StartResult, res), t)


_TEL_HEAD = struct.Struct("<IHBBIHHHIIBB")


_STATES = tuple(State)
_FLAGS: dict[int, TelemetryFlag] = {}


# bounded: the counts come from the device, and bad bytes must not grow the cache without end
@functools.lru_cache(maxsize=16)
def _tel_layout(n: int, nz: int) -> tuple[struct.Struct, Callable[..., Any]]:
    """The whole TELEMETRY payload of ``n`` channels and ``nz`` zones as one struct, and a
    function made for that layout that builds the message from its integers:
    ``build(cls, v, state, flags)``.

    Every frame goes through here, so the function is generated (as ``namedtuple`` makes
    its methods): one tuple display per array, indices as constants, no loop or slice, and
    each field stored straight into its slot (the frozen class's ``__init__`` would store
    them one by one through ``object.__setattr__``, which costs twice as much). Its
    arithmetic is that of the wire's units: ``/ 100`` for 0.01 mW/cm² and 0.01 °C,
    ``/ 1e6`` for µJ/cm², and TEMP_UNKNOWN read as None.
    """
    fmt = _TEL_HEAD.format + "HHI" * n + f"{nz + 1}h"
    first = len(_TEL_HEAD.unpack(bytes(_TEL_HEAD.size)))

    def arr(items: list[str]) -> str:
        return "(" + "".join(f"{x}, " for x in items) + ")"

    def temp(i: int) -> str:
        return f"None if v[{i}] == {TEMP_UNKNOWN} else v[{i}] / 100"

    ch = [first + 3 * i for i in range(n)]
    zs = [first + 3 * n + z for z in range(nz)]
    values = {
        "time_ms": "v[0]",
        "boot_count": "v[1]",
        "state": "state",
        "step": "v[3]",
        "plan_id": "v[4]",
        "flags": "flags",
        "derate_permille": "v[6]",
        "supply_mv": "v[7]",
        "elapsed_ms": "v[8]",
        "step_elapsed_ms": "v[9]",
        "setpoint": arr([f"v[{i}] / 100" for i in ch]),
        "irradiance": arr([f"v[{i + 1}] / 100" for i in ch]),
        "fluence": arr([f"v[{i + 2}] / 1e6" for i in ch]),
        "temperature": arr([temp(i) for i in zs]),
        "ambient": temp(first + 3 * n + nz),
    }
    fields = [f.name for f in dataclasses.fields(Telemetry)]
    assert sorted(fields) == sorted(values), "a Telemetry field without its wire value"
    namespace: dict[str, Any] = {"_new": object.__new__}
    lines = ["def build(cls, v, state, flags):", "    o = _new(cls)"]
    for k, name in enumerate(fields):
        namespace[f"_set{k}"] = Telemetry.__dict__[name].__set__  # the slot's own setter
        lines.append(f"    _set{k}(o, {values[name]})")
    lines.append("    return o")
    exec("\n".join(lines) + "\n", namespace)  # the text built above
    return struct.Struct(fmt), namespace["build"]


_TEL_CH = struct.Struct("<HHI")
_I16 = struct.Struct("<h")


@dataclass(frozen=True, slots=True)
class Telemetry(Message):
    """One telemetry sample. Arrays follow the order of HELLO's channel and zone tables."""

    TYPE: ClassVar[MsgType] = MsgType.TELEMETRY
    time_ms: int  # device time since boot
    boot_count: int
    state: State
    step: int  # index of the running step, 0xFF = none
    plan_id: int
    flags: TelemetryFlag
    derate_permille: int
    supply_mv: int
    elapsed_ms: int  # time the session has been running (pauses excluded)
    step_elapsed_ms: int
    setpoint: tuple[float, ...]  # mW/cm² currently commanded (ramp and derate applied)
    irradiance: tuple[float, ...]  # mW/cm² measured on-state output
    fluence: tuple[float, ...]  # J/cm² delivered this session
    temperature: tuple[float | None, ...]  # °C scalp contact per zone; None = no reading
    ambient: float | None  # °C; None = no ambient sensor

    def payload(self) -> bytes:
        n = len(self.setpoint)
        parts = [
            _TEL_HEAD.pack(
                self.time_ms,
                self.boot_count,
                self.state,
                self.step,
                self.plan_id,
                int(self.flags),
                self.derate_permille,
                self.supply_mv,
                self.elapsed_ms,
                self.step_elapsed_ms,
                n,
                len(self.temperature),
            )
        ]
        for i in range(n):
            parts.append(
                _TEL_CH.pack(_irr(self.setpoint[i]), _irr(self.irradiance[i]), _fl(self.fluence[i]))
            )
        for t in self.temperature:
            parts.append(_I16.pack(_temp(t)))
        parts.append(_I16.pack(_temp(self.ambient)))
        return b"".join(parts)

    @classmethod
    def parse(cls, payload: bytes) -> Telemetry:
        size = len(payload)
        if size < _TEL_HEAD.size:
            raise WireError("TELEMETRY payload is truncated")
        n, nz = payload[_TEL_HEAD.size - 2], payload[_TEL_HEAD.size - 1]
        layout, build = _tel_layout(n, nz)
        if size != layout.size:
            raise WireError(f"{cls.TYPE.name} payload must be {layout.size} bytes, got {size}")
        v = layout.unpack(payload)
        try:
            state = _STATES[v[2]]
        except IndexError:
            raise WireError(f"{v[2]} is not a valid State") from None
        flag = _FLAGS.get(v[5])
        if flag is None:
            flag = _FLAGS.setdefault(v[5], TelemetryFlag(v[5]))
        return build(cls, v, state, flag)  # type: ignore[no-any-return]

    @property
    def emitting(self) -> bool:
        """True when the device measures output on any channel (flag EMITTING)."""
        return bool(self.flags & TelemetryFlag.EMITTING)


@dataclass(frozen=True, slots=True)
class Status(Telemetry):
    """Reply to GET_STATUS: a telemetry sample taken now (same layout)."""

    TYPE: ClassVar[MsgType] = MsgType.STATUS


_EVENT = struct.Struct("<IBBBii")


@dataclass(frozen=True, slots=True)
class Event(Message):
    """EVENT: something happened on the device at ``time_ms`` (device ms since boot). What
    ``a``, ``b``, ``value`` and ``limit`` carry depends on ``kind`` (:class:`EventKind`,
    kept as a number when newer than this host); a field with nothing to carry is 0, ``b``
    0xFF."""

    TYPE: ClassVar[MsgType] = MsgType.EVENT
    time_ms: int
    kind: EventKind
    a: int = 0
    b: int = NO_INDEX
    value: int = 0
    limit: int = 0

    def payload(self) -> bytes:
        return _EVENT.pack(self.time_ms, self.kind, self.a, self.b, self.value, self.limit)

    @classmethod
    def parse(cls, payload: bytes) -> Event:
        _fixed(cls, _EVENT.size, payload)
        t, kind, a, b, v, lim = _EVENT.unpack(payload)
        try:
            k: Any = EventKind(kind)
        except ValueError:
            k = kind  # newer device: keep the number, the host logs it as unknown
        return cls(t, k, a, b, v, lim)


_RECORD = struct.Struct("<IHIIBBIB")


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """The device's own account of one session, kept across reboots."""

    plan_id: int
    boot_count: int  # boot during which the session started
    start_ms: int
    end_ms: int  # 0 while running
    outcome: Outcome
    reason: int  # AbortReason for ABORTED, Interlock for INTERLOCK, else 0
    emitting_ms: int
    fluence: tuple[float, ...]  # J/cm² per channel, HELLO table order


@dataclass(frozen=True, slots=True)
class Record(Message):
    """One record of a RECORD_ACCESS report: ``seq u32`` + the record (RECORDS layout)."""

    TYPE: ClassVar[MsgType] = MsgType.RECORD
    seq: int
    record: SessionRecord

    def payload(self) -> bytes:
        return _U32.pack(self.seq) + Records((self.record,)).payload()[1:]

    @classmethod
    def parse(cls, payload: bytes) -> Record:
        if len(payload) < 4:
            raise WireError("RECORD payload too short")
        recs = Records.parse(b"\x01" + payload[4:]).records
        return cls(_U32.unpack_from(payload)[0], recs[0])


_RECORDS_END = struct.Struct("<BHI")


@dataclass(frozen=True, slots=True)
class RecordsEnd(Message):
    """The end of a report: status, records sent, the last sequence number sent (0: none)."""

    TYPE: ClassVar[MsgType] = MsgType.RECORDS_END
    status: RecordsEndStatus
    count: int
    last_seq: int

    def payload(self) -> bytes:
        return _RECORDS_END.pack(self.status, self.count, self.last_seq)

    @classmethod
    def parse(cls, payload: bytes) -> RecordsEnd:
        _fixed(cls, _RECORDS_END.size, payload)
        status, count, last = _RECORDS_END.unpack(payload)
        return cls(_enum(RecordsEndStatus, status), count, last)


@dataclass(frozen=True, slots=True)
class Records(Message):
    """Reply to GET_RECORDS: newest first."""

    TYPE: ClassVar[MsgType] = MsgType.RECORDS
    records: tuple[SessionRecord, ...]

    def payload(self) -> bytes:
        out = bytearray((len(self.records),))
        for r in self.records:
            out += _RECORD.pack(
                r.plan_id,
                r.boot_count,
                r.start_ms,
                r.end_ms,
                r.outcome,
                r.reason,
                r.emitting_ms,
                len(r.fluence),
            )
            for f in r.fluence:
                out += _U32.pack(_fl(f))
        return bytes(out)

    @classmethod
    def parse(cls, payload: bytes) -> Records:
        try:
            off = 1
            recs = []
            for _ in range(payload[0]):
                pid, boot, s, e, outcome, reason, emit, n = _RECORD.unpack_from(payload, off)
                off += _RECORD.size
                fl = struct.unpack_from(f"<{n}I", payload, off)
                off += 4 * n
                recs.append(
                    SessionRecord(
                        pid,
                        boot,
                        s,
                        e,
                        _enum(Outcome, outcome),
                        reason,
                        emit,
                        tuple(v / 1e6 for v in fl),
                    )
                )
        except (struct.error, IndexError):
            raise WireError("RECORDS payload is truncated") from None
        if off != len(payload):
            raise WireError(f"RECORDS has {len(payload) - off} unexpected trailing bytes")
        return cls(tuple(recs))


MESSAGE_TYPES: dict[int, type[Message]] = {
    cls.TYPE: cls
    for cls in (
        Hello,
        HelloInfo,
        UploadPlan,
        Start,
        Pause,
        Resume,
        Abort,
        Heartbeat,
        SetTelemetry,
        Derate,
        GetStatus,
        GetRecords,
        ClearFault,
        ProvisionKey,
        RecordAccess,
        RecordCount,
        Record,
        RecordsEnd,
        Ack,
        Nack,
        Started,
        Status,
        Records,
        Telemetry,
        Event,
    )
}

"""Wire protocol v1: frames, messages and the byte-fed decoder.

This module is the contract between the host and a cap (firmware or simulator); the
normative text is ``docs/wire-protocol.md`` and ``tests/vectors/wire-v1.json`` holds the
golden frames that the Python and C implementations both check. It imports nothing but
the standard library, so the simulator can use it without pulling in the host.

A frame on the wire is ``COBS(header | payload | crc16) 0x00`` where the header is
``version u8, flags u8, type u8, seq u16le, length u16le`` and the CRC is
CRC-16/CCITT-FALSE over header and payload, sent big-endian. Messages are dataclasses in
engineering units (mW/cm², J/cm², °C, ms); ``encode_message`` and ``decode_message``
convert them to and from the fixed-point integers of the wire.
"""

from __future__ import annotations

import binascii
import dataclasses
import functools
import hashlib
import hmac
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import IntEnum, IntFlag
from typing import Any, ClassVar

PROTOCOL_MAJOR = 1
PROTOCOL_MINOR = 0

HEADER = struct.Struct("<BBBHH")  # version, flags, type, seq, payload length
HEADER_SIZE = HEADER.size
CRC_SIZE = 2
MAX_PAYLOAD = 4096
MAX_FRAME = HEADER_SIZE + MAX_PAYLOAD + CRC_SIZE
#: Longest COBS encoding of a MAX_FRAME frame (one overhead byte per 254 data bytes).
MAX_ENCODED = MAX_FRAME + MAX_FRAME // 254 + 1
MAX_STEPS = 16
MAX_CHANNELS = 32
MAX_ZONES = 16
MAX_RECORDS = 16
NONCE_SIZE = 16
TAG_SIZE = 16
AUTH_TRAILER = struct.Struct("<I16s")  # counter, truncated HMAC-SHA256 tag
FLAG_AUTH = 0x01

#: Key accepted by simulators and development boards that set Capability.DEV_KEY.
#: It proves nothing; a real cap is provisioned with its own key.
DEVELOPMENT_KEY = b"lllt-development-key-not-secret!"

NO_INDEX = 0xFF
TEMP_UNKNOWN = -32768


class WireError(ValueError):
    """A frame or payload does not follow the wire protocol (decode-side)."""


# --- enumerations ----------------------------------------------------------------------


class MsgType(IntEnum):
    # host -> device requests
    HELLO = 0x01
    UPLOAD_PLAN = 0x10
    START = 0x11
    PAUSE = 0x12
    RESUME = 0x13
    ABORT = 0x14
    HEARTBEAT = 0x15
    SET_TELEMETRY = 0x16
    DERATE = 0x17
    GET_STATUS = 0x18
    GET_RECORDS = 0x19
    CLEAR_FAULT = 0x1A
    # device -> host replies (same seq as the request)
    ACK = 0x40
    NACK = 0x41
    HELLO_INFO = 0x42
    STARTED = 0x43
    STATUS = 0x44
    RECORDS = 0x45
    # device -> host, unsolicited (device's own seq counter)
    TELEMETRY = 0x60
    EVENT = 0x61


REQUEST_TYPES = frozenset(t for t in MsgType if t < 0x40)
REPLY_TYPES = frozenset(t for t in MsgType if 0x40 <= t < 0x60)
UNSOLICITED_TYPES = frozenset(t for t in MsgType if t >= 0x60)
#: Requests that add energy and so need an authentication trailer when the device asks.
#: DERATE needs one only when it raises the output factor.
ENERGY_TYPES = frozenset({MsgType.UPLOAD_PLAN, MsgType.START, MsgType.RESUME})


class NackCode(IntEnum):
    UNKNOWN_TYPE = 1
    BAD_LENGTH = 2
    BAD_VALUE = 3
    BAD_STATE = 4
    NO_PLAN = 5
    PLAN_MISMATCH = 6
    LIMIT_IRRADIANCE = 7
    LIMIT_DURATION = 8
    LIMIT_FLUENCE = 9
    UNKNOWN_CHANNEL = 10
    AUTH_REQUIRED = 11
    AUTH_FAILED = 12
    FAULT_LATCHED = 13
    TOO_LARGE = 14
    HEAD_NOT_PRESENT = 15
    VERSION = 16
    PULSE_RANGE = 17
    TOO_HOT = 18
    BUSY = 19

    @property
    def text(self) -> str:
        return NACK_TEXT[self]


NACK_TEXT: dict[NackCode, str] = {
    NackCode.UNKNOWN_TYPE: "the device does not know this request",
    NackCode.BAD_LENGTH: "the request payload has the wrong length",
    NackCode.BAD_VALUE: "a value in the request is out of range",
    NackCode.BAD_STATE: "the request is not allowed in the device's current state",
    NackCode.NO_PLAN: "no plan is loaded",
    NackCode.PLAN_MISMATCH: "the plan id does not match the loaded plan",
    NackCode.LIMIT_IRRADIANCE: "irradiance above the device's limit for the channel",
    NackCode.LIMIT_DURATION: "duration above the device's maximum session duration",
    NackCode.LIMIT_FLUENCE: "fluence above the device's maximum session fluence",
    NackCode.UNKNOWN_CHANNEL: "the plan names a channel the device does not have",
    NackCode.AUTH_REQUIRED: "the request adds energy and needs authentication",
    NackCode.AUTH_FAILED: "the authentication tag or counter is wrong",
    NackCode.FAULT_LATCHED: "a fault is latched; clear it first",
    NackCode.TOO_LARGE: "the request is larger than the device accepts",
    NackCode.HEAD_NOT_PRESENT: "the cap is not on a head",
    NackCode.VERSION: "the device speaks another protocol version",
    NackCode.PULSE_RANGE: "pulse frequency or duty outside the device's range",
    NackCode.TOO_HOT: "the scalp is already too warm to start",
    NackCode.BUSY: "the device is busy; retry",
}


class State(IntEnum):
    IDLE = 0  # no plan loaded
    READY = 1  # plan loaded, not started
    RUNNING = 2
    PAUSED = 3
    FAULT = 4  # latched; CLEAR_FAULT once the cause is gone


class Capability(IntFlag):
    AUTH_REQUIRED = 0x0001  # energy-adding requests need the auth trailer
    SIMULATED = 0x0002  # a simulator, not a cap on a head
    PULSE = 0x0004  # pulsed output supported
    FLUENCE_TARGET = 0x0008  # steps ending on a fluence counter supported
    HEAD_SENSOR = 0x0010
    DEV_KEY = 0x0020  # accepts DEVELOPMENT_KEY
    AMBIENT_SENSOR = 0x0040


class LinkPolicy(IntEnum):
    FINISH = 0  # on lease expiry, run the (finite, pre-checked) plan to its end
    STOP = 1  # on lease expiry, emitters off at once and end the session


class StepKind(IntEnum):
    DURATION = 0  # runs for duration_ms
    FLUENCE = 1  # runs until every targeted channel reached its target, at most duration_ms


class TelemetryFlag(IntFlag):
    HEAD_PRESENT = 0x0001
    LEASE_ACTIVE = 0x0002
    LEASE_EXPIRED = 0x0004
    PAUSED_BY_HOST = 0x0008
    PAUSED_HEAD_OFF = 0x0010
    DERATED = 0x0020
    FAULT_THERMAL = 0x0040
    FAULT_SENSOR = 0x0080
    FAULT_OUTPUT = 0x0100
    FAULT_SUPPLY = 0x0200
    EMITTING = 0x0400  # measured output on any channel
    AUTHENTICATED = 0x0800
    RAMPING = 0x1000


class EventKind(IntEnum):
    BOOT = 1  # a = boot cause
    STATE = 2  # a = new state, b = old state, value = reason (Interlock or AbortReason)
    STEP = 3  # a = step index that started, value = plan id (low 31 bits)
    INTERLOCK = 4  # a = Interlock, b = zone/channel index, value/limit scaled per kind
    FAULT = 5  # a = Interlock kind of the fault, b = index, value/limit scaled per kind
    LEASE_EXPIRED = 6  # a = LinkPolicy applied
    LEASE_RESTORED = 7
    HEAD = 8  # a = 1 present, 0 removed
    DERATE = 9  # value = new permille, limit = old permille
    TARGET_REACHED = 10  # b = channel index, value = fluence µJ/cm²
    SESSION_END = 11  # a = Outcome, b = reason, value = emitting ms, limit = plan id


class Interlock(IntEnum):
    NONE = 0
    THERMAL_CUTOFF = 1  # value/limit in 0.01 °C, b = zone index
    IRRADIANCE_CAP = 2  # 0.01 mW/cm², b = channel index
    MAX_DURATION = 3  # ms
    MAX_FLUENCE = 4  # µJ/cm², b = channel index
    HEAD_OFF_TIMEOUT = 5  # ms
    LEASE_STOP = 6  # ms since last renewal
    BROWNOUT = 7  # mV
    SENSOR_FAULT = 8  # 0.01 °C reading, b = zone index
    OVER_OUTPUT = 9  # 0.01 mW/cm² measured vs allowed, b = channel index
    WATCHDOG = 10


class AbortReason(IntEnum):
    UNSPECIFIED = 0
    USER = 1
    SAFETY_MONITOR = 2
    LINK = 3
    HOST_ERROR = 4


class Outcome(IntEnum):
    RUNNING = 0
    COMPLETED = 1
    ABORTED = 2  # by the host; reason = AbortReason
    INTERLOCK = 3  # reason = Interlock
    LEASE_STOP = 4
    POWER_LOSS = 5  # found unfinished at boot (reboot, power cut)
    MAX_DURATION = 6  # a fluence target was not reached within the step's duration


class BootCause(IntEnum):
    POWER_ON = 0
    WATCHDOG = 1
    BROWNOUT = 2
    SOFTWARE = 3


# --- framing: CRC and COBS ---------------------------------------------------------------


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no xorout)."""
    return binascii.crc_hqx(data, 0xFFFF)


def cobs_encode(data: bytes) -> bytes:
    """Consistent Overhead Byte Stuffing; the result holds no zero byte."""
    return bytes(_cobs(bytes(data), False))


def _cobs(data: bytes, delimit: bool) -> bytearray:
    """COBS of ``data``, with the 0x00 frame delimiter appended when ``delimit``."""
    lens = list(map(len, data.split(b"\x00")))
    if max(lens) < 254:
        # the common case: each zero becomes the distance to the next one, in one buffer
        out = bytearray(b"\x00")
        out += data
        pos = 0
        for n in lens:
            out[pos] = n + 1
            pos += n + 1
        if delimit:
            out.append(0)
        return out
    out = bytearray()
    blocks = data.split(b"\x00")
    last = len(blocks) - 1
    for index, block in enumerate(blocks):
        # a block longer than 253 bytes is cut into 254-byte runs (code 0xFF, no zero)
        while len(block) >= 254:
            out.append(0xFF)
            out += block[:254]
            block = block[254:]
            if not block and index == last:
                break  # data ended exactly after a full run: no final code byte
        else:
            out.append(len(block) + 1)
            out += block
    if delimit:
        out.append(0)
    return out


def cobs_decode(data: bytes) -> bytes:
    """Inverse of :func:`cobs_encode`; raises WireError on a malformed encoding."""
    n = len(data)
    if n == 0:
        return b""
    if 0 in data:
        raise WireError("zero byte inside a COBS frame")
    if 0xFF not in data:
        # the common case: every code byte after the first stands for a zero
        out = bytearray(data)
        i = out[0]
        while i < n:
            code = out[i]
            out[i] = 0
            i += code
        if i != n:
            raise WireError("COBS block runs past the end of the frame")
        return bytes(out[1:])
    out = bytearray()
    i = 0
    while i < n:
        code = data[i]
        end = i + code
        if end > n:
            raise WireError("COBS block runs past the end of the frame")
        out += data[i + 1 : end]
        i = end
        if code != 0xFF and i < n:
            out.append(0)
    return bytes(out)


@dataclass(frozen=True, slots=True)
class Frame:
    """A frame that passed COBS, length and CRC checks (its payload is not yet parsed)."""

    version: int
    flags: int
    type: int
    seq: int
    payload: bytes

    @property
    def raw(self) -> bytes:
        """Header and payload without the CRC (what the CRC and an auth tag cover)."""
        return (
            HEADER.pack(self.version, self.flags, self.type, self.seq, len(self.payload))
            + self.payload
        )


def encode_frame(
    msg_type: int,
    seq: int,
    payload: bytes = b"",
    *,
    flags: int = 0,
    version: int = PROTOCOL_MAJOR,
) -> bytes:
    """One complete frame ready for the wire, trailing 0x00 delimiter included."""
    if len(payload) > MAX_PAYLOAD:
        raise WireError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    body = HEADER.pack(version, flags, msg_type, seq & 0xFFFF, len(payload)) + payload
    crc = crc16(body)
    return bytes(_cobs(body + bytes((crc >> 8, crc & 0xFF)), True))


@dataclass(slots=True)
class DecoderStats:
    frames: int = 0
    bytes_dropped: int = 0  # bytes that were part of no good frame
    crc_errors: int = 0
    cobs_errors: int = 0
    short_frames: int = 0
    oversize: int = 0
    length_errors: int = 0

    @property
    def bad_frames(self) -> int:
        return (
            self.crc_errors
            + self.cobs_errors
            + self.short_frames
            + self.oversize
            + self.length_errors
        )

    def as_dict(self) -> dict[str, int]:
        return {
            "frames": self.frames,
            "bytes_dropped": self.bytes_dropped,
            "crc_errors": self.crc_errors,
            "cobs_errors": self.cobs_errors,
            "short_frames": self.short_frames,
            "oversize": self.oversize,
            "length_errors": self.length_errors,
        }


class FrameDecoder:
    """Byte-fed frame decoder: ``feed(data)`` returns the good frames completed by ``data``.

    It never blocks and never raises on input: a frame with a bad COBS encoding, a bad
    CRC, too short or too long is dropped and counted in :attr:`stats`, and decoding
    resumes at the next 0x00 delimiter. Empty frames (consecutive delimiters) are idle
    fill and are ignored.
    """

    __slots__ = ("_buf", "_overflow", "stats")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._overflow = False
        self.stats = DecoderStats()

    def reset(self) -> None:
        self._buf.clear()
        self._overflow = False

    def feed(self, data: bytes) -> list[Frame]:
        frames: list[Frame] = []
        if not data:
            return frames
        parts = bytes(data).split(b"\x00")
        # every part but the last is terminated by a delimiter
        for part in parts[:-1]:
            if self._overflow:
                self.stats.bytes_dropped += len(self._buf) + len(part) + 1
                self._buf.clear()
                self._overflow = False
                continue
            if self._buf:
                self._buf += part
                encoded = bytes(self._buf)
                self._buf.clear()
            else:
                encoded = part
            if not encoded:
                continue
            frame = self._decode(encoded)
            if frame is not None:
                frames.append(frame)
        tail = parts[-1]
        if tail:
            if self._overflow:
                self.stats.bytes_dropped += len(tail)
            else:
                self._buf += tail
                if len(self._buf) > MAX_ENCODED:
                    self.stats.oversize += 1
                    self.stats.bytes_dropped += len(self._buf)
                    self._buf.clear()
                    self._overflow = True
        return frames

    def _decode(self, encoded: bytes) -> Frame | None:
        stats = self.stats
        if len(encoded) > MAX_ENCODED:
            stats.oversize += 1
            stats.bytes_dropped += len(encoded) + 1
            return None
        try:
            body = cobs_decode(encoded)
        except WireError:
            stats.cobs_errors += 1
            stats.bytes_dropped += len(encoded) + 1
            return None
        if len(body) < HEADER_SIZE + CRC_SIZE:
            stats.short_frames += 1
            stats.bytes_dropped += len(encoded) + 1
            return None
        if crc16(body[:-2]) != (body[-2] << 8 | body[-1]):
            stats.crc_errors += 1
            stats.bytes_dropped += len(encoded) + 1
            return None
        version, flags, msg_type, seq, length = HEADER.unpack_from(body)
        if length != len(body) - HEADER_SIZE - CRC_SIZE:
            # a frame cut short by a corrupted delimiter can still end in a valid CRC (the
            # CRC has no final XOR): the length field catches it
            stats.length_errors += 1
            stats.bytes_dropped += len(encoded) + 1
            return None
        stats.frames += 1
        return Frame(version, flags, msg_type, seq, body[HEADER_SIZE:-2])


# --- fixed-point helpers ---------------------------------------------------------------


def _irr(v: float) -> int:  # mW/cm² -> 0.01 mW/cm² (u16)
    return _clamp(round(v * 100), 0, 0xFFFF)


def _fl(v: float) -> int:  # J/cm² -> µJ/cm² (u32)
    return _clamp(round(v * 1_000_000), 0, 0xFFFFFFFF)


def _temp(v: float | None) -> int:  # °C -> 0.01 °C (i16); None -> unknown
    if v is None:
        return TEMP_UNKNOWN
    return _clamp(round(v * 100), -32767, 32767)


def _clamp(v: int, lo: int, hi: int) -> int:
    return lo if v < lo else hi if v > hi else v


def _str(s: str) -> bytes:
    b = s.encode("utf-8")[:255]
    return bytes((len(b),)) + b


def _take_str(buf: bytes, off: int) -> tuple[str, int]:
    n = buf[off]
    end = off + 1 + n
    if end > len(buf):
        raise WireError("string runs past the end of the payload")
    return buf[off + 1 : end].decode("utf-8", errors="replace"), end


# --- messages ---------------------------------------------------------------------------


class Message:
    """Base of every message; ``TYPE`` is its :class:`MsgType`."""

    TYPE: ClassVar[MsgType]

    def payload(self) -> bytes:
        return b""

    @classmethod
    def parse(cls, payload: bytes) -> Message:
        if payload:
            raise WireError(f"{cls.TYPE.name} takes no payload, got {len(payload)} bytes")
        return cls()


def _fixed(cls: type, size: int, payload: bytes) -> None:
    if len(payload) != size:
        raise WireError(f"{cls.TYPE.name} payload must be {size} bytes, got {len(payload)}")  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Hello(Message):
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
class ZoneInfo:
    """A scalp zone with its temperature sensor and two-node thermal model."""

    id: int
    name: str
    area_cm2: float
    c_board_j_k: float  # heat capacity of the emitter board
    c_scalp_j_k: float  # heat capacity of the scalp contact layer
    g_ambient_w_k: float  # board to ambient conductance
    g_contact_w_k: float  # board to scalp conductance
    g_tissue_w_k: float  # scalp to perfused tissue conductance
    t_core_c: float  # perfused tissue temperature


@dataclass(frozen=True, slots=True)
class ChannelInfo:
    """One independently driven group of emitters of one wavelength in one zone."""

    id: int
    zone: int  # zone id
    wavelength_nm: int
    max_irradiance_mw_cm2: float  # calibrated maximum at the scalp
    tempco_pct_per_k: float  # output change per kelvin (negative: falls when hot)
    kind: str  # "led" or "laser"
    emitter_count: int
    emitter_max_mw: float  # optical power of one emitter at maximum irradiance
    heat_board_w_per_mw_cm2: float  # board heat per mW/cm² of average output
    heat_scalp_w_per_mw_cm2: float  # heat absorbed in the scalp per mW/cm²


@dataclass(frozen=True, slots=True)
class DeviceLimits:
    """Hard limits enforced by the device itself; the host can never raise them."""

    max_irradiance_mw_cm2: float  # per channel
    max_session_s: float
    max_fluence_j_cm2: float  # per channel per session
    cutoff_c: float  # thermal cut-off (reading)
    sensor_uncertainty_c: float
    head_off_abort_s: float
    min_lease_ms: int
    max_telemetry_hz: int
    min_pulse_hz: float
    max_pulse_hz: float


_HELLO_HEAD = struct.Struct("<BBBBBHIHI16sH")
_LIMITS = struct.Struct("<HIIhhIIHII")
_ZONE_F = struct.Struct("<7f")
_CHAN = struct.Struct("<BBHHhBHHff")

_KIND_CODES = {"led": 0, "laser": 1}
_KIND_NAMES = {v: k for k, v in _KIND_CODES.items()}


@dataclass(frozen=True, slots=True)
class HelloInfo(Message):
    """The device's answer to HELLO: who it is, what it has, what it refuses."""

    TYPE: ClassVar[MsgType] = MsgType.HELLO_INFO
    major: int
    minor: int
    firmware: tuple[int, int, int]
    capabilities: Capability
    clock_rate: float  # device seconds per real second; 0 = lockstep virtual clock
    boot_count: int
    uptime_ms: int
    nonce: bytes
    max_payload: int
    limits: DeviceLimits
    model: str
    serial: str
    zones: tuple[ZoneInfo, ...]
    channels: tuple[ChannelInfo, ...]

    def payload(self) -> bytes:
        lim = self.limits
        out = bytearray(
            _HELLO_HEAD.pack(
                self.major,
                self.minor,
                *self.firmware,
                int(self.capabilities),
                round(self.clock_rate * 1000),
                self.boot_count,
                self.uptime_ms,
                self.nonce,
                self.max_payload,
            )
        )
        out += _LIMITS.pack(
            _irr(lim.max_irradiance_mw_cm2),
            round(lim.max_session_s * 1000),
            _fl(lim.max_fluence_j_cm2),
            _temp(lim.cutoff_c),
            _temp(lim.sensor_uncertainty_c),
            round(lim.head_off_abort_s * 1000),
            lim.min_lease_ms,
            lim.max_telemetry_hz,
            round(lim.min_pulse_hz * 1000),
            round(lim.max_pulse_hz * 1000),
        )
        out += _str(self.model) + _str(self.serial)
        out.append(len(self.zones))
        for z in self.zones:
            out.append(z.id)
            out += _str(z.name)
            out += _ZONE_F.pack(
                z.area_cm2,
                z.c_board_j_k,
                z.c_scalp_j_k,
                z.g_ambient_w_k,
                z.g_contact_w_k,
                z.g_tissue_w_k,
                z.t_core_c,
            )
        out.append(len(self.channels))
        for c in self.channels:
            out += _CHAN.pack(
                c.id,
                c.zone,
                c.wavelength_nm,
                _irr(c.max_irradiance_mw_cm2),
                round(c.tempco_pct_per_k * 1000),
                _KIND_CODES[c.kind],
                c.emitter_count,
                round(c.emitter_max_mw * 100),
                c.heat_board_w_per_mw_cm2,
                c.heat_scalp_w_per_mw_cm2,
            )
        return bytes(out)

    @classmethod
    def parse(cls, payload: bytes) -> HelloInfo:
        try:
            (major, minor, fa, fb, fc, caps, rate, boots, uptime, nonce, max_payload) = (
                _HELLO_HEAD.unpack_from(payload, 0)
            )
            off = _HELLO_HEAD.size
            (mi, ms, mf, cut, unc, head, lease, tel, pmin, pmax) = _LIMITS.unpack_from(payload, off)
            off += _LIMITS.size
            model, off = _take_str(payload, off)
            serial, off = _take_str(payload, off)
            zones = []
            nz = payload[off]
            off += 1
            for _ in range(nz):
                zid = payload[off]
                name, off = _take_str(payload, off + 1)
                vals = _ZONE_F.unpack_from(payload, off)
                off += _ZONE_F.size
                zones.append(ZoneInfo(zid, name, *(_f32(v) for v in vals)))
            channels = []
            n = payload[off]
            off += 1
            for _ in range(n):
                (cid, zone, wl, mx, tc, kind, count, emw, hb, hs) = _CHAN.unpack_from(payload, off)
                off += _CHAN.size
                channels.append(
                    ChannelInfo(
                        cid,
                        zone,
                        wl,
                        mx / 100,
                        tc / 1000,
                        _KIND_NAMES.get(kind, "led"),
                        count,
                        emw / 100,
                        _f32(hb),
                        _f32(hs),
                    )
                )
        except (struct.error, IndexError) as err:
            raise WireError(f"HELLO_INFO payload is truncated: {err}") from None
        if off != len(payload):
            raise WireError(f"HELLO_INFO has {len(payload) - off} unexpected trailing bytes")
        limits = DeviceLimits(
            mi / 100,
            ms / 1000,
            mf / 1e6,
            cut / 100,
            unc / 100,
            head / 1000,
            lease,
            tel,
            pmin / 1000,
            pmax / 1000,
        )
        return cls(
            major,
            minor,
            (fa, fb, fc),
            Capability(caps),
            rate / 1000,
            boots,
            uptime,
            nonce,
            max_payload,
            limits,
            model,
            serial,
            tuple(zones),
            tuple(channels),
        )


def _f32(v: float) -> float:
    """Round a float32 to the shortest decimal that reads back as the same float32."""
    for digits in range(6, 10):
        r = float(f"{v:.{digits}g}")
        if struct.unpack("<f", struct.pack("<f", r))[0] == v:
            return r
    return v


@dataclass(frozen=True, slots=True)
class ChannelSetpoint:
    channel: int  # channel id
    irradiance_mw_cm2: float  # on-state irradiance at the scalp
    fluence_target_j_cm2: float = 0.0  # FLUENCE steps: this channel stops at its target


@dataclass(frozen=True, slots=True)
class PlanStep:
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
    """The whole session: the device runs it on its own clock after START."""

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


def _enum(cls: Any, value: int) -> Any:
    try:
        return cls(value)
    except ValueError:
        raise WireError(f"{value} is not a valid {cls.__name__}") from None


_U32 = struct.Struct("<I")
_U16 = struct.Struct("<H")


@dataclass(frozen=True, slots=True)
class Start(Message):
    """Start the loaded plan. Idempotent: a second START of the same id starts nothing."""

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
    TYPE: ClassVar[MsgType] = MsgType.PAUSE


@dataclass(frozen=True, slots=True)
class Resume(Message):
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
    TYPE: ClassVar[MsgType] = MsgType.HEARTBEAT


@dataclass(frozen=True, slots=True)
class SetTelemetry(Message):
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
    TYPE: ClassVar[MsgType] = MsgType.GET_STATUS


@dataclass(frozen=True, slots=True)
class GetRecords(Message):
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
    TYPE: ClassVar[MsgType] = MsgType.CLEAR_FAULT


@dataclass(frozen=True, slots=True)
class Ack(Message):
    TYPE: ClassVar[MsgType] = MsgType.ACK


_NACK = struct.Struct("<BBii")


@dataclass(frozen=True, slots=True)
class Nack(Message):
    TYPE: ClassVar[MsgType] = MsgType.NACK
    code: NackCode
    channel: int = NO_INDEX  # channel id the refusal is about, 0xFF = none
    limit: int = 0  # in the unit of the code (see docs/wire-protocol.md)
    observed: int = 0
    detail: str = ""

    def payload(self) -> bytes:
        return (
            _NACK.pack(self.code, self.channel, self.limit, self.observed)
            + self.detail.encode("utf-8")[:64]
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
    STARTED = 0
    ALREADY_RUNNING = 1
    ALREADY_FINISHED = 2


_STARTED = struct.Struct("<IBI")


@dataclass(frozen=True, slots=True)
class Started(Message):
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


@functools.cache
def _tel_body(n: int, nz: int) -> struct.Struct:
    return struct.Struct(f"<{'HHI' * n}{nz + 1}h")


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
        try:
            (t, boots, state, step, pid, flags, derate, mv, el, sel, n, nz) = _TEL_HEAD.unpack_from(
                payload, 0
            )
        except struct.error:
            raise WireError("TELEMETRY payload is truncated") from None
        expect = _TEL_HEAD.size + n * _TEL_CH.size + 2 * nz + 2
        if len(payload) != expect:
            raise WireError(f"{cls.TYPE.name} payload must be {expect} bytes, got {len(payload)}")
        vals = _tel_body(n, nz).unpack_from(payload, _TEL_HEAD.size)
        # every frame goes through here: list comprehensions and cached enum members
        temps = [None if v == TEMP_UNKNOWN else v / 100 for v in vals[3 * n :]]
        try:
            state_member = _STATES[state]
        except IndexError:
            raise WireError(f"{state} is not a valid State") from None
        flag = _FLAGS.get(flags)
        if flag is None:
            flag = _FLAGS.setdefault(flags, TelemetryFlag(flags))
        return cls(
            t,
            boots,
            state_member,
            step,
            pid,
            flag,
            derate,
            mv,
            el,
            sel,
            tuple([v / 100 for v in vals[0 : 3 * n : 3]]),
            tuple([v / 100 for v in vals[1 : 3 * n : 3]]),
            tuple([v / 1e6 for v in vals[2 : 3 * n : 3]]),
            tuple(temps[:nz]),
            temps[nz],
        )

    @property
    def emitting(self) -> bool:
        return bool(self.flags & TelemetryFlag.EMITTING)


@dataclass(frozen=True, slots=True)
class Status(Telemetry):
    """Reply to GET_STATUS: a telemetry sample taken now (same layout)."""

    TYPE: ClassVar[MsgType] = MsgType.STATUS


_EVENT = struct.Struct("<IBBBii")


@dataclass(frozen=True, slots=True)
class Event(Message):
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
        Ack,
        Nack,
        Started,
        Status,
        Records,
        Telemetry,
        Event,
    )
}


# --- authentication -----------------------------------------------------------------------


def auth_tag(key: bytes, nonce: bytes, counter: int, frame_head: bytes, payload: bytes) -> bytes:
    """Truncated HMAC-SHA256 over nonce, counter, the frame header and the payload."""
    mac = hmac.new(
        key, b"lllt-auth-1" + nonce + _U32.pack(counter) + frame_head + payload, hashlib.sha256
    )
    return mac.digest()[:TAG_SIZE]


@dataclass(slots=True)
class AuthState:
    """Host-side signer: one per connection (the nonce comes from HELLO_INFO)."""

    key: bytes
    nonce: bytes
    counter: int = 0

    def sign(self, msg_type: int, seq: int, payload: bytes) -> tuple[int, bytes]:
        """Return (flags, payload with trailer) for an authenticated request."""
        self.counter += 1
        head = HEADER.pack(
            PROTOCOL_MAJOR, FLAG_AUTH, msg_type, seq & 0xFFFF, len(payload) + AUTH_TRAILER.size
        )
        tag = auth_tag(self.key, self.nonce, self.counter, head, payload)
        return FLAG_AUTH, payload + AUTH_TRAILER.pack(self.counter, tag)


def split_auth(frame: Frame) -> tuple[bytes, int | None, bytes | None]:
    """Split a frame's payload into (payload, counter, tag); counter None if unsigned."""
    if not frame.flags & FLAG_AUTH:
        return frame.payload, None, None
    if len(frame.payload) < AUTH_TRAILER.size:
        raise WireError("authenticated frame too short for its trailer")
    body = frame.payload[: -AUTH_TRAILER.size]
    counter, tag = AUTH_TRAILER.unpack(frame.payload[-AUTH_TRAILER.size :])
    return body, counter, tag


def verify_auth(key: bytes, nonce: bytes, frame: Frame) -> tuple[bytes, int] | None:
    """Device side: (payload, counter) when the tag is right, else None."""
    body, counter, tag = split_auth(frame)
    if counter is None or tag is None:
        return None
    head = HEADER.pack(frame.version, frame.flags, frame.type, frame.seq, len(frame.payload))
    if hmac.compare_digest(auth_tag(key, nonce, counter, head, body), tag):
        return body, counter
    return None


# --- message <-> frame ------------------------------------------------------------------


def encode_message(msg: Message, seq: int = 0, *, auth: AuthState | None = None) -> bytes:
    payload = msg.payload()
    flags = 0
    if auth is not None:
        flags, payload = auth.sign(msg.TYPE, seq, payload)
    return encode_frame(msg.TYPE, seq, payload, flags=flags)


def decode_message(frame: Frame) -> Message:
    """Parse a frame's payload (auth trailer removed); raises WireError when malformed."""
    cls = MESSAGE_TYPES.get(frame.type)
    if cls is None:
        raise WireError(f"unknown message type 0x{frame.type:02x}")
    payload = frame.payload
    if frame.flags & FLAG_AUTH:
        payload = split_auth(frame)[0]
    return cls.parse(payload)


def iter_messages(
    decoder: FrameDecoder, data: bytes, on_error: Callable[[Frame, WireError], None] | None = None
) -> Iterable[tuple[Frame, Message]]:
    """Feed ``data`` and yield (frame, message); malformed payloads go to ``on_error``."""
    for frame in decoder.feed(data):
        try:
            yield frame, decode_message(frame)
        except WireError as err:
            if on_error is not None:
                on_error(frame, err)


@dataclass(slots=True)
class LinkCounters:
    """What a link endpoint counts besides the decoder's stats."""

    malformed: int = 0  # frames with a good CRC but an undecodable payload
    unexpected: int = 0  # replies nobody waited for, unknown types
    retries: int = 0
    extra: dict[str, int] = field(default_factory=dict)


# --- JSON-friendly form (golden vectors, logs) --------------------------------------------


def to_dict(obj: Any) -> Any:
    """A JSON-friendly form of a message or part of one (enums by name, bytes as hex)."""
    if isinstance(obj, IntFlag):
        return [m.name for m in type(obj) if m & obj and m.name]
    if isinstance(obj, IntEnum):
        return obj.name
    if isinstance(obj, bytes):
        return obj.hex()
    if isinstance(obj, tuple | list):
        return [to_dict(v) for v in obj]
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    return obj


def from_dict(cls: type[Any], data: Any) -> Any:
    """Inverse of :func:`to_dict` for a message class (or a nested dataclass)."""
    import typing

    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            kwargs[f.name] = _from_json(hints[f.name], data[f.name])
    return cls(**kwargs)


def _from_json(hint: Any, value: Any) -> Any:
    import types
    import typing

    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        hint = next(a for a in args if a is not type(None))
        return _from_json(hint, value)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_from_json(args[0], v) for v in value)
        return tuple(_from_json(a, v) for a, v in zip(args, value, strict=True))
    if isinstance(hint, type):
        if issubclass(hint, IntFlag):
            flag = hint(0)
            for name in value:
                flag |= hint[name]
            return flag
        if issubclass(hint, IntEnum):
            return hint[value] if isinstance(value, str) else hint(value)
        if hint is bytes:
            return bytes.fromhex(value)
        if dataclasses.is_dataclass(hint):
            return from_dict(hint, value)
        if hint is float:
            return float(value)
    return value

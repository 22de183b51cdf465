"""The enumerations of wire protocol v1: message types, states, flags, codes."""

from __future__ import annotations

from enum import IntEnum, IntFlag


class MsgType(IntEnum):
    """Message type codes: 0x01-0x3F requests (host → device), 0x40-0x5F replies (with the
    request's seq), 0x60-0x7F unsolicited device messages (the device's own seq)."""

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
    PROVISION_KEY = 0x1B  # a new device key: wired link only, in a provisioning state
    RECORD_ACCESS = 0x1C  # record access: count / report from sequence number N / abort
    # device -> host replies (same seq as the request)
    ACK = 0x40
    NACK = 0x41
    HELLO_INFO = 0x42
    STARTED = 0x43
    STATUS = 0x44
    RECORDS = 0x45
    RECORD_COUNT = 0x46
    # device -> host, unsolicited (device's own seq counter)
    TELEMETRY = 0x60
    EVENT = 0x61
    RECORD = 0x62  # one record of a RECORD_ACCESS report
    RECORDS_END = 0x63  # the end of a RECORD_ACCESS report


REQUEST_TYPES = frozenset(t for t in MsgType if t < 0x40)
REPLY_TYPES = frozenset(t for t in MsgType if 0x40 <= t < 0x60)
UNSOLICITED_TYPES = frozenset(t for t in MsgType if t >= 0x60)
#: Requests that add energy and so need an authentication trailer when the device asks.
#: DERATE needs one only when it raises the output factor.
ENERGY_TYPES = frozenset({MsgType.UPLOAD_PLAN, MsgType.START, MsgType.RESUME})


class NackCode(IntEnum):
    """Why a device refused a request (NACK ``code``); :attr:`text` says it in words."""

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
    WIRED_ONLY = 20

    @property
    def text(self) -> str:
        """The refusal in words, for messages."""
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
    NackCode.WIRED_ONLY: "allowed over the wired (USB) link only",
}


class State(IntEnum):
    """The device's state (TELEMETRY ``state``)."""

    IDLE = 0  # no plan loaded
    READY = 1  # plan loaded, not started
    RUNNING = 2
    PAUSED = 3
    FAULT = 4  # latched; CLEAR_FAULT once the cause is gone


class Capability(IntFlag):
    """What a device supports and requires (HELLO_INFO ``capabilities`` bits)."""

    AUTH_REQUIRED = 0x0001  # energy-adding requests need the auth trailer
    SIMULATED = 0x0002  # a simulator, not a cap on a head
    PULSE = 0x0004  # pulsed output supported
    FLUENCE_TARGET = 0x0008  # steps ending on a fluence counter supported
    HEAD_SENSOR = 0x0010
    DEV_KEY = 0x0020  # accepts DEVELOPMENT_KEY
    AMBIENT_SENSOR = 0x0040


class LinkPolicy(IntEnum):
    """What the device does when the host's lease runs out (UPLOAD_PLAN ``policy``)."""

    FINISH = 0  # on lease expiry, run the (finite, pre-checked) plan to its end
    STOP = 1  # on lease expiry, emitters off at once and end the session


class StepKind(IntEnum):
    """How a plan step ends: after its duration, or when its channels reach their targets."""

    DURATION = 0  # runs for duration_ms
    FLUENCE = 1  # runs until every targeted channel reached its target, at most duration_ms


class TelemetryFlag(IntFlag):
    """Status bits of TELEMETRY and STATUS ``flags``."""

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
    """EVENT kinds; each comment says what ``a``, ``b``, ``value`` and ``limit`` carry."""

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
    """The device's interlocks (INTERLOCK and FAULT events' ``a``, a record's reason); each
    comment gives the unit of ``value`` and ``limit`` and, where it has one, what ``b``
    indexes."""

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
    """Why the host aborted a session (ABORT payload, a record's reason)."""

    UNSPECIFIED = 0
    USER = 1
    SAFETY_MONITOR = 2
    LINK = 3
    HOST_ERROR = 4


class Outcome(IntEnum):
    """How a session ended, in the device's session records."""

    RUNNING = 0
    COMPLETED = 1
    ABORTED = 2  # by the host; reason = AbortReason
    INTERLOCK = 3  # reason = Interlock
    LEASE_STOP = 4
    POWER_LOSS = 5  # found unfinished at boot (reboot, power cut)
    MAX_DURATION = 6  # a fluence target was not reached within the step's duration


class BootCause(IntEnum):
    """Why the device started (BOOT event ``a``)."""

    POWER_ON = 0
    WATCHDOG = 1
    BROWNOUT = 2
    SOFTWARE = 3

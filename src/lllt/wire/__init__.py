"""Wire protocol v1: frames, messages and the byte-fed decoder.

This package is the contract between the host and a cap (firmware or simulator); the
normative text is ``docs/wire-protocol.md`` and ``tests/vectors/wire-v1.json`` holds the
golden frames that the Python and C implementations both check. It imports nothing but
the standard library, so the simulator can use it without pulling in the host.

A frame on the wire is ``COBS(header | payload | crc16) 0x00`` where the header is
``version u8, flags u8, type u8, seq u16le, length u16le`` and the CRC is
CRC-16/CCITT-FALSE over header and payload, sent big-endian. Messages are dataclasses in
engineering units (mW/cm², J/cm², °C, ms); ``encode_message`` and ``decode_message``
convert them to and from the fixed-point integers of the wire.

One job per module: ``constants`` and ``enums`` (numbers of the spec), ``framing`` (CRC,
COBS, the decoder), ``base`` (the message base class, fixed-point fields), ``description``
(the device description in HELLO_INFO), ``messages``, ``auth``, ``codec`` (message <->
frame), ``jsonform`` and ``profiles`` (packaged device descriptions). Everything public is
re-exported here, each module loaded on first use of one of its names (so a command that
needs only the enumerations never builds the message classes): import ``lllt.wire``, not
its modules.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lllt.wire.auth import (
        AuthState,
        auth_tag,
        split_auth,
        verify_auth,
    )
    from lllt.wire.base import (
        Message,
    )
    from lllt.wire.codec import (
        LinkCounters,
        decode_message,
        encode_message,
        iter_messages,
    )
    from lllt.wire.constants import (
        AUTH_TRAILER,
        CRC_SIZE,
        DEVELOPMENT_KEY,
        FLAG_AUTH,
        HEADER,
        HEADER_SIZE,
        IRRADIANCE_STEP,
        KEY_SIZE,
        MAX_CHANNELS,
        MAX_ENCODED,
        MAX_FRAME,
        MAX_PAYLOAD,
        MAX_RECORDS,
        MAX_STEPS,
        MAX_ZONES,
        NO_INDEX,
        NONCE_SIZE,
        PROTOCOL_MAJOR,
        PROTOCOL_MINOR,
        TAG_SIZE,
        TEMP_UNKNOWN,
        WireError,
    )
    from lllt.wire.description import (
        ChannelInfo,
        DeviceLimits,
        HelloInfo,
        ZoneInfo,
    )
    from lllt.wire.enums import (
        ENERGY_TYPES,
        NACK_TEXT,
        REPLY_TYPES,
        REQUEST_TYPES,
        UNSOLICITED_TYPES,
        AbortReason,
        BootCause,
        Capability,
        EventKind,
        Interlock,
        LinkPolicy,
        MsgType,
        NackCode,
        Outcome,
        State,
        StepKind,
        TelemetryFlag,
    )
    from lllt.wire.framing import (
        DecoderStats,
        Frame,
        FrameDecoder,
        cobs_decode,
        cobs_encode,
        crc16,
        encode_frame,
    )
    from lllt.wire.jsonform import (
        from_dict,
        to_dict,
    )
    from lllt.wire.messages import (
        MESSAGE_TYPES,
        Abort,
        Ack,
        ChannelSetpoint,
        ClearFault,
        Derate,
        Event,
        GetRecords,
        GetStatus,
        Heartbeat,
        Hello,
        Nack,
        Pause,
        PlanStep,
        ProvisionKey,
        Record,
        RecordAccess,
        RecordCount,
        RecordOp,
        Records,
        RecordsEnd,
        RecordsEndStatus,
        Resume,
        SessionRecord,
        SetTelemetry,
        Start,
        Started,
        StartResult,
        Status,
        Telemetry,
        UploadPlan,
    )

#: module -> the public names it defines
_MODULES: dict[str, tuple[str, ...]] = {
    "constants": (
        "AUTH_TRAILER",
        "CRC_SIZE",
        "DEVELOPMENT_KEY",
        "FLAG_AUTH",
        "HEADER",
        "HEADER_SIZE",
        "IRRADIANCE_STEP",
        "KEY_SIZE",
        "MAX_CHANNELS",
        "MAX_ENCODED",
        "MAX_FRAME",
        "MAX_PAYLOAD",
        "MAX_RECORDS",
        "MAX_STEPS",
        "MAX_ZONES",
        "NONCE_SIZE",
        "NO_INDEX",
        "PROTOCOL_MAJOR",
        "PROTOCOL_MINOR",
        "TAG_SIZE",
        "TEMP_UNKNOWN",
        "WireError",
    ),
    "enums": (
        "AbortReason",
        "BootCause",
        "Capability",
        "ENERGY_TYPES",
        "EventKind",
        "Interlock",
        "LinkPolicy",
        "MsgType",
        "NACK_TEXT",
        "NackCode",
        "Outcome",
        "REPLY_TYPES",
        "REQUEST_TYPES",
        "State",
        "StepKind",
        "TelemetryFlag",
        "UNSOLICITED_TYPES",
    ),
    "framing": (
        "DecoderStats",
        "Frame",
        "FrameDecoder",
        "cobs_decode",
        "cobs_encode",
        "crc16",
        "encode_frame",
    ),
    "base": ("Message",),
    "description": (
        "ChannelInfo",
        "DeviceLimits",
        "HelloInfo",
        "ZoneInfo",
    ),
    "messages": (
        "Abort",
        "Ack",
        "ChannelSetpoint",
        "ClearFault",
        "Derate",
        "Event",
        "GetRecords",
        "GetStatus",
        "Heartbeat",
        "Hello",
        "MESSAGE_TYPES",
        "Nack",
        "Pause",
        "PlanStep",
        "ProvisionKey",
        "Record",
        "RecordAccess",
        "RecordCount",
        "RecordOp",
        "Records",
        "RecordsEnd",
        "RecordsEndStatus",
        "Resume",
        "SessionRecord",
        "SetTelemetry",
        "Start",
        "StartResult",
        "Started",
        "Status",
        "Telemetry",
        "UploadPlan",
    ),
    "auth": (
        "AuthState",
        "auth_tag",
        "split_auth",
        "verify_auth",
    ),
    "codec": (
        "LinkCounters",
        "decode_message",
        "encode_message",
        "iter_messages",
    ),
    "jsonform": (
        "from_dict",
        "to_dict",
    ),
}
_WHERE = {name: module for module, names in _MODULES.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'lllt.wire' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"lllt.wire.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))


__all__ = [
    "AUTH_TRAILER",
    "CRC_SIZE",
    "DEVELOPMENT_KEY",
    "ENERGY_TYPES",
    "FLAG_AUTH",
    "HEADER",
    "HEADER_SIZE",
    "IRRADIANCE_STEP",
    "KEY_SIZE",
    "MAX_CHANNELS",
    "MAX_ENCODED",
    "MAX_FRAME",
    "MAX_PAYLOAD",
    "MAX_RECORDS",
    "MAX_STEPS",
    "MAX_ZONES",
    "MESSAGE_TYPES",
    "NACK_TEXT",
    "NONCE_SIZE",
    "NO_INDEX",
    "PROTOCOL_MAJOR",
    "PROTOCOL_MINOR",
    "REPLY_TYPES",
    "REQUEST_TYPES",
    "TAG_SIZE",
    "TEMP_UNKNOWN",
    "UNSOLICITED_TYPES",
    "Abort",
    "AbortReason",
    "Ack",
    "AuthState",
    "BootCause",
    "Capability",
    "ChannelInfo",
    "ChannelSetpoint",
    "ClearFault",
    "DecoderStats",
    "Derate",
    "DeviceLimits",
    "Event",
    "EventKind",
    "Frame",
    "FrameDecoder",
    "GetRecords",
    "GetStatus",
    "Heartbeat",
    "Hello",
    "HelloInfo",
    "Interlock",
    "LinkCounters",
    "LinkPolicy",
    "Message",
    "MsgType",
    "Nack",
    "NackCode",
    "Outcome",
    "Pause",
    "PlanStep",
    "ProvisionKey",
    "Record",
    "RecordAccess",
    "RecordCount",
    "RecordOp",
    "Records",
    "RecordsEnd",
    "RecordsEndStatus",
    "Resume",
    "SessionRecord",
    "SetTelemetry",
    "Start",
    "StartResult",
    "Started",
    "State",
    "Status",
    "StepKind",
    "Telemetry",
    "TelemetryFlag",
    "UploadPlan",
    "WireError",
    "ZoneInfo",
    "auth_tag",
    "cobs_decode",
    "cobs_encode",
    "crc16",
    "decode_message",
    "encode_frame",
    "encode_message",
    "from_dict",
    "iter_messages",
    "split_auth",
    "to_dict",
    "verify_auth",
]

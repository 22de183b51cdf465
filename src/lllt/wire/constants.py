"""Sizes, versions, flags and keys of wire protocol v1, and :class:`WireError`."""

from __future__ import annotations

import struct

PROTOCOL_MAJOR = 1
PROTOCOL_MINOR = 1

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
KEY_SIZE = 32  # every device key (docs/wire-protocol.md §7)
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


#: Resolution of irradiance on the wire (setpoints, telemetry): 0.01 mW/cm².
IRRADIANCE_STEP = 0.01

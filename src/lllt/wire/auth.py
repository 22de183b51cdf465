"""Authentication: truncated HMAC-SHA256 trailers over frames (docs/wire-protocol.md §7)."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from lllt.wire.base import _U32
from lllt.wire.constants import AUTH_TRAILER, FLAG_AUTH, HEADER, PROTOCOL_MAJOR, TAG_SIZE, WireError
from lllt.wire.framing import Frame


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

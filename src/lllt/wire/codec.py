"""Messages to frames and back, and the counters a link endpoint keeps."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from lllt.wire.auth import AuthState, split_auth
from lllt.wire.base import Message
from lllt.wire.constants import FLAG_AUTH, WireError
from lllt.wire.framing import Frame, FrameDecoder, encode_frame
from lllt.wire.messages import MESSAGE_TYPES


def encode_message(msg: Message, seq: int = 0, *, auth: AuthState | None = None) -> bytes:
    """One complete frame for ``msg`` with sequence number ``seq``, delimiter included; with
    ``auth``, signed (AUTH flag and trailer)."""
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

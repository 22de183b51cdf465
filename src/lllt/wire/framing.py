"""Framing: CRC-16, COBS, :class:`Frame` and the byte-fed :class:`FrameDecoder`."""

from __future__ import annotations

import binascii
from dataclasses import dataclass

from lllt.wire.constants import (
    CRC_SIZE,
    HEADER,
    HEADER_SIZE,
    MAX_ENCODED,
    MAX_PAYLOAD,
    PROTOCOL_MAJOR,
    WireError,
)


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no xorout)."""
    return binascii.crc_hqx(data, 0xFFFF)


def cobs_encode(data: bytes) -> bytes:
    """Consistent Overhead Byte Stuffing; the result holds no zero byte."""
    return _cobs(bytes(data), False)


# --- COBS by zero pattern -----------------------------------------------------------------
#
# A device sends the same kind of frame many times a second, and where its zero bytes fall
# (the high bytes of small numbers, mostly) changes rarely: one 25-minute session has about
# fifty patterns in 16,000 frames. The encoding of a pattern is fixed except for the data
# bytes: code bytes where the zeros were, the data elsewhere. So a pattern seen before is
# encoded as one OR of big integers (the data, shifted one byte, with the pattern's code
# bytes), and decoded as one AND after one comparison that proves the frame has that
# pattern's code bytes (which makes the result exactly what the byte-by-byte walk gives).
# Only patterns whose blocks are all shorter than 254 bytes (no 0xFF code) are kept.

#: ``bytes.translate`` tables: every byte but zero to 1 (the pattern); 0 to 0xFF, 1 to 0
#: (a pattern, shifted one byte, to the mask of its code positions)
_PATTERN = bytes([0]) + bytes([1]) * 255
_CODE_MASK = bytes([0xFF, 0]) + bytes(254)
#: most patterns kept by the encoder (then it starts afresh); a decoder keeps fewer
_MAX_PATTERNS = 256
#: pattern -> the code bytes of its encoding, as an integer over the encoded length
_ENCODINGS: dict[bytes, int] = {}


def _cobs(data: bytes, delimit: bool) -> bytes:
    """COBS of ``data``, with the 0x00 frame delimiter appended when ``delimit``."""
    pattern = data.translate(_PATTERN)
    codes = _ENCODINGS.get(pattern)
    if codes is not None:
        size = len(data) + 1
        out = (int.from_bytes(data, "big") | codes).to_bytes(size, "big")
        return out + b"\x00" if delimit else out
    lens = list(map(len, data.split(b"\x00")))
    if max(lens) < 254:
        # each zero becomes the distance to the next one, in one buffer
        buf = bytearray(b"\x00")
        buf += data
        pos = 0
        for n in lens:
            buf[pos] = n + 1
            pos += n + 1
        out = bytes(buf)
        if len(_ENCODINGS) >= _MAX_PATTERNS:
            _ENCODINGS.clear()
        mask = (b"\x00" + pattern).translate(_CODE_MASK)
        _ENCODINGS[pattern] = int.from_bytes(out, "big") & int.from_bytes(mask, "big")
        return out + b"\x00" if delimit else out
    buf = bytearray()
    blocks = data.split(b"\x00")
    last = len(blocks) - 1
    for index, block in enumerate(blocks):
        # a block longer than 253 bytes is cut into 254-byte runs (code 0xFF, no zero)
        while len(block) >= 254:
            buf.append(0xFF)
            buf += block[:254]
            block = block[254:]
            if not block and index == last:
                break  # data ended exactly after a full run: no final code byte
        else:
            buf.append(len(block) + 1)
            buf += block
    if delimit:
        buf.append(0)
    return bytes(buf)


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


class _Patterns:
    """A decoder's recent zero patterns, for :func:`cobs_decode` without the walk: for
    each encoded length, up to :attr:`PER_LENGTH` (mask of the code bytes, the code
    bytes, mask of the data bytes), newest first."""

    PER_LENGTH = 4
    LENGTHS = 16

    __slots__ = ("_by_len",)

    def __init__(self) -> None:
        self._by_len: dict[int, list[tuple[int, int, int]]] = {}

    def decode(self, encoded: bytes) -> bytes:
        """:func:`cobs_decode` of ``encoded`` (no zero byte in it, checked by the caller)."""
        size = len(encoded)
        known = self._by_len.get(size)
        if known is not None:
            value = int.from_bytes(encoded, "big")
            for k, (mask, codes, keep) in enumerate(known):
                if value & mask == codes:
                    if k:
                        known.insert(0, known.pop(k))
                    return (value & keep).to_bytes(size - 1, "big")
        body = cobs_decode(encoded)
        if size >= 2 and 0xFF not in encoded:
            self._learn(encoded, body)
        return body

    def _learn(self, encoded: bytes, body: bytes) -> None:
        size = len(encoded)
        mask = int.from_bytes((b"\x00" + body.translate(_PATTERN)).translate(_CODE_MASK), "big")
        entry = (mask, int.from_bytes(encoded, "big") & mask, ((1 << (8 * size)) - 1) ^ mask)
        known = self._by_len.get(size)
        if known is None:
            if len(self._by_len) >= self.LENGTHS:
                self._by_len.clear()
            known = self._by_len[size] = []
        known.insert(0, entry)
        del known[self.PER_LENGTH :]


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
    return _cobs(body + bytes((crc >> 8, crc & 0xFF)), True)


@dataclass(slots=True)
class DecoderStats:
    """What a :class:`FrameDecoder` counted: good frames, bytes that were part of no good
    frame, and dropped frames by cause."""

    frames: int = 0
    bytes_dropped: int = 0  # bytes that were part of no good frame
    crc_errors: int = 0
    cobs_errors: int = 0
    short_frames: int = 0
    oversize: int = 0
    length_errors: int = 0

    @property
    def bad_frames(self) -> int:
        """Frames dropped for any cause (CRC, COBS, too short, too long, wrong length field)."""
        return (
            self.crc_errors
            + self.cobs_errors
            + self.short_frames
            + self.oversize
            + self.length_errors
        )

    def as_dict(self) -> dict[str, int]:
        """Every counter by name."""
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

    __slots__ = ("_buf", "_overflow", "_patterns", "stats")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._overflow = False
        self._patterns = _Patterns()
        self.stats = DecoderStats()

    def reset(self) -> None:
        """Forget a partial frame (a new connection); the counters go on."""
        self._buf.clear()
        self._overflow = False

    def feed(self, data: bytes) -> list[Frame]:
        """Take ``data`` and return the good frames it completes, in order; bad ones are counted."""
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
        if 0 in encoded:  # a split part never holds one; a caller of _decode might
            stats.cobs_errors += 1
            stats.bytes_dropped += len(encoded) + 1
            return None
        try:
            body = self._patterns.decode(encoded)
        except WireError:
            stats.cobs_errors += 1
            stats.bytes_dropped += len(encoded) + 1
            return None
        if len(body) < HEADER_SIZE + CRC_SIZE:
            stats.short_frames += 1
            stats.bytes_dropped += len(encoded) + 1
            return None
        if binascii.crc_hqx(body, 0xFFFF):  # the CRC over data and its CRC is 0 when they agree
            stats.crc_errors += 1
            stats.bytes_dropped += len(encoded) + 1
            return None
        version, flags, msg_type, seq, length = HEADER.unpack_from(body)
        if length > MAX_PAYLOAD:
            # COBS overhead leaves room for a few more bytes than MAX_PAYLOAD: never more
            stats.oversize += 1
            stats.bytes_dropped += len(encoded) + 1
            return None
        if length != len(body) - HEADER_SIZE - CRC_SIZE:
            # a frame cut short by a corrupted delimiter can still end in a valid CRC (the
            # CRC has no final XOR): the length field catches it
            stats.length_errors += 1
            stats.bytes_dropped += len(encoded) + 1
            return None
        stats.frames += 1
        return Frame(version, flags, msg_type, seq, body[HEADER_SIZE:-2])


def _utf8_cut(text: str, size: int) -> bytes:
    """``text`` as UTF-8 in at most ``size`` bytes, never cut inside a character."""
    data = text.encode("utf-8")
    if len(data) <= size:
        return data
    cut = size
    while cut > 0 and (data[cut] & 0xC0) == 0x80:  # a continuation byte: back off
        cut -= 1
    return data[:cut]

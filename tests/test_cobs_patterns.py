"""COBS by zero pattern (``lllt.wire.framing``): the encoder's and the decoder's short cuts
for a zero pattern seen before give exactly the bytes of the byte-by-byte algorithm, for
data that shares patterns, for patterns that change, and for damaged input."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from lllt import wire as W
from lllt.wire import framing


def _reference_encode(data: bytes) -> bytes:
    """COBS byte by byte, as it is usually written: a code byte for each block up to a
    zero or of 254 bytes; data ending exactly after a full block gets no final code."""
    out = bytearray([0])
    at = 0  # where the open block's code byte goes
    code = 1
    after_run = False
    for b in data:
        after_run = False
        if b == 0:
            out[at] = code
            at, code = len(out), 1
            out.append(0)
        else:
            out.append(b)
            code += 1
            if code == 0xFF:
                out[at] = code
                at, code = len(out), 1
                out.append(0)
                after_run = True
    if after_run:
        out.pop()
    else:
        out[at] = code
    return bytes(out)


def _fill(pattern: list[bool], fill: bytes) -> bytes:
    """Data with zeros where ``pattern`` says and the nonzero bytes of ``fill`` elsewhere."""
    nz = [b for b in fill if b] or [1]
    return bytes(0 if z else nz[i % len(nz)] for i, z in enumerate(pattern))


patterns = st.lists(st.booleans(), min_size=1, max_size=300)
fills = st.lists(st.binary(min_size=1, max_size=300), min_size=2, max_size=6)


@given(patterns, fills)
@settings(max_examples=300)
def test_a_known_pattern_encodes_as_the_algorithm_does(
    pattern: list[bool], fills: list[bytes]
) -> None:
    for fill in fills:  # the first learns the pattern, the rest use it
        data = _fill(pattern, fill)
        enc = W.cobs_encode(data)
        assert enc == _reference_encode(data)
        assert W.encode_frame(0x60, 1, data) == (_reference_encode(_frame_body(data)) + b"\x00")


def _frame_body(payload: bytes) -> bytes:
    body = W.HEADER.pack(W.PROTOCOL_MAJOR, 0, 0x60, 1, len(payload)) + payload
    crc = W.crc16(body)
    return body + bytes((crc >> 8, crc & 0xFF))


def _decode_or_error(fn: object, data: bytes) -> bytes | str:
    try:
        return fn(data)  # type: ignore[operator, no-any-return]
    except W.WireError:
        return "error"


@given(
    st.lists(patterns, min_size=1, max_size=4),
    fills,
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(1, 255)), max_size=12),
)
@settings(max_examples=400)
def test_a_known_pattern_decodes_as_the_walk_does_even_when_damaged(
    pats: list[list[bool]], fills: list[bytes], damage: list[tuple[int, int]]
) -> None:
    """Frames of a few patterns, whole and with bytes changed (a changed code byte must
    not pass for the pattern's): every result, or the error, is the walk's."""
    decoder = framing._Patterns()
    encoded = [W.cobs_encode(_fill(p, f)) for p in pats for f in fills]
    for enc in encoded:
        assert decoder.decode(enc) == W.cobs_decode(enc)
    for k, (where, flip) in enumerate(damage):
        enc = bytearray(encoded[k % len(encoded)])
        enc[where % len(enc)] ^= flip
        if 0 in enc:
            continue  # a zero ends the frame before the decoder sees it
        bad = bytes(enc)
        assert _decode_or_error(decoder.decode, bad) == _decode_or_error(W.cobs_decode, bad)


def test_a_pattern_is_learned_and_used() -> None:
    """The short cut is taken: after one frame of a pattern the next is decoded without
    the walk, and a changed code byte is not taken for the pattern."""
    decoder = framing._Patterns()
    first = W.cobs_encode(bytes([5, 0, 0, 7, 0, 9]))
    second = W.cobs_encode(bytes([6, 0, 0, 8, 0, 3]))
    decoder.decode(first)
    walked = []
    original = framing.cobs_decode
    framing.cobs_decode = lambda d: walked.append(d) or original(d)  # type: ignore[assignment]
    try:
        assert decoder.decode(second) == bytes([6, 0, 0, 8, 0, 3])
        assert walked == []
        other = W.cobs_encode(bytes([6, 0, 4, 8, 0, 3]))  # same length, another pattern
        assert len(other) == len(second)
        assert decoder.decode(other) == bytes([6, 0, 4, 8, 0, 3])
        assert walked == [other]
    finally:
        framing.cobs_decode = original  # type: ignore[assignment]


def test_the_encoder_keeps_a_bounded_number_of_patterns() -> None:
    for i in range(framing._MAX_PATTERNS * 2):
        W.cobs_encode(bytes(1 if (i >> b) & 1 else 0 for b in range(12)) + b"\x01")
        assert len(framing._ENCODINGS) <= framing._MAX_PATTERNS

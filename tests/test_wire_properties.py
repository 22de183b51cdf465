"""Property tests of the frame codec: round trips, garbage, corruption, resynchronisation."""

from __future__ import annotations

import contextlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lllt import wire

W = wire

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
i32 = st.integers(-(2**31), 2**31 - 1)
# values on the wire's fixed-point grids, so that a round trip is exact
irr = st.integers(0, 0xFFFF).map(lambda v: v / 100)
flu = st.integers(0, 0xFFFFFFFF).map(lambda v: v / 1e6)
temp = st.one_of(st.none(), st.integers(-32767, 32767).map(lambda v: v / 100))
text = st.text(max_size=20).filter(lambda s: len(s.encode()) <= 64)


@st.composite
def telemetry(draw: st.DrawFn, cls: type = W.Telemetry) -> W.Telemetry:
    n = draw(st.integers(0, W.MAX_CHANNELS))
    nz = draw(st.integers(0, W.MAX_ZONES))
    return cls(
        time_ms=draw(u32),
        boot_count=draw(u16),
        state=draw(st.sampled_from(W.State)),
        step=draw(u8),
        plan_id=draw(u32),
        flags=W.TelemetryFlag(draw(u16)),
        derate_permille=draw(u16),
        supply_mv=draw(u16),
        elapsed_ms=draw(u32),
        step_elapsed_ms=draw(u32),
        setpoint=tuple(draw(irr) for _ in range(n)),
        irradiance=tuple(draw(irr) for _ in range(n)),
        fluence=tuple(draw(flu) for _ in range(n)),
        temperature=tuple(draw(temp) for _ in range(nz)),
        ambient=draw(temp),
    )


setpoint = st.builds(W.ChannelSetpoint, u8, irr, flu)
step = st.builds(
    W.PlanStep,
    st.sampled_from(W.StepKind),
    u32,
    u32,
    u32.map(lambda v: v / 1000),
    st.integers(0, 0xFFFF).map(lambda v: v / 100),
    st.lists(setpoint, max_size=8).map(tuple),
)
record = st.builds(
    W.SessionRecord,
    u32,
    u16,
    u32,
    u32,
    st.sampled_from(W.Outcome),
    u8,
    u32,
    st.lists(flu, max_size=W.MAX_CHANNELS).map(tuple),
)
f32 = st.floats(width=32, allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6)
zone = st.builds(W.ZoneInfo, u8, text, f32, f32, f32, f32, f32, f32, f32)
channel = st.builds(
    W.ChannelInfo,
    u8,
    u8,
    u16,
    irr,
    st.integers(-32768, 32767).map(lambda v: v / 1000),
    st.sampled_from(["led", "laser"]),
    u16,
    st.integers(0, 0xFFFF).map(lambda v: v / 100),
    f32,
    f32,
)
limits = st.builds(
    W.DeviceLimits,
    irr,
    u32.map(lambda v: v / 1000),
    flu,
    st.integers(-32767, 32767).map(lambda v: v / 100),
    st.integers(-32767, 32767).map(lambda v: v / 100),
    u32.map(lambda v: v / 1000),
    u32,
    u16,
    u32.map(lambda v: v / 1000),
    u32.map(lambda v: v / 1000),
)
hello_info = st.builds(
    W.HelloInfo,
    u8,
    u8,
    st.tuples(u8, u8, u8),
    st.builds(W.Capability, u16),
    u32.map(lambda v: v / 1000),
    u16,
    u32,
    st.binary(min_size=16, max_size=16),
    u16,
    limits,
    text,
    text,
    st.lists(zone, max_size=4).map(tuple),
    st.lists(channel, max_size=8).map(tuple),
)

messages = st.one_of(
    st.builds(W.Hello, u8, u8),
    hello_info,
    st.builds(
        W.UploadPlan, u32, st.sampled_from(W.LinkPolicy), u32, st.lists(step, max_size=4).map(tuple)
    ),
    st.builds(W.Start, u32),
    st.just(W.Pause()),
    st.just(W.Resume()),
    st.just(W.Heartbeat()),
    st.just(W.GetStatus()),
    st.just(W.ClearFault()),
    st.just(W.Ack()),
    st.builds(W.Abort, st.sampled_from(W.AbortReason)),
    st.builds(W.SetTelemetry, u16),
    st.builds(W.Derate, u16),
    st.builds(W.GetRecords, u8),
    st.builds(W.Nack, st.sampled_from(W.NackCode), u8, i32, i32, text),
    st.builds(W.Started, u32, st.sampled_from(W.StartResult), u32),
    telemetry(),
    telemetry(W.Status),
    st.builds(W.Records, st.lists(record, max_size=4).map(tuple)),
    st.builds(W.Event, u32, st.sampled_from(W.EventKind), u8, u8, i32, i32),
)


def _f32_equal(a: float, b: float) -> bool:
    import struct

    return struct.pack("<f", a) == struct.pack("<f", b)


@given(messages, u16)
@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=300)
def test_every_message_round_trips(msg: W.Message, seq: int) -> None:
    frame_bytes = W.encode_message(msg, seq)
    assert frame_bytes.count(0) == 1 and frame_bytes.endswith(b"\x00")
    frames = W.FrameDecoder().feed(frame_bytes)
    assert len(frames) == 1 and frames[0].seq == seq and frames[0].type == msg.TYPE
    back = W.decode_message(frames[0])
    if isinstance(msg, W.HelloInfo):
        # float32 thermal constants come back as the shortest decimal of the same float32
        assert W.encode_message(back, seq) == frame_bytes
    else:
        assert back == msg


@given(st.binary(max_size=600))
def test_cobs_round_trip_and_no_zero(data: bytes) -> None:
    enc = W.cobs_encode(data)
    assert 0 not in enc
    assert W.cobs_decode(enc) == data
    assert len(enc) <= len(data) + len(data) // 254 + 1


def _reference_frames(data: bytes) -> list[tuple[int, int, bytes]]:
    """Independent reading of a whole stream: every delimited part with a good CRC."""
    out = []
    for part in data.split(b"\x00")[:-1]:
        try:
            body = W.cobs_decode(part)
        except W.WireError:
            continue
        if len(part) > W.MAX_ENCODED or len(body) < 9:
            continue
        length = int.from_bytes(body[5:7], "little")
        if W.crc16(body[:-2]) == int.from_bytes(body[-2:], "big") and length == len(body) - 9:
            out.append((body[2], int.from_bytes(body[3:5], "little"), body[7:-2]))
    return out


@given(
    st.lists(
        st.one_of(st.binary(max_size=200), messages.map(lambda m: W.encode_message(m, 9))),
        max_size=8,
    ).map(b"".join),
    st.lists(st.integers(1, 64), min_size=1, max_size=50),
)
@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=300)
def test_decoder_never_raises_and_yields_only_good_crc_frames(data: bytes, cuts: list[int]) -> None:
    decoder = W.FrameDecoder()
    frames: list[W.Frame] = []
    pos = 0
    i = 0
    while pos < len(data):
        n = cuts[i % len(cuts)]
        frames += decoder.feed(data[pos : pos + n])
        pos += n
        i += 1
    # whatever the chunking, exactly the frames whose CRC is right come out
    assert [(f.type, f.seq, f.payload) for f in frames] == _reference_frames(data)
    for frame in frames:
        # payload parsing may refuse a frame, but only with WireError
        with contextlib.suppress(W.WireError):
            W.decode_message(frame)


@given(
    messages,
    st.binary(max_size=300),
    st.binary(max_size=300),
    st.lists(st.integers(1, 97), min_size=1, max_size=10),
)
@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=200)
def test_valid_frame_embedded_in_garbage_is_recovered(
    msg: W.Message, before: bytes, after: bytes, cuts: list[int]
) -> None:
    good = W.encode_message(msg, 1234)
    # a delimiter before the frame ends whatever partial garbage the receiver holds
    stream = before + b"\x00" + good + after
    decoder = W.FrameDecoder()
    frames = []
    pos = 0
    i = 0
    while pos < len(stream):
        n = cuts[i % len(cuts)]
        frames += decoder.feed(stream[pos : pos + n])
        pos += n
        i += 1
    assert any(f.seq == 1234 and f.type == msg.TYPE and f.payload == msg.payload() for f in frames)


@given(messages, st.integers(0, 10_000), st.integers(1, 255))
@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=300)
def test_corrupted_frame_is_never_yielded_with_changed_content(
    msg: W.Message, where: int, flip: int
) -> None:
    good = bytearray(W.encode_message(msg, 77))
    pos = where % (len(good) - 1)  # never touch the delimiter itself
    good[pos] ^= flip
    for frame in W.FrameDecoder().feed(bytes(good)):
        # CRC-16 catches every error burst of 16 bits or less: nothing altered gets through
        assert frame.payload == msg.payload() and frame.seq == 77


def test_decoder_counts_garbage() -> None:
    decoder = W.FrameDecoder()
    assert decoder.feed(b"hello\x00world\x00\x00") == []
    assert decoder.stats.bad_frames == 2
    assert decoder.stats.bytes_dropped == len(b"hello\x00world\x00")
    assert decoder.stats.frames == 0


def test_oversize_input_is_dropped_until_the_next_delimiter() -> None:
    decoder = W.FrameDecoder()
    junk = b"\x01" * (W.MAX_ENCODED + 100)
    assert decoder.feed(junk[:3000]) == []
    assert decoder.feed(junk[3000:]) == []
    good = W.encode_message(W.Heartbeat(), 5)
    frames = decoder.feed(b"\x00" + good)
    assert [f.seq for f in frames] == [5]
    assert decoder.stats.oversize == 1


def test_auth_tag_covers_header_and_payload() -> None:
    key, nonce = W.DEVELOPMENT_KEY, bytes(16)
    frame = W.FrameDecoder().feed(W.encode_message(W.Start(9), 3, auth=W.AuthState(key, nonce)))[0]
    assert W.verify_auth(key, nonce, frame) == (W.Start(9).payload(), 1)
    tampered = W.Frame(frame.version, frame.flags, frame.type, frame.seq + 1, frame.payload)
    assert W.verify_auth(key, nonce, tampered) is None
    assert W.verify_auth(key, bytes([1]) * 16, frame) is None

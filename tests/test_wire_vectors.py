"""The codec against the frozen golden frames of tests/vectors/wire-v1.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lllt import wire

VECTORS = json.loads(Path(__file__).with_name("vectors").joinpath("wire-v1.json").read_text())
KEY = bytes.fromhex(VECTORS["auth"]["key_hex"])
NONCE = bytes.fromhex(VECTORS["auth"]["nonce_hex"])


def _message(vector: dict) -> wire.Message:
    cls = wire.MESSAGE_TYPES[wire.MsgType[vector["type"]]]
    return wire.from_dict(cls, vector["fields"])


@pytest.mark.parametrize("vector", VECTORS["valid"], ids=lambda v: v["name"])
def test_golden_frame_decodes_to_its_message(vector: dict) -> None:
    frames = wire.FrameDecoder().feed(bytes.fromhex(vector["hex"]))
    assert len(frames) == 1
    frame = frames[0]
    assert frame.type == wire.MsgType[vector["type"]]
    assert frame.seq == vector["seq"]
    assert bool(frame.flags & wire.FLAG_AUTH) == vector["signed"]
    assert wire.decode_message(frame) == _message(vector)
    if vector["signed"]:
        verified = wire.verify_auth(KEY, NONCE, frame)
        assert verified is not None and verified[1] == 1
        assert wire.verify_auth(b"\x00" * 32, NONCE, frame) is None


@pytest.mark.parametrize("vector", VECTORS["valid"], ids=lambda v: v["name"])
def test_message_encodes_to_its_golden_frame(vector: dict) -> None:
    auth = wire.AuthState(KEY, NONCE) if vector["signed"] else None
    assert wire.encode_message(_message(vector), vector["seq"], auth=auth).hex() == vector["hex"]


def test_every_message_type_has_a_golden_frame() -> None:
    covered = {v["type"] for v in VECTORS["valid"]}
    assert covered == {t.name for t in wire.MsgType}


@pytest.mark.parametrize("vector", VECTORS["malformed"], ids=lambda v: v["name"])
def test_malformed_golden_frame_is_dropped_and_counted(vector: dict) -> None:
    decoder = wire.FrameDecoder()
    frames = decoder.feed(bytes.fromhex(vector["hex"]))
    stats = decoder.stats
    if vector["error"] == "payload":
        # good CRC, so the frame decodes, but its payload is refused by the parser
        assert len(frames) == 1
        with pytest.raises(wire.WireError):
            wire.decode_message(frames[0])
        return
    assert frames == []
    counter = {
        "crc": stats.crc_errors,
        "short": stats.short_frames,
        "cobs": stats.cobs_errors,
        "oversize": stats.oversize,
        "length": stats.length_errors,
    }[vector["error"]]
    assert counter == 1
    assert stats.bytes_dropped > 0


def test_resync_vector_recovers_the_good_frame() -> None:
    decoder = wire.FrameDecoder()
    frames = decoder.feed(bytes.fromhex(VECTORS["resync"]["hex"]))
    assert len(frames) == VECTORS["resync"]["frames"]
    assert wire.decode_message(frames[0]) == wire.Start(42)
    assert decoder.stats.bad_frames >= 1  # the garbage runs into the bad frame


def test_crc_check_value() -> None:
    # the catalogue check value of CRC-16/CCITT-FALSE
    assert wire.crc16(b"123456789") == 0x29B1


# --- wire 1.1 ----------------------------------------------------------------------------


_NACK_CODECS = [v for v in VECTORS["codec_1_1"] if v["type"] == "NACK"]


@pytest.mark.parametrize("vector", _NACK_CODECS, ids=lambda v: v["name"])
def test_nack_detail_is_cut_on_a_character_boundary(vector: dict) -> None:
    msg = _message(vector)
    frame = wire.encode_message(msg, vector["seq"])
    assert frame.hex() == vector["hex"]
    (decoded,) = wire.FrameDecoder().feed(frame)
    detail = decoded.payload[10:]  # after code, channel, limit, observed
    assert len(detail) == vector["detail_bytes"] <= 64
    assert detail.decode("utf-8") == vector["detail_sent"]  # strict: no split character
    assert vector["fields"]["detail"].startswith(vector["detail_sent"])


def _frames(data: bytes) -> list[str]:
    return [(f + b"\x00").hex() for f in data.split(b"\x00")[:-1] if f]


@pytest.mark.parametrize("exchange", VECTORS["exchanges_1_1"], ids=lambda v: v["name"])
def test_simulator_answers_exchange_byte_for_byte(exchange: dict) -> None:
    from lllt_sim.device import SimDevice

    spec = exchange["device"]
    dev = SimDevice(spec["profile"], seed=spec["seed"])  # fed outside a loop: clock at 0
    sent: list[bytes] = []
    dev.attach(sent.append)
    for step in exchange["steps"]:
        sent.clear()
        dev.feed(bytes.fromhex(step["send"]))
        assert _frames(b"".join(sent)) == step["expect"], step["note"]
        types = [
            [wire.MsgType(f.type).name, f.seq]
            for f in wire.FrameDecoder().feed(bytes.fromhex("".join(step["expect"])))
        ]
        assert types == step["expect_types"]
    assert dev.stats["internal_errors"] == 0
    assert dev.hello_info().nonce.hex() == exchange["nonce_hex"]


def _last_replies(exchange: dict) -> list[wire.Message]:
    step = exchange["steps"][-1]
    data = bytes.fromhex("".join(step["expect"]))
    return [wire.decode_message(f) for f in wire.FrameDecoder().feed(data)]


_EXCHANGES = {v["name"]: v for v in VECTORS["exchanges_1_1"]}


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("abort_empty_payload", 0),
        ("abort_two_byte_payload", 1),
        ("abort_trailer_only", 0),
    ],
)
def test_abort_vectors_say_ack_stop_then_status(name: str, reason: int) -> None:
    """What the frozen bytes mean: ACK, the session ends ABORTED, then STATUS, same seq."""
    replies = _last_replies(_EXCHANGES[name])
    seq = _EXCHANGES[name]["steps"][-1]["expect_types"]
    assert isinstance(replies[0], wire.Ack) and seq[0] == ["ACK", 4]
    end = [m for m in replies if isinstance(m, wire.Event) and m.kind == wire.EventKind.SESSION_END]
    assert len(end) == 1 and end[0].a == wire.Outcome.ABORTED and end[0].b == reason
    status = replies[-1]
    assert isinstance(status, wire.Status) and seq[-1] == ["STATUS", 4]
    assert status.state == wire.State.IDLE
    assert not status.flags & wire.TelemetryFlag.EMITTING


def test_policy_and_kind_vectors_are_bad_value() -> None:
    for name in ("plan_policy_2", "plan_kind_2"):
        (nack,) = _last_replies(_EXCHANGES[name])
        assert isinstance(nack, wire.Nack) and nack.code == wire.NackCode.BAD_VALUE
        assert nack.observed == 2


def test_signed_hello_vector_is_refused_without_reset() -> None:
    steps = _EXCHANGES["hello_signed_refused"]["steps"]
    replies = [
        [
            wire.decode_message(f)
            for f in wire.FrameDecoder().feed(bytes.fromhex("".join(s["expect"])))
        ]
        for s in steps
    ]
    assert replies[2] == [wire.Nack(wire.NackCode.AUTH_FAILED, 0xFF, 0, 0, "HELLO is never signed")]
    assert isinstance(replies[3][0], wire.Ack)  # old nonce, counter 2: accepted
    assert replies[4][0].code == wire.NackCode.AUTH_FAILED  # counter 1 again: refused


def test_duplicate_memory_and_counter_vectors() -> None:
    (again,) = _last_replies({"steps": _EXCHANGES["retry_hits_duplicate_memory"]["steps"][:-1]})
    (anew,) = _last_replies(_EXCHANGES["retry_hits_duplicate_memory"])
    assert isinstance(again, wire.Started) and again.result == wire.StartResult.STARTED
    assert isinstance(anew, wire.Started) and anew.result == wire.StartResult.ALREADY_RUNNING
    steps = _EXCHANGES["nacked_signed_request_uses_its_counter"]["steps"]
    (replay,) = _last_replies({"steps": steps[:-1]})
    assert isinstance(replay, wire.Nack) and replay.code == wire.NackCode.AUTH_FAILED
    assert (replay.limit, replay.observed) == (1, 1)


def test_event_dash_fields_are_no_index_and_zero() -> None:
    (vector,) = [v for v in VECTORS["codec_1_1"] if v["type"] == "EVENT"]
    msg = _message(vector)
    assert wire.encode_message(msg, vector["seq"]).hex() == vector["hex"]
    (frame,) = wire.FrameDecoder().feed(bytes.fromhex(vector["hex"]))
    # time u32, kind u8, a u8, b u8, value i32, limit i32
    assert frame.payload[4:7] == bytes([wire.EventKind.HEAD, 0, 0xFF])
    assert frame.payload[7:] == bytes(8)


def test_abort_of_another_major_stops_nothing() -> None:
    steps = _EXCHANGES["abort_other_major"]["steps"]
    (nack,) = _last_replies({"steps": steps[:-1]})
    assert isinstance(nack, wire.Nack) and nack.code == wire.NackCode.VERSION
    assert (nack.limit, nack.observed) == (1, 2)
    (status,) = _last_replies(_EXCHANGES["abort_other_major"])
    assert isinstance(status, wire.Status) and status.state == wire.State.RUNNING


def test_identical_abort_retry_gets_the_remembered_ack_only() -> None:
    first = _last_replies({"steps": _EXCHANGES["abort_retry_gets_only_the_ack"]["steps"][:-1]})
    assert isinstance(first[0], wire.Ack) and isinstance(first[-1], wire.Status)
    assert _last_replies(_EXCHANGES["abort_retry_gets_only_the_ack"]) == [wire.Ack()]

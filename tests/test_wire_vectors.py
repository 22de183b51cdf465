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

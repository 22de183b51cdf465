"""Write tests/vectors/wire-v1.json: golden frames of wire protocol v1.

Run once when the protocol gains a message (``python tests/vectors/make_wire_vectors.py``);
the file is then frozen: ``tests/test_wire_vectors.py`` checks that the codec still
produces and parses exactly these bytes, and the firmware's C tests read the same file.
Never regenerate it to make a failing test pass: a changed byte is a protocol change.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from lllt import wire
from lllt_sim.profiles import load_profile

W = wire
ch = W.ChannelSetpoint


def messages() -> list[tuple[str, int, W.Message, bool]]:
    """(name, seq, message, authenticated)"""
    # the 1.0 vectors stay frozen as they were: HELLO and HELLO_INFO say minor 0
    hello_info = dataclasses.replace(
        load_profile("laser-cap-678").hello_info(
            nonce=bytes(range(16)), boot_count=3, uptime_ms=123456, clock_rate=1.0
        ),
        minor=0,
    )
    plan = W.UploadPlan(
        plan_id=0x01020304,
        policy=W.LinkPolicy.FINISH,
        lease_ms=3000,
        steps=(
            W.PlanStep(
                W.StepKind.DURATION, 1_500_000, 10_000, 0.0, 100.0, (ch(0, 3.0), ch(2, 3.0))
            ),
            W.PlanStep(
                W.StepKind.FLUENCE, 900_000, 0, 10.0, 50.0, (ch(1, 5.0, 2.0), ch(3, 5.0, 2.0))
            ),
        ),
    )
    tel = W.Telemetry(
        time_ms=61_000,
        boot_count=3,
        state=W.State.RUNNING,
        step=0,
        plan_id=0x01020304,
        flags=W.TelemetryFlag.HEAD_PRESENT
        | W.TelemetryFlag.LEASE_ACTIVE
        | W.TelemetryFlag.EMITTING,
        derate_permille=1000,
        supply_mv=5000,
        elapsed_ms=60_000,
        step_elapsed_ms=60_000,
        setpoint=(3.0, 0.0, 3.0, 0.0),
        irradiance=(2.99, 0.0, 3.01, 0.0),
        fluence=(0.17985, 0.0, 0.180015, 0.0),
        temperature=(35.12, 34.98, None, 35.5),
        ambient=25.0,
    )
    status = W.Status(
        **{f: getattr(tel, f) for f in W.Telemetry.__dataclass_fields__ if f != "TYPE"}
    )
    return [
        ("hello", 1, W.Hello(1, 0), False),
        ("hello_info", 1, hello_info, False),
        ("upload_plan_signed", 2, plan, True),
        ("upload_plan_unsigned", 2, plan, False),
        ("start", 3, W.Start(0x01020304), True),
        ("pause", 4, W.Pause(), False),
        ("resume", 5, W.Resume(), True),
        ("abort", 6, W.Abort(W.AbortReason.USER), False),
        ("heartbeat", 0xFFFF, W.Heartbeat(), False),
        ("set_telemetry", 8, W.SetTelemetry(10), False),
        ("derate", 9, W.Derate(800), False),
        ("get_status", 10, W.GetStatus(), False),
        ("get_records", 11, W.GetRecords(16), False),
        ("clear_fault", 12, W.ClearFault(), False),
        ("ack", 4, W.Ack(), False),
        ("nack", 2, W.Nack(W.NackCode.LIMIT_IRRADIANCE, 3, 187, 250, "ch 3 max 1.87"), False),
        ("started", 3, W.Started(0x01020304, W.StartResult.STARTED, 1234), False),
        ("status", 10, status, False),
        (
            "records",
            11,
            W.Records(
                (
                    W.SessionRecord(
                        0x01020304,
                        3,
                        1234,
                        0,
                        W.Outcome.RUNNING,
                        0,
                        60_000,
                        (0.17985, 0.0, 0.180015, 0.0),
                    ),
                    W.SessionRecord(
                        77,
                        2,
                        500,
                        1_500_500,
                        W.Outcome.INTERLOCK,
                        int(W.Interlock.THERMAL_CUTOFF),
                        1_500_000,
                        (4.5, 0.0, 4.5, 0.0),
                    ),
                )
            ),
            False,
        ),
        ("telemetry", 100, tel, False),
        # key provisioning and record access (a device without them: NACK UNKNOWN_TYPE)
        ("provision_key", 13, W.ProvisionKey(bytes(range(32))), False),
        ("record_access_report", 14, W.RecordAccess(W.RecordOp.REPORT, 41), False),
        ("record_count", 15, W.RecordCount(5), False),
        (
            "record",
            103,
            W.Record(
                42,
                W.SessionRecord(77, 2, 500, 60_500, W.Outcome.COMPLETED, 0, 60_000, (0.18, 0.0)),
            ),
            False,
        ),
        ("records_end", 104, W.RecordsEnd(W.RecordsEndStatus.DONE, 2, 42), False),
        (
            "event_interlock",
            101,
            W.Event(300_010, W.EventKind.INTERLOCK, int(W.Interlock.THERMAL_CUTOFF), 2, 4251, 4250),
            False,
        ),
        (
            "event_session_end",
            102,
            W.Event(
                300_010,
                W.EventKind.SESSION_END,
                int(W.Outcome.INTERLOCK),
                int(W.Interlock.THERMAL_CUTOFF),
                300_000,
                0x01020304,
            ),
            False,
        ),
    ]


def main() -> None:
    out: dict[str, object] = {
        "protocol": f"{W.PROTOCOL_MAJOR}.{W.PROTOCOL_MINOR}",
        "auth": {
            "key_hex": W.DEVELOPMENT_KEY.hex(),
            "nonce_hex": bytes(range(16)).hex(),
            "note": "signed vectors use this key and nonce; counters start at 1 per vector",
        },
        "valid": [],
        "malformed": [],
    }
    valid = out["valid"]
    assert isinstance(valid, list)
    for name, seq, msg, signed in messages():
        auth = W.AuthState(W.DEVELOPMENT_KEY, bytes(range(16))) if signed else None
        frame = W.encode_message(msg, seq, auth=auth)
        valid.append(
            {
                "name": name,
                "hex": frame.hex(),
                "type": msg.TYPE.name,
                "seq": seq,
                "signed": signed,
                "fields": W.to_dict(msg),
            }
        )
    good = W.encode_message(W.Start(42), 7)
    body = W.cobs_decode(good[:-1])
    bad_crc = W.cobs_encode(body[:-1] + bytes([body[-1] ^ 0x01])) + b"\x00"
    short = W.cobs_encode(b"\x01\x00\x11") + b"\x00"
    # a frame whose CRC happens to end in 0x00, cut short by a corrupted last code byte:
    # the shorter frame's CRC is right (CRC-16/CCITT-FALSE has no final XOR); only the
    # length field shows the truncation
    seq = next(
        s
        for s in range(1, 60000)
        if W.crc16(W.HEADER.pack(1, 0, W.MsgType.SET_TELEMETRY, s, 2) + b"\xde\x02") & 0xFF == 0
    )
    whole = W.encode_frame(W.MsgType.SET_TELEMETRY, seq, b"\xde\x02")
    truncated = whole[:-2] + b"\x00"
    bad_cobs = bytes([0x05, 0x01, 0x02]) + b"\x00"  # block claims 4 bytes, has 2
    bad_len = W.encode_frame(W.MsgType.START, 7, b"\x01\x02\x03")  # START needs 4 bytes
    unknown = W.encode_frame(0x3E, 7, b"")
    oversize = W.cobs_encode(bytes([1]) * (W.MAX_ENCODED + 10)) + b"\x00"
    malformed = out["malformed"]
    assert isinstance(malformed, list)
    for name, data, error in [
        ("crc_flipped_bit", bad_crc, "crc"),
        ("too_short", short, "short"),
        ("truncated_with_valid_crc", truncated, "length"),
        ("cobs_overrun", bad_cobs, "cobs"),
        ("oversize", oversize, "oversize"),
        ("start_payload_3_bytes", bad_len, "payload"),
        ("unknown_type_0x3e", unknown, "payload"),
    ]:
        malformed.append({"name": name, "hex": data.hex(), "error": error})
    out["resync"] = {
        "note": "garbage, a bad frame, then a good START(42) seq 7: exactly one frame decodes",
        "hex": (b"\x13\x37garbage" + bad_crc + good).hex(),
        "frames": 1,
    }
    out["malformed"] += malformed_1_1()  # type: ignore[operator]
    out["codec_1_1"] = codec_1_1()
    out["exchanges_1_1"] = exchanges_1_1()
    path = Path(__file__).with_name("wire-v1.json")
    path.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {path}")


# --- wire 1.1 ---------------------------------------------------------------------------

#: the simulated device every 1.1 exchange runs against (fed outside an event loop, so its
#: clock stands at 0 and every byte it sends is reproducible)
EXCHANGE_DEVICE = {"profile": "reference-cap", "seed": 7}


def malformed_1_1() -> list[dict[str, object]]:
    """Frames with a good CRC and a matching length field whose payload is over 4096 bytes.

    Zero payload bytes keep the COBS encoding short (a zero costs no overhead byte), so
    only the decoder's payload limit can refuse these, not its encoded-size limit.
    """
    out = []
    for n in (W.MAX_PAYLOAD + 1, W.MAX_PAYLOAD + 16):
        body = W.HEADER.pack(1, 0, W.MsgType.UPLOAD_PLAN, 7, n) + bytes(n)
        body += W.crc16(body).to_bytes(2, "big")
        data = W.cobs_encode(body) + b"\x00"
        assert len(data) - 1 <= W.MAX_ENCODED
        out.append({"name": f"payload_{n}_bytes", "hex": data.hex(), "error": "oversize"})
    return out


def codec_1_1() -> list[dict[str, object]]:
    """Encodings whose bytes differ from a naive codec: the NACK detail is cut on a
    UTF-8 character boundary (64 bytes at most)."""
    out = []
    for name, detail in [
        ("nack_detail_cut_in_3_byte_char", "\u20ac" * 30),  # 90 bytes -> 21 chars, 63 bytes
        ("nack_detail_cut_in_4_byte_char", "ab" + "\U0001f525" * 20),  # -> 66 bytes -> 62
        ("nack_detail_2_byte_chars_fit", "\u00e9" * 40),  # 80 bytes -> 32 chars, 64 bytes
    ]:
        msg = W.Nack(W.NackCode.BAD_VALUE, W.NO_INDEX, 0, 0, detail)
        frame = W.encode_message(msg, 9)
        sent = W.decode_message(W.FrameDecoder().feed(frame)[0])
        assert isinstance(sent, W.Nack)
        out.append(
            {
                "name": name,
                "type": "NACK",
                "seq": 9,
                "fields": W.to_dict(msg),
                "hex": frame.hex(),
                "detail_sent": sent.detail,
                "detail_bytes": len(sent.detail.encode("utf-8")),
            }
        )
    # EVENT fields the spec marks "-": b is 0xFF (no index), a, value and limit are 0
    # (here HEAD, removed: only ``a`` carries data)
    event = W.Event(5000, W.EventKind.HEAD, 0, W.NO_INDEX, 0, 0)
    out.append(
        {
            "name": "event_head_removed_dashes",
            "type": "EVENT",
            "seq": 12,
            "fields": W.to_dict(event),
            "hex": W.encode_message(event, 12).hex(),
        }
    )
    return out


def _signed(
    msg_type: int, seq: int, payload: bytes, nonce: bytes, counter: int, tag: bytes | None = None
) -> bytes:
    """A signed request with an explicit counter (``tag`` overrides the right one)."""
    n = len(payload) + W.AUTH_TRAILER.size
    head = W.HEADER.pack(1, W.FLAG_AUTH, msg_type, seq, n)
    if tag is None:
        tag = W.auth_tag(W.DEVELOPMENT_KEY, nonce, counter, head, payload)
    trailer = W.AUTH_TRAILER.pack(counter, tag)
    return W.encode_frame(msg_type, seq, payload + trailer, flags=W.FLAG_AUTH)


def _body(version: int, msg_type: int, seq: int, payload: bytes) -> bytes:
    """header | payload | crc with an arbitrary version byte (before COBS)."""
    body = W.HEADER.pack(version, 0, msg_type, seq, len(payload)) + payload
    return body + W.crc16(body).to_bytes(2, "big")


def _plan_payload() -> bytes:
    return W.UploadPlan(
        1,
        W.LinkPolicy.FINISH,
        600_000,
        (W.PlanStep(W.StepKind.DURATION, 60_000, 0, 0.0, 100.0, (ch(0, 1.0),)),),
    ).payload()


def _run(steps: list[tuple[str, bytes]]) -> tuple[str, list[dict[str, object]]]:
    from lllt_sim.device import SimDevice

    dev = SimDevice(EXCHANGE_DEVICE["profile"], seed=int(EXCHANGE_DEVICE["seed"]))
    sent: list[bytes] = []
    dev.attach(sent.append)
    out = []
    for note, data in steps:
        sent.clear()
        dev.feed(data)
        raw = b"".join(sent)
        frames = [f + b"\x00" for f in raw.split(b"\x00")[:-1] if f]
        decoded = [W.FrameDecoder().feed(f)[0] for f in frames]
        out.append(
            {
                "note": note,
                "send": data.hex(),
                "expect": [f.hex() for f in frames],
                "expect_types": [[W.MsgType(d.type).name, d.seq] for d in decoded],
            }
        )
    assert dev.stats["internal_errors"] == 0
    return dev.hello_info().nonce.hex(), out


def exchanges_1_1() -> list[dict[str, object]]:
    """Request bytes -> the exact frames a fresh simulated device sends back.

    Every exchange starts with HELLO (seq 1); signed requests use the development key and
    the nonce of that HELLO_INFO (``nonce_hex``), with the counters written in each note.
    ``expect`` is byte-exact for the simulator; a firmware test checks ``expect_types``
    (type and seq of each frame) and the bytes of every ACK/NACK/STARTED.
    """
    from lllt_sim.device import SimDevice

    probe = SimDevice(EXCHANGE_DEVICE["profile"], seed=int(EXCHANGE_DEVICE["seed"]))
    probe.attach(lambda b: None)
    probe.feed(W.encode_message(W.Hello(), 1))
    nonce = probe.hello_info().nonce
    M = W.MsgType
    hello = ("HELLO seq 1", b"\x00" + W.encode_message(W.Hello(), 1))
    plan = _plan_payload()
    upload = ("UPLOAD_PLAN seq 2 counter 1", _signed(M.UPLOAD_PLAN, 2, plan, nonce, 1))
    start = ("START(1) seq 3 counter 2", _signed(M.START, 3, W.Start(1).payload(), nonce, 2))
    session = [hello, upload, start]
    trailer_only = W.encode_frame(M.ABORT, 4, W.AUTH_TRAILER.pack(3, bytes(16)), flags=W.FLAG_AUTH)
    bad_policy = bytearray(plan)
    bad_policy[4] = 2  # policy u8 after plan_id u32
    bad_kind = bytearray(plan)
    bad_kind[10] = 2  # first step's kind u8 after plan_id, policy, lease_ms, n_steps
    specs: list[tuple[str, str, list[tuple[str, bytes]]]] = [
        (
            "abort_empty_payload",
            "ABORT with an empty payload is ACKed and stops (reason 0), then STATUS, same seq",
            [*session, ("ABORT seq 4, empty payload", W.encode_frame(M.ABORT, 4, b""))],
        ),
        (
            "abort_two_byte_payload",
            "ABORT with 2 payload bytes is ACKed and stops (reason = first byte, 1 user)",
            [*session, ("ABORT seq 4, payload 01 99", W.encode_frame(M.ABORT, 4, b"\x01\x99"))],
        ),
        (
            "abort_trailer_only",
            "ABORT whose payload is only an auth trailer (wrong tag) is ACKed and stops, "
            "reason 0: ABORT is checked before authentication",
            [*session, ("ABORT seq 4, AUTH flag, trailer counter 3 tag zero", trailer_only)],
        ),
        (
            "abort_unknown_reason_idle",
            "ABORT with no session and an unknown reason byte: ACK then STATUS (state IDLE)",
            [hello, ("ABORT seq 2, reason 0xEE", W.encode_frame(M.ABORT, 2, b"\xee"))],
        ),
        (
            "hello_signed_refused",
            "a HELLO with the AUTH flag gets NACK AUTH_FAILED and resets neither nonce nor "
            "counter: counter 2 on the old nonce is accepted, counter 1 again is refused",
            [
                hello,
                upload,
                (
                    "HELLO seq 3 with AUTH flag and a trailer",
                    _signed(M.HELLO, 3, W.Hello().payload(), nonce, 5),
                ),
                (
                    "UPLOAD_PLAN seq 4 counter 2 (same nonce)",
                    _signed(M.UPLOAD_PLAN, 4, plan, nonce, 2),
                ),
                (
                    "UPLOAD_PLAN seq 5 counter 1 (replayed counter)",
                    _signed(M.UPLOAD_PLAN, 5, plan, nonce, 1),
                ),
            ],
        ),
        (
            "plan_policy_2",
            "policy outside {0 FINISH, 1 STOP} -> NACK BAD_VALUE",
            [
                hello,
                (
                    "UPLOAD_PLAN seq 2 counter 1, policy 2",
                    _signed(M.UPLOAD_PLAN, 2, bytes(bad_policy), nonce, 1),
                ),
            ],
        ),
        (
            "plan_kind_2",
            "step kind outside {0 DURATION, 1 FLUENCE} -> NACK BAD_VALUE",
            [
                hello,
                (
                    "UPLOAD_PLAN seq 2 counter 1, kind 2",
                    _signed(M.UPLOAD_PLAN, 2, bytes(bad_kind), nonce, 1),
                ),
            ],
        ),
        (
            "retry_hits_duplicate_memory",
            "a byte-identical retry of START gets the remembered STARTED(STARTED) and is not "
            "executed again; the same seq with another payload (new counter) is executed anew "
            "and answers ALREADY_RUNNING",
            [
                *session,
                ("the same START bytes again", start[1]),
                (
                    "START(1) seq 3 counter 3 (payload differs in its trailer)",
                    _signed(M.START, 3, W.Start(1).payload(), nonce, 3),
                ),
            ],
        ),
        (
            "abort_other_major",
            "an ABORT whose header says major 2 gets NACK VERSION (limit 1, observed 2) and "
            "stops nothing: the version check comes before ABORT",
            [
                *session,
                (
                    "ABORT seq 4 reason 1, header version 2",
                    W.cobs_encode(_body(2, M.ABORT, 4, b"\x01")) + b"\x00",
                ),
                ("GET_STATUS seq 5: still RUNNING", W.encode_frame(M.GET_STATUS, 5, b"")),
            ],
        ),
        (
            "abort_retry_gets_only_the_ack",
            "a byte-identical ABORT retry gets the remembered ACK only (no second STATUS, "
            "nothing executed again)",
            [
                *session,
                ("ABORT seq 4 reason 1", W.encode_frame(M.ABORT, 4, b"\x01")),
                ("the same ABORT bytes again", W.encode_frame(M.ABORT, 4, b"\x01")),
            ],
        ),
        (
            "nacked_signed_request_uses_its_counter",
            "a signed START NACKed NO_PLAN after its tag verified uses up counter 1: an upload "
            "with counter 1 is refused AUTH_FAILED, counter 2 is accepted",
            [
                hello,
                (
                    "START(1) seq 2 counter 1, no plan",
                    _signed(M.START, 2, W.Start(1).payload(), nonce, 1),
                ),
                ("UPLOAD_PLAN seq 3 counter 1", _signed(M.UPLOAD_PLAN, 3, plan, nonce, 1)),
                ("UPLOAD_PLAN seq 4 counter 2", _signed(M.UPLOAD_PLAN, 4, plan, nonce, 2)),
            ],
        ),
    ]
    out: list[dict[str, object]] = []
    for name, decision, steps in specs:
        got_nonce, run = _run(steps)
        assert got_nonce == nonce.hex()
        out.append(
            {
                "name": name,
                "decision": decision,
                "device": EXCHANGE_DEVICE,
                "key_hex": W.DEVELOPMENT_KEY.hex(),
                "nonce_hex": nonce.hex(),
                "steps": run,
            }
        )
    return out


if __name__ == "__main__":
    main()

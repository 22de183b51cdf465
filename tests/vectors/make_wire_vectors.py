"""Write tests/vectors/wire-v1.json: golden frames of wire protocol v1.

Run once when the protocol gains a message (``python tests/vectors/make_wire_vectors.py``);
the file is then frozen: ``tests/test_wire_vectors.py`` checks that the codec still
produces and parses exactly these bytes, and the firmware's C tests read the same file.
Never regenerate it to make a failing test pass: a changed byte is a protocol change.
"""

from __future__ import annotations

import json
from pathlib import Path

from lllt import wire
from lllt_sim.profiles import load_profile

W = wire
ch = W.ChannelSetpoint


def messages() -> list[tuple[str, int, W.Message, bool]]:
    """(name, seq, message, authenticated)"""
    hello_info = load_profile("laser-cap-678").hello_info(
        nonce=bytes(range(16)), boot_count=3, uptime_ms=123456, clock_rate=1.0
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
        ("hello", 1, W.Hello(), False),
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
    path = Path(__file__).with_name("wire-v1.json")
    path.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

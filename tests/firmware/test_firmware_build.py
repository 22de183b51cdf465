"""The firmware's C unit tests (cmocka, against the shared golden vectors), the board
tables generated from the simulator's profiles, and the host library's ABI."""

from __future__ import annotations

import ctypes
import subprocess
import sys

import pytest

from lllt import wire
from lllt_sim.profiles import default_capabilities, load_profile

from .conftest import FIRMWARE, ROOT, have_cmocka, make, need, need_tool


def test_c_unit_tests_pass() -> None:
    need_tool("cc", "gcc")
    need(have_cmocka(), "cmocka not found (apt-get install libcmocka-dev)")
    proc = make("test")
    out = proc.stdout + proc.stderr
    # three binaries ran: the vectors, the device, and the device again as a release build
    assert out.count("[  PASSED  ]") == 3, out[-2000:]
    assert "FAILED" not in out
    assert "test_exchanges_1_1" in out and "test_overtemperature_emitters_off_in_one_tick" in out


def test_the_template_port_compiles_against_the_hal() -> None:
    need_tool("cc", "gcc")
    make("template")


def test_the_c_tests_read_the_shared_vector_file() -> None:
    # the Makefile points the C tests at the very file the Python tests read
    text = (FIRMWARE / "Makefile").read_text()
    assert "../tests/vectors/wire-v1.json" in text
    src = (FIRMWARE / "tests" / "test_vectors.c").read_text()
    for section in ("valid", "malformed", "resync", "codec_1_1", "exchanges_1_1"):
        assert f'"{section}"' in src


def test_board_tables_match_the_simulator_profiles() -> None:
    proc = subprocess.run(
        [sys.executable, str(FIRMWARE / "tools" / "gen_boards.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr


def _lib() -> ctypes.CDLL:
    need_tool("cc", "gcc")
    make("lib")
    from . import fwlib_ctypes

    return fwlib_ctypes.load()


def test_library_abi_layouts() -> None:
    from . import fwlib_ctypes as F

    lib = _lib()
    assert lib.lllt_fw_abi_version() == 1
    assert ctypes.sizeof(F.Sense) == 24 and ctypes.sizeof(F.Pwm) == 8
    assert ctypes.sizeof(F.Snapshot) == 152
    assert lib.lllt_fw_is_release() == 0
    mem = (ctypes.c_uint64 * 8)()
    cfg = F.Config(abi_version=2)
    plant = F.Plant()
    assert lib.lllt_fw_init(mem, 64, ctypes.byref(cfg), ctypes.byref(plant.hal)) == -1
    cfg.abi_version = 1
    assert lib.lllt_fw_init(mem, 64, ctypes.byref(cfg), ctypes.byref(plant.hal)) == -2
    assert b"lllt_fw_size" in lib.lllt_fw_strerror(-2)


def _fresh(profile: str | None = None):  # type: ignore[no-untyped-def]
    from . import fwlib_ctypes as F

    lib = _lib()
    mem = (ctypes.c_uint64 * ((lib.lllt_fw_size() + 7) // 8))()
    plant = F.Plant()
    board = None
    if profile is not None:
        blob = load_profile(profile).hello_info(capabilities=default_capabilities()).payload()
        board = (ctypes.c_uint8 * len(blob)).from_buffer_copy(blob)
    cfg = F.Config(
        abi_version=1,
        flags=1,
        board=ctypes.cast(board, ctypes.c_void_p) if board else None,
        board_len=len(board) if board else 0,
    )
    assert (
        lib.lllt_fw_init(mem, lib.lllt_fw_size(), ctypes.byref(cfg), ctypes.byref(plant.hal)) == 0
    )
    lib.lllt_fw_boot(mem, 0, 0)
    return lib, mem, plant, cfg, board


@pytest.mark.parametrize("profile", ["reference-cap", "laser-cap-678", "led-helmet-rgb"])
def test_library_says_hello_as_the_simulator_profile(profile: str) -> None:
    lib, mem, plant, _, _ = _fresh(profile)
    frame = b"\x00" + wire.encode_message(wire.Hello(), 1)
    lib.lllt_fw_rx(mem, frame, len(frame))
    lib.lllt_fw_poll(mem, 0)
    (reply,) = wire.FrameDecoder().feed(bytes(plant.out))
    info = wire.decode_message(reply)
    assert isinstance(info, wire.HelloInfo)
    want = load_profile(profile).hello_info(nonce=info.nonce, boot_count=1)
    assert info.payload() == want.payload()  # the same device, byte for byte


def test_library_runs_a_signed_session_on_the_callers_clock() -> None:
    lib, mem, plant, _, _ = _fresh()
    dec = wire.FrameDecoder()

    def send(
        msg: wire.Message, seq: int, t: int, auth: wire.AuthState | None = None
    ) -> list[wire.Message]:
        b = wire.encode_message(msg, seq, auth=auth)
        lib.lllt_fw_rx(mem, b, len(b))
        lib.lllt_fw_poll(mem, t)
        out = bytes(plant.out)
        plant.out.clear()
        return [wire.decode_message(f) for f in dec.feed(out)]

    (info,) = send(wire.Hello(), 1, 0)
    assert isinstance(info, wire.HelloInfo)
    auth = wire.AuthState(wire.DEVELOPMENT_KEY, info.nonce)
    step = wire.PlanStep(
        wire.StepKind.DURATION, 2000, 0, 0.0, 100.0, (wire.ChannelSetpoint(0, 3.0),)
    )
    plan = wire.UploadPlan(plan_id=7, policy=wire.LinkPolicy.FINISH, lease_ms=5000, steps=(step,))
    assert isinstance(send(plan, 2, 0, auth)[0], wire.Ack)
    assert isinstance(send(wire.Start(7), 3, 0, auth)[0], wire.Started)
    t = 0
    while t < 2500:
        t = lib.lllt_fw_next_due(mem)
        lib.lllt_fw_poll(mem, t)
    plant.out.clear()
    (recs,) = send(wire.GetRecords(4), 4, t)
    assert isinstance(recs, wire.Records)
    (r,) = recs.records
    assert r.outcome == wire.Outcome.COMPLETED and r.fluence[0] == pytest.approx(0.006)
    assert lib.lllt_fw_traps(mem) == 0
    assert plant.kicks >= 250  # the watchdog is kicked every tick


def test_generator_is_the_only_source_of_board_tables() -> None:
    text = (FIRMWARE / "boards" / "lllt_boards.c").read_text()
    assert text.startswith("/* Generated by firmware/tools/gen_boards.py")
    assert ROOT.joinpath("firmware", "tools", "gen_boards.py").exists()

"""ctypes declarations of firmware/port/host/lllt_fwlib.h for the firmware's own tests.

A deliberately small copy: the fw:// transport (src/lllt/transport/fw.py) has its own.
The struct layouts are checked against the header's asserted sizes in the tests.
"""

from __future__ import annotations

import ctypes as C
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE = ROOT / "firmware"
LIB_PATH = FIRMWARE / "build" / "liblllt_fw.so"

MAX_CH = 16
MAX_Z = 8


class Sense(C.Structure):
    _fields_ = [
        ("temp_q", C.c_int16 * MAX_Z),
        ("ambient_q", C.c_int16),
        ("supply_mv", C.c_uint16),
        ("head_present", C.c_uint8),
        ("reserved", C.c_uint8 * 3),
    ]


class Pwm(C.Structure):
    _fields_ = [("level_q", C.c_uint16), ("duty", C.c_uint16), ("pulse_mhz", C.c_uint32)]


SENSE = C.CFUNCTYPE(None, C.c_void_p, C.POINTER(Sense))
OUTPUT_SENSE = C.CFUNCTYPE(None, C.c_void_p, C.POINTER(C.c_uint16), C.c_uint32)
PWM_APPLY = C.CFUNCTYPE(None, C.c_void_p, C.POINTER(Pwm), C.c_uint32)
MASTER_SET = C.CFUNCTYPE(None, C.c_void_p, C.c_uint8)
UART_WRITE = C.CFUNCTYPE(None, C.c_void_p, C.POINTER(C.c_uint8), C.c_uint32)
NV_READ = C.CFUNCTYPE(C.c_uint8, C.c_void_p, C.c_uint32, C.POINTER(C.c_uint8), C.c_uint32)
NV_WRITE = C.CFUNCTYPE(C.c_uint8, C.c_void_p, C.c_uint32, C.POINTER(C.c_uint8), C.c_uint32)
RANDOM = C.CFUNCTYPE(C.c_uint8, C.c_void_p, C.POINTER(C.c_uint8), C.c_uint32)
VOID = C.CFUNCTYPE(None, C.c_void_p)
U8 = C.CFUNCTYPE(C.c_uint8, C.c_void_p)


class Hal(C.Structure):
    _fields_ = [
        ("ctx", C.c_void_p),
        ("sense", SENSE),
        ("output_sense", OUTPUT_SENSE),
        ("pwm_apply", PWM_APPLY),
        ("master_set", MASTER_SET),
        ("uart_write", UART_WRITE),
        ("nv_read", NV_READ),
        ("nv_write", NV_WRITE),
        ("random_bytes", RANDOM),
        ("watchdog_kick", VOID),
        ("button_held", U8),
        ("driver_test", U8),
    ]


class Config(C.Structure):
    _fields_ = [
        ("abi_version", C.c_uint32),
        ("flags", C.c_uint32),
        ("board", C.POINTER(C.c_uint8)),
        ("board_len", C.c_uint32),
        ("clock_rate", C.c_uint32),
        ("tick_ms", C.c_uint32),
        ("brownout_mv", C.c_uint16),
        ("reserved", C.c_uint16),
        ("key", C.POINTER(C.c_uint8)),
    ]


class Snapshot(C.Structure):
    _fields_ = [
        ("now_ms", C.c_uint32),
        ("plan_id", C.c_uint32),
        ("elapsed_ms", C.c_uint32),
        ("step_elapsed_ms", C.c_uint32),
        ("emitting_ms", C.c_uint32),
        ("boot_count", C.c_uint16),
        ("flags", C.c_uint16),
        ("derate_permille", C.c_uint16),
        ("state", C.c_uint8),
        ("step", C.c_uint8),
        ("n_channels", C.c_uint8),
        ("n_zones", C.c_uint8),
        ("master_on", C.c_uint8),
        ("reserved", C.c_uint8),
        ("fluence_uj", C.c_uint32 * MAX_CH),
        ("setpoint_q", C.c_uint16 * MAX_CH),
        ("frames_ok", C.c_uint32),
        ("frames_bad", C.c_uint32),
        ("rx_overflow", C.c_uint32),
        ("dedup_hits", C.c_uint32),
        ("nacks", C.c_uint32),
        ("ticks", C.c_uint32),
    ]


def load(path: Path = LIB_PATH) -> C.CDLL:
    lib = C.CDLL(str(path))
    lib.lllt_fw_abi_version.restype = C.c_uint32
    lib.lllt_fw_size.restype = C.c_uint32
    lib.lllt_fw_is_release.restype = C.c_uint32
    lib.lllt_fw_strerror.restype = C.c_char_p
    lib.lllt_fw_strerror.argtypes = [C.c_int32]
    lib.lllt_fw_init.restype = C.c_int32
    lib.lllt_fw_init.argtypes = [C.c_void_p, C.c_uint32, C.POINTER(Config), C.POINTER(Hal)]
    lib.lllt_fw_boot.argtypes = [C.c_void_p, C.c_uint32, C.c_uint64]
    lib.lllt_fw_rx.argtypes = [C.c_void_p, C.c_char_p, C.c_uint32]
    lib.lllt_fw_poll.argtypes = [C.c_void_p, C.c_uint64]
    lib.lllt_fw_next_due.restype = C.c_uint64
    lib.lllt_fw_next_due.argtypes = [C.c_void_p]
    lib.lllt_fw_link_closed.argtypes = [C.c_void_p]
    lib.lllt_fw_snapshot_get.argtypes = [C.c_void_p, C.POINTER(Snapshot)]
    lib.lllt_fw_traps.restype = C.c_uint32
    lib.lllt_fw_traps.argtypes = [C.c_void_p]
    return lib


class Plant:
    """The simplest board: measured output = command, constant sensors, RAM NV."""

    def __init__(self, n_ch: int = 8) -> None:
        self.n_ch = n_ch
        self.pwm = [(0, 10000, 0)] * MAX_CH
        self.master = True
        self.temp_q = 3300
        self.head = True
        self.supply_mv = 5000
        self.out = bytearray()
        self.nv = bytearray(b"\xff" * 4096)
        self.draws = 0
        self.kicks = 0
        self.hal = Hal(
            None,
            SENSE(self._sense),
            OUTPUT_SENSE(self._output_sense),
            PWM_APPLY(self._pwm_apply),
            MASTER_SET(self._master_set),
            UART_WRITE(self._uart_write),
            NV_READ(self._nv_read),
            NV_WRITE(self._nv_write),
            RANDOM(self._random),
            VOID(self._kick),
            U8(lambda ctx: 0),
            U8(lambda ctx: 1),
        )

    def _sense(self, ctx, s):  # type: ignore[no-untyped-def]
        for z in range(MAX_Z):
            s.contents.temp_q[z] = self.temp_q
        s.contents.ambient_q = 2500
        s.contents.supply_mv = self.supply_mv
        s.contents.head_present = 1 if self.head else 0

    def _output_sense(self, ctx, q, n):  # type: ignore[no-untyped-def]
        for i in range(n):
            q[i] = self.pwm[i][0] if self.master else 0

    def _pwm_apply(self, ctx, p, n):  # type: ignore[no-untyped-def]
        self.pwm = [(p[i].level_q, p[i].duty, p[i].pulse_mhz) for i in range(n)]

    def _master_set(self, ctx, on):  # type: ignore[no-untyped-def]
        self.master = bool(on)

    def _uart_write(self, ctx, d, n):  # type: ignore[no-untyped-def]
        self.out += C.string_at(d, n)

    def _nv_read(self, ctx, off, buf, n):  # type: ignore[no-untyped-def]
        C.memmove(buf, bytes(self.nv[off : off + n]), n)
        return 1

    def _nv_write(self, ctx, off, buf, n):  # type: ignore[no-untyped-def]
        self.nv[off : off + n] = C.string_at(buf, n)
        return 1

    def _random(self, ctx, buf, n):  # type: ignore[no-untyped-def]
        import os

        C.memmove(buf, os.urandom(n), n)
        self.draws += 1
        return 1

    def _kick(self, ctx):  # type: ignore[no-untyped-def]
        self.kicks += 1

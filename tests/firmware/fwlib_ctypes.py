"""ctypes declarations of firmware/port/host/lllt_fwlib.h for the firmware's own tests.

The structures come from ``lllt_sim.fwlib`` (the fw:// transport's bindings); this module
adds a loader for a given build (debug or release) and a small plant for the tests.
"""

from __future__ import annotations

import ctypes as C
from pathlib import Path

# the structures and callback types are lllt_sim.fwlib's, which test_fwlib_abi.py checks
# field for field against the C compiler's layout of the header
from lllt_sim import fwlib
from lllt_sim.fwlib import Config, Hal, Pwm, Sense, Snapshot

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE = ROOT / "firmware"
LIB_PATH = FIRMWARE / "build" / "liblllt_fw.so"

MAX_CH = fwlib.MAX_CHANNELS
MAX_Z = fwlib.MAX_ZONES
SENSE = fwlib.SENSE_FN
OUTPUT_SENSE = fwlib.OUTPUT_SENSE_FN
PWM_APPLY = fwlib.PWM_APPLY_FN
MASTER_SET = fwlib.MASTER_SET_FN
UART_WRITE = fwlib.UART_WRITE_FN
NV_READ = NV_WRITE = fwlib.NV_FN
RANDOM = fwlib.RANDOM_FN
VOID = fwlib.KICK_FN
U8 = fwlib.BUTTON_FN

__all__ = ["MAX_CH", "MAX_Z", "Config", "Hal", "Plant", "Pwm", "Sense", "Snapshot", "load"]


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
    lib.lllt_fw_idle_room.restype = C.c_uint32
    lib.lllt_fw_idle_room.argtypes = [C.c_void_p]
    lib.lllt_fw_idle.restype = C.c_uint32
    lib.lllt_fw_idle.argtypes = [C.c_void_p, C.c_uint32]
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

"""ctypes binding of ``liblllt_fw.so``: the firmware core as a shared library.

The C side is ``firmware/port/host/lllt_fwlib.h`` (ABI version 1); this module declares
the same structures and prototypes and finds the library:

1. ``$LLLT_FWLIB``, the path of a built ``liblllt_fw.so``;
2. in an lllt checkout, ``firmware/build/.../liblllt_fw.so``; when it is missing or older
   than its sources, ``make -C firmware lib`` builds it (once per process).

Anything that goes wrong ends in :class:`FirmwareLibraryError` with one line saying what
to do, never a traceback from ctypes.
"""

from __future__ import annotations

import ctypes as C
import os
import shutil
import subprocess
import threading
from pathlib import Path

ABI_VERSION = 1
MAX_CHANNELS = 16
MAX_ZONES = 8
NV_SIZE = 4096
KEY_SIZE = 32

BOOT_POWER_ON = 0
BOOT_WATCHDOG = 1
BOOT_BROWNOUT = 2
BOOT_SOFTWARE = 3

FLAG_QUIET_POWER_ON = 0x0001
FLAG_BLE_LINK = 0x0002

LIB_NAME = "liblllt_fw.so"
BUILD_COMMAND = "make -C firmware lib"


class FirmwareLibraryError(RuntimeError):
    """The firmware library cannot be found, built, loaded or set up."""


class Sense(C.Structure):
    _fields_ = (
        ("temp_q", C.c_int16 * MAX_ZONES),
        ("ambient_q", C.c_int16),
        ("supply_mv", C.c_uint16),
        ("head_present", C.c_uint8),
        ("reserved", C.c_uint8 * 3),
    )


class Pwm(C.Structure):
    _fields_ = (
        ("level_q", C.c_uint16),
        ("duty", C.c_uint16),
        ("pulse_mhz", C.c_uint32),
    )


SENSE_FN = C.CFUNCTYPE(None, C.c_void_p, C.POINTER(Sense))
OUTPUT_SENSE_FN = C.CFUNCTYPE(None, C.c_void_p, C.POINTER(C.c_uint16), C.c_uint32)
PWM_APPLY_FN = C.CFUNCTYPE(None, C.c_void_p, C.POINTER(Pwm), C.c_uint32)
MASTER_SET_FN = C.CFUNCTYPE(None, C.c_void_p, C.c_uint8)
UART_WRITE_FN = C.CFUNCTYPE(None, C.c_void_p, C.POINTER(C.c_uint8), C.c_uint32)
NV_FN = C.CFUNCTYPE(C.c_uint8, C.c_void_p, C.c_uint32, C.POINTER(C.c_uint8), C.c_uint32)
RANDOM_FN = C.CFUNCTYPE(C.c_uint8, C.c_void_p, C.POINTER(C.c_uint8), C.c_uint32)
KICK_FN = C.CFUNCTYPE(None, C.c_void_p)
BUTTON_FN = C.CFUNCTYPE(C.c_uint8, C.c_void_p)
DRIVER_TEST_FN = C.CFUNCTYPE(C.c_uint8, C.c_void_p)


class Hal(C.Structure):
    _fields_ = (
        ("ctx", C.c_void_p),
        ("sense", SENSE_FN),
        ("output_sense", OUTPUT_SENSE_FN),
        ("pwm_apply", PWM_APPLY_FN),
        ("master_set", MASTER_SET_FN),
        ("uart_write", UART_WRITE_FN),
        ("nv_read", NV_FN),
        ("nv_write", NV_FN),
        ("random_bytes", RANDOM_FN),
        ("watchdog_kick", KICK_FN),
        ("button_held", BUTTON_FN),
        ("driver_test", DRIVER_TEST_FN),
    )


class Config(C.Structure):
    _fields_ = (
        ("abi_version", C.c_uint32),
        ("flags", C.c_uint32),
        ("board", C.c_void_p),
        ("board_len", C.c_uint32),
        ("clock_rate", C.c_uint32),
        ("tick_ms", C.c_uint32),
        ("brownout_mv", C.c_uint16),
        ("reserved", C.c_uint16),
        ("key", C.c_void_p),
    )


class Snapshot(C.Structure):
    _fields_ = (
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
        ("fluence_uj", C.c_uint32 * MAX_CHANNELS),
        ("setpoint_q", C.c_uint16 * MAX_CHANNELS),
        ("frames_ok", C.c_uint32),
        ("frames_bad", C.c_uint32),
        ("rx_overflow", C.c_uint32),
        ("dedup_hits", C.c_uint32),
        ("nacks", C.c_uint32),
        ("ticks", C.c_uint32),
    )


def _checkout_root() -> Path | None:
    """The lllt checkout this module runs from (an editable install), if any."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "firmware" / "Makefile").is_file() and (parent / "pyproject.toml").is_file():
            return parent
    return None


def _built(root: Path) -> list[Path]:
    build = root / "firmware" / "build"
    if not build.is_dir():
        return []
    return sorted(build.rglob(LIB_NAME), key=lambda p: p.stat().st_mtime, reverse=True)


_lock = threading.Lock()
_made = False
_lib: C.CDLL | None = None


def build(root: Path | None = None) -> None:
    """``make -C firmware lib`` in the checkout (make decides whether anything is stale)."""
    root = root or _checkout_root()
    if root is None:
        raise FirmwareLibraryError(
            f"{LIB_NAME} is not built and this lllt is not a checkout with firmware/",
        )
    if shutil.which("make") is None:
        raise FirmwareLibraryError(
            f"cannot build {LIB_NAME}: `make` is not installed; install make and a C "
            f"compiler (apt-get install make gcc), then run `{BUILD_COMMAND}`"
        )
    try:
        out = subprocess.run(
            ["make", "-s", "-C", str(root / "firmware"), "lib"],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise FirmwareLibraryError(f"`{BUILD_COMMAND}` did not run: {err}") from None
    if out.returncode != 0:
        tail = "\n".join((out.stdout + out.stderr).strip().splitlines()[-15:])
        raise FirmwareLibraryError(
            f"`{BUILD_COMMAND}` failed (exit {out.returncode}); fix the build and retry:\n{tail}"
        )


def find_library() -> Path:
    """Path of liblllt_fw.so, building it in a checkout when needed (see the module doc)."""
    global _made
    env = os.environ.get("LLLT_FWLIB")
    if env:
        path = Path(env)
        if not path.is_file():
            raise FirmwareLibraryError(
                f"LLLT_FWLIB={env} is not a file; build the library with `{BUILD_COMMAND}` "
                "or unset LLLT_FWLIB"
            )
        return path
    root = _checkout_root()
    if root is None:
        raise FirmwareLibraryError(
            f"{LIB_NAME} not found: build it in an lllt checkout with `{BUILD_COMMAND}` "
            "and set LLLT_FWLIB to its path"
        )
    with _lock:
        if not _made:
            build(root)  # make rebuilds only what is stale; once per process
            _made = True
    found = _built(root)
    if not found:
        raise FirmwareLibraryError(
            f"`{BUILD_COMMAND}` ran but left no {LIB_NAME} under firmware/build/; "
            "set LLLT_FWLIB to the library's path"
        )
    return found[0]


def load() -> C.CDLL:
    """The loaded library with its prototypes declared and its ABI version checked."""
    global _lib
    if _lib is not None:
        return _lib
    path = find_library()
    try:
        lib = C.CDLL(str(path))
    except OSError as err:
        raise FirmwareLibraryError(
            f"cannot load {path}: {err}; rebuild it with `{BUILD_COMMAND}`"
        ) from None
    try:
        lib.lllt_fw_abi_version.restype = C.c_uint32
        lib.lllt_fw_abi_version.argtypes = ()
        version = lib.lllt_fw_abi_version()
        if version != ABI_VERSION:
            raise FirmwareLibraryError(
                f"{path} has ABI version {version}; this lllt speaks version {ABI_VERSION}: "
                f"rebuild the library (`{BUILD_COMMAND}`) from the same checkout"
            )
        lib.lllt_fw_size.restype = C.c_uint32
        lib.lllt_fw_size.argtypes = ()
        lib.lllt_fw_strerror.restype = C.c_char_p
        lib.lllt_fw_strerror.argtypes = (C.c_int32,)
        lib.lllt_fw_is_release.restype = C.c_uint32
        lib.lllt_fw_is_release.argtypes = ()
        lib.lllt_fw_init.restype = C.c_int32
        lib.lllt_fw_init.argtypes = (C.c_void_p, C.c_uint32, C.POINTER(Config), C.POINTER(Hal))
        lib.lllt_fw_boot.restype = None
        lib.lllt_fw_boot.argtypes = (C.c_void_p, C.c_uint32, C.c_uint64)
        lib.lllt_fw_rx.restype = None
        lib.lllt_fw_rx.argtypes = (C.c_void_p, C.c_char_p, C.c_uint32)
        lib.lllt_fw_poll.restype = None
        lib.lllt_fw_poll.argtypes = (C.c_void_p, C.c_uint64)
        lib.lllt_fw_next_due.restype = C.c_uint64
        lib.lllt_fw_next_due.argtypes = (C.c_void_p,)
        lib.lllt_fw_link_closed.restype = None
        lib.lllt_fw_link_closed.argtypes = (C.c_void_p,)
        lib.lllt_fw_idle_room.restype = C.c_uint32
        lib.lllt_fw_idle_room.argtypes = (C.c_void_p,)
        lib.lllt_fw_idle.restype = C.c_uint32
        lib.lllt_fw_idle.argtypes = (C.c_void_p, C.c_uint32)
        lib.lllt_fw_snapshot_get.restype = None
        lib.lllt_fw_snapshot_get.argtypes = (C.c_void_p, C.POINTER(Snapshot))
    except AttributeError as err:
        raise FirmwareLibraryError(
            f"{path} lacks a function of the ABI ({err}); rebuild it with `{BUILD_COMMAND}`"
        ) from None
    _lib = lib
    return lib


__all__ = [
    "ABI_VERSION",
    "BUILD_COMMAND",
    "Config",
    "FirmwareLibraryError",
    "Hal",
    "Pwm",
    "Sense",
    "Snapshot",
    "find_library",
    "load",
]

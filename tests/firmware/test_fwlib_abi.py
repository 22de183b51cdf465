"""The ctypes declarations of ``lllt_sim.fwlib`` match ``lllt_fwlib.h`` field for field.

A C program generated from the ctypes structures prints ``sizeof`` and ``offsetof`` of
every field as the C compiler lays them out; any difference (a field added to the header
and not here, a type changed) fails before a misread byte can reach a test of behaviour.
"""

from __future__ import annotations

import ctypes as C
import shutil
import subprocess
from pathlib import Path

import pytest

from lllt_sim import fwlib

ROOT = Path(__file__).resolve().parents[2]
HEADER = ROOT / "firmware" / "port" / "host" / "lllt_fwlib.h"

STRUCTS = {
    "lllt_fwlib_sense": fwlib.Sense,
    "lllt_fwlib_pwm": fwlib.Pwm,
    "lllt_fwlib_hal": fwlib.Hal,
    "lllt_fwlib_config": fwlib.Config,
    "lllt_fwlib_snapshot": fwlib.Snapshot,
}


def _expected() -> list[str]:
    lines = []
    for cname, cls in STRUCTS.items():
        lines.append(f"{cname} {C.sizeof(cls)}")
        for field, _ in cls._fields_:
            lines.append(f"{cname}.{field} {getattr(cls, field).offset}")
    return lines


def test_ctypes_layout_matches_the_header(tmp_path: Path) -> None:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to lay out lllt_fwlib.h")
    body = []
    for cname, cls in STRUCTS.items():
        body.append(f'printf("{cname} %zu\\n", sizeof({cname}));')
        for field, _ in cls._fields_:
            body.append(f'printf("{cname}.{field} %zu\\n", offsetof({cname}, {field}));')
    src = tmp_path / "layout.c"
    src.write_text(
        '#include <stdio.h>\n#include <stddef.h>\n#include "lllt_fwlib.h"\n'
        "int main(void) {\n" + "\n".join(body) + "\nreturn 0;\n}\n",
        encoding="utf-8",
    )
    exe = tmp_path / "layout"
    subprocess.run(
        [cc, "-std=c11", "-Wall", "-Werror", "-I", str(HEADER.parent), str(src), "-o", str(exe)],
        check=True,
        capture_output=True,
    )
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout
    assert out.split("\n")[:-1] == _expected()


def test_abi_version_and_limits_match_the_header() -> None:
    text = HEADER.read_text(encoding="utf-8")
    for name, value in [
        ("LLLT_FWLIB_ABI_VERSION", fwlib.ABI_VERSION),
        ("LLLT_FWLIB_MAX_CHANNELS", fwlib.MAX_CHANNELS),
        ("LLLT_FWLIB_MAX_ZONES", fwlib.MAX_ZONES),
        ("LLLT_FWLIB_NV_SIZE", fwlib.NV_SIZE),
        ("LLLT_FWLIB_KEY_SIZE", fwlib.KEY_SIZE),
        ("LLLT_FWLIB_BOOT_WATCHDOG", fwlib.BOOT_WATCHDOG),
        ("LLLT_FWLIB_QUIET_POWER_ON", fwlib.FLAG_QUIET_POWER_ON),
        ("LLLT_FWLIB_BLE_LINK", fwlib.FLAG_BLE_LINK),
    ]:
        assert f"#define {name} {value:#06x}u" in text or f"#define {name} {value}u" in text, name

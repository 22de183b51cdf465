"""A short smoke run of the firmware's libFuzzer harness (decoder, dispatcher and control
tick under ASan and UBSan, with the safety invariants checked after every operation).
The long run is bench/bench_fw_fuzz.py."""

from __future__ import annotations

import re
from pathlib import Path

from .conftest import FIRMWARE, make, need, need_tool


def test_fuzz_smoke_finds_nothing() -> None:
    need_tool("clang", "clang libclang-rt-14-dev")
    need(
        any(Path("/usr/lib").glob("llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a")),
        "libFuzzer runtime not found (apt-get install libclang-rt-14-dev)",
    )
    for old in (FIRMWARE / "build").glob("fuzz-crash-*"):
        old.unlink()
    proc = make("fuzz", "FUZZ_SECONDS=8", timeout=300)
    out = proc.stdout + proc.stderr
    m = re.search(r"stat::number_of_executed_units: (\d+)", out)
    assert m and int(m.group(1)) > 100, out[-2000:]
    assert "ERROR: AddressSanitizer" not in out and "runtime error" not in out
    assert not list((FIRMWARE / "build").glob("fuzz-crash-*"))

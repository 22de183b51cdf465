"""Shared helpers for the firmware tests: where the tree is, and skipping honestly.

A missing tool (a C compiler, cmocka, clang's libFuzzer, the ARM toolchain, QEMU) skips
the test on a developer's machine and fails it in CI (``LLLT_CI=1``), where the toolchain
is installed by ``.ci/run``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE = ROOT / "firmware"


def need(condition: bool, why: str) -> None:
    """Skip (or, in CI, fail) when ``condition`` is false."""
    if condition:
        return
    if os.environ.get("LLLT_CI") == "1":
        pytest.fail(f"CI must have this: {why}")
    pytest.skip(why)


def need_tool(tool: str, package: str) -> str:
    path = shutil.which(tool)
    need(path is not None, f"{tool} not found (apt-get install {package})")
    assert path is not None
    return path


def have_cmocka() -> bool:
    return Path("/usr/include/cmocka.h").exists()


def make(
    *targets: str, timeout: float = 600, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``make -C firmware TARGETS``; the output is shown when it fails."""
    need_tool("make", "make")
    proc = subprocess.run(
        ["make", "-C", str(FIRMWARE), *targets],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    if proc.returncode != 0:
        pytest.fail(
            f"make {' '.join(targets)} failed ({proc.returncode}):\n"
            f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    return proc

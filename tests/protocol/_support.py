"""Helpers for the protocol tests: run the real ``lllt`` command in a subprocess."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
REPO = HERE.parents[1]
BAD = HERE / "bad"


def run_lllt(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``lllt ARGS`` as a user runs it: a fresh process, real stdout, stderr and exit code."""
    return subprocess.run(
        [sys.executable, "-m", "lllt", *args],
        capture_output=True,
        text=True,
        cwd=cwd or REPO,
        timeout=120,
    )


def assert_no_traceback(stderr: str) -> None:
    assert "Traceback" not in stderr, stderr
    assert "internal error" not in stderr, stderr

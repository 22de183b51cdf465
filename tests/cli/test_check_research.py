"""`lllt protocol check` of a research protocol says one thing about the research flag."""

from __future__ import annotations

import subprocess
import sys

LLLT = [sys.executable, "-m", "lllt"]


def check(*args: str) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(
        [*LLLT, "protocol", "check", "research-far-red-735nm", "--profile", "reference-cap",
         *args],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert "Traceback" not in out.stderr
    return out


def test_without_the_flag_it_does_not_claim_the_flag_was_given() -> None:
    out = check()
    assert out.returncode == 0, out.stderr
    assert "because the research flag was given" not in out.stdout
    assert "accepted with --research" in out.stdout
    assert "`lllt run` will need --research" in out.stdout


def test_with_the_flag_it_says_so_once() -> None:
    out = check("--research")
    assert out.returncode == 0, out.stderr
    assert "because the research flag was given" in out.stdout
    assert "will need --research" not in out.stdout

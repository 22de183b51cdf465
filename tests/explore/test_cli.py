"""``lllt explore`` through the real CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def _lllt(*args: str) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(
        [sys.executable, "-m", "lllt", "explore", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "Traceback" not in out.stderr, out.stderr
    return out


def test_a_few_seeds_and_one_replayed_with_its_trace(tmp_path: Path) -> None:
    out = _lllt("--seeds", "5", "--from", "40")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "5 seeds (40-44) on sim: 0 violating" in out.stdout
    trace = tmp_path / "t.json"
    one = _lllt("--seed", "42", "--trace", str(trace))
    assert one.returncode == 0 and "seed 42:" in one.stdout
    data = json.loads(trace.read_text())
    assert data["seed"] == 42 and data["trace"] and data["violations"] == []


def test_json_summary() -> None:
    out = _lllt("--seeds", "3", "--json")
    data = json.loads(out.stdout)
    assert data["seeds"] == 3 and data["violating_seeds"] == [] and data["seeds_per_s"] > 0


def test_the_firmware_scheme_says_why_it_cannot_run() -> None:
    out = _lllt("--device-scheme", "fw", "--seeds", "1")
    if out.returncode == 0:  # a firmware build with its explorer adapter is installed
        return
    assert out.returncode == 3 and "--device-scheme fw cannot run here" in out.stderr


def test_bad_input_is_named() -> None:
    out = _lllt("--scenario", "no-such")
    assert out.returncode == 2 and "no scenario named 'no-such'" in out.stderr
    out = _lllt("--device-scheme", "nope")
    assert out.returncode == 2 and "unknown device scheme 'nope'" in out.stderr
    out = _lllt("--trace", "x.json")
    assert out.returncode == 2 and "--trace needs --seed" in out.stderr

"""``lllt explore`` through the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def _lllt(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(
        [sys.executable, "-m", "lllt", "explore", *args],
        env={**os.environ, **(env or {})},
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


def test_the_firmware_scheme_says_why_it_cannot_run(tmp_path: Path) -> None:
    """No usable firmware library: exit 3, one message saying what to build, no traceback."""
    missing = tmp_path / "liblllt_fw.so"
    out = _lllt("--device-scheme", "fw", "--seeds", "1", env={"LLLT_FWLIB": str(missing)})
    assert out.returncode == 3, out.stderr
    assert "--device-scheme fw cannot run here" in out.stderr
    assert "make -C firmware lib" in out.stderr


def test_the_firmware_scheme_runs_a_seed(fw_library: None) -> None:
    out = _lllt("--device-scheme", "fw", "--seed", "3")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "no invariant violated" in out.stdout


def test_bad_input_is_named() -> None:
    out = _lllt("--scenario", "no-such")
    assert out.returncode == 2 and "no scenario named 'no-such'" in out.stderr
    out = _lllt("--device-scheme", "nope")
    assert out.returncode == 2 and "unknown device scheme 'nope'" in out.stderr
    out = _lllt("--trace", "x.json")
    assert out.returncode == 2 and "--trace needs --seed" in out.stderr

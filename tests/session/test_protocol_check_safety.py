"""`lllt protocol check --profile/--device` shows the preflight analysis of `lllt run`."""

from __future__ import annotations

import json
from pathlib import Path

from .conftest import lllt, write_protocol


def test_check_with_a_profile_includes_the_thermal_prediction() -> None:
    out = lllt(
        "protocol",
        "check",
        "protocols/aga-red-eod-25min.toml",
        "--profile",
        "reference-cap",
        "--json",
    )
    assert out.returncode == 0, out.stderr
    (entry,) = json.loads(out.stdout)
    safety = entry["safety"]
    assert safety["accepted"] is True
    # 0.35 mW/cm² (the Lanzafame scalp dose) barely warms the scalp above its idle level
    assert 33.0 < safety["thermal"]["peak_c"] < safety["thermal"]["warn_c"]
    assert any("ambient 25" in a for a in safety["assumptions"])


def test_check_refuses_what_run_would_refuse_with_exit_1(tmp_path: Path) -> None:
    # full output on both wavelengths heats the scalp past the warning threshold
    hot = write_protocol(
        tmp_path / "hot.toml",
        duration="25 min",
        emit='"655nm" = "10 mW/cm^2", "735nm" = "10 mW/cm^2"',
    )
    out = lllt("protocol", "check", str(hot), "--profile", "reference-cap")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "REFUSED" in out.stdout and "thermal" in out.stdout
    # and `lllt run` refuses it the same way, before anything is sent
    run = lllt(
        "run",
        str(hot),
        "--device",
        "sim://reference-cap?speed=max",
        "--db",
        str(tmp_path / "db"),
        "--yes",
    )
    assert run.returncode == 1 and "thermal" in run.stderr


def test_check_against_a_live_simulated_device() -> None:
    out = lllt(
        "protocol", "check", "aga-red-3x-week-15min", "--device", "sim://reference-cap", "--json"
    )
    assert out.returncode == 0, out.stderr
    (entry,) = json.loads(out.stdout)
    assert entry["safety"]["accepted"] and entry["safety"]["device"]["simulated"]

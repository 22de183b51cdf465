"""Shipped protocols with `lllt run` on the host firmware are logged as on the simulator.

A few protocols of `lllt protocol list` (the whole list is `bench/bench_fw_protocols.py`):
each runs with `lllt run` on a fresh host firmware executable (its C core and C plant,
served on TCP at 25x real time) and on `sim://PROFILE?speed=max`; the two session logs
must agree: the same outcome, status, phases and kinds of events, and the delivered
fluence per channel, wavelength and phase and the duration within 1 %.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lllt_sim import fwharness

SPEED = "25"  # at 100x a loaded 2-core machine delays heartbeats past the lease


@pytest.mark.slow
@pytest.mark.parametrize(
    ("protocol", "profile"),
    [
        ("aga-hairmax-12beam-8min", "reference-cap"),  # a ramp, then 8 min at 9.4 mW/cm²
        ("aga-capillus-650-daily-6min", "led-helmet-rgb"),
    ],
)
def test_protocol_logged_as_on_the_simulator(protocol: str, profile: str, tmp_path: Path) -> None:
    sim = fwharness.run_and_export(protocol, f"sim://{profile}?speed=max", tmp_path / "sim.db")
    assert sim["exit"] == 0, sim["summary"]
    try:
        served = fwharness.ServedFirmware(
            "--tcp", "127.0.0.1:0", "--speed", SPEED, "--profile", profile
        )
    except fwharness.ToolMissing as err:
        pytest.skip(str(err))
    with served:
        fw = fwharness.run_and_export(protocol, served.url, tmp_path / "fw.db", timeout_s=120)
    assert fw["exit"] == 0, (fw["summary"], served.output()[-2000:])
    assert fw["session"]["outcome"] == "completed"  # type: ignore[index]
    assert fwharness.compare_sessions(sim["session"], fw["session"]) == []  # type: ignore[arg-type]

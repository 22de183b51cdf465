"""Every shipped protocol with `lllt run` on the host firmware, logged as on the simulator.

Issue 8: each protocol of `lllt protocol list` is run once with `lllt run` on the host
firmware executable (`make -C firmware host`: the C core and its C plant, UART on TCP,
`--speed` times real time, a fresh cap per protocol) and once on the simulator
(`sim://PROFILE?speed=max`), each into a fresh session log; the two logs must agree
(`lllt_sim.fwharness.compare_sessions`): the same outcome, status, phases and event
kinds, delivered fluence per channel, wavelength and phase and the duration within 1 %.

Baseline in the same run: the simulator's own `lllt run` of the same protocol (wall time).
Usage: python bench/bench_fw_protocols.py [SPEED] (default 100).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import report
from lllt_sim.fwharness import ServedFirmware, compare_sessions, run_and_export

SPEED = sys.argv[1] if len(sys.argv) > 1 else "100"


def main() -> None:
    listing = json.loads(
        subprocess.run(
            [sys.executable, "-m", "lllt", "protocol", "list", "--json"],
            capture_output=True, text=True, check=True,
        ).stdout
    )  # fmt: skip
    failures = 0
    max_rel = 0.0
    device_s = sim_wall = fw_wall = 0.0
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for p in listing:
            pid, profile, research = p["id"], p["profile"], p["research"]
            sim = run_and_export(
                pid, f"sim://{profile}?speed=max", tmp / f"{pid}-sim.db", research=research
            )
            with ServedFirmware(
                "--tcp", "127.0.0.1:0", "--speed", SPEED, "--profile", profile
            ) as served:
                fw = run_and_export(pid, served.url, tmp / f"{pid}-fw.db", research=research)
            diffs = compare_sessions(sim["session"], fw["session"])  # type: ignore[arg-type]
            a = sim["session"]["delivered_fluence_by_channel_j_cm2"]  # type: ignore[index]
            b = fw["session"]["delivered_fluence_by_channel_j_cm2"]  # type: ignore[index]
            rel = max(
                (abs(a[k] - b[k]) / max(a[k], b[k]) for k in a if k in b and max(a[k], b[k]) > 0),
                default=0.0,
            )
            max_rel = max(max_rel, rel)
            failures += bool(diffs)
            device_s += float(sim["session"]["duration_s"])  # type: ignore[index]
            sim_wall += float(sim["wall_s"])  # type: ignore[arg-type]
            fw_wall += float(fw["wall_s"])  # type: ignore[arg-type]
            report(
                pid,
                profile=profile,
                outcome_sim=sim["session"]["outcome"],  # type: ignore[index]
                outcome_fw=fw["session"]["outcome"],  # type: ignore[index]
                fluence_max_rel_diff=f"{rel:.2e}",
                wall_sim_s=f"{sim['wall_s']:.2f}",
                wall_fw_s=f"{fw['wall_s']:.2f}",
                same=not diffs,
                diffs="; ".join(diffs) or "-",
            )
    report(
        "fw_protocols",
        protocols=len(listing),
        differing=failures,
        fluence_max_rel_diff=f"{max_rel:.2e}",
        device_time_s=f"{device_s:.0f}",
        speed=SPEED,
        wall_fw_s=f"{fw_wall:.1f}",
        wall_sim_s=f"{sim_wall:.1f}",
        ratio_fw_to_sim=f"{fw_wall / sim_wall:.1f}",
        ok=failures == 0,
    )
    if failures:
        raise SystemExit(1)


if __name__ == "__main__":
    main()

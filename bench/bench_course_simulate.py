"""`lllt course simulate` of a 26-week, three-sessions-a-week course on sim://.

Target (issue 10): the whole course (78 sessions) in at most 60 s wall, its report showing
78 sessions, the adherence and the cumulative dose. Baseline in the same run: one
`lllt run` of the same 15-minute protocol (start-up and session log included), so the
per-session time of the course can be compared with a single run.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import report

ROOT = Path(__file__).resolve().parents[1]
PROTOCOL = "aga-red-3x-week-15min"
URL = "sim://reference-cap?speed=max"


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-m", "lllt", "run", PROTOCOL, "--device", URL,
             "--db", str(Path(d) / "single.db"), "--yes"],
            capture_output=True, text=True, cwd=ROOT,
        )  # fmt: skip
        single = time.perf_counter() - t
        assert out.returncode == 0, out.stderr
        rep = Path(d) / "course.json"
        t = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-m", "lllt", "course", "simulate", PROTOCOL, "--sim", URL,
             "--seed", "1", "--miss", "0.05", "--report", str(rep)],
            capture_output=True, text=True, cwd=ROOT,
        )  # fmt: skip
        course = time.perf_counter() - t
        assert out.returncode == 0, out.stderr
        data = json.loads(rep.read_text(encoding="utf-8"))
    n = len(data["sessions"])
    report(
        "course_simulate_26_weeks_3x_week",
        wall_s=f"{course:.1f}",
        sessions=n,
        completed=data["sessions_completed"],
        missed=data["sessions_missed"],
        adherence=f"{data['adherence']:.3f}",
        cumulative_655_j_cm2=data["cumulative_fluence_j_cm2"].get("655"),
        per_session_s=f"{course / n:.3f}",
        single_lllt_run_s=f"{single:.3f}",
        ratio_per_session_to_single_run=f"{course / n / single:.2f}",
        target="<=60 s",
        ok=course <= 60.0 and n == 78,
    )


if __name__ == "__main__":
    main()

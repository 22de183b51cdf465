"""A full 25-minute `lllt run` on sim://reference-cap?speed=max, as a user runs it.

Target (issue 4): under 2 s wall, start-up and session log included. Baseline in the same
run: `lllt --version` (interpreter and CLI start-up alone).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from _common import best_of, report

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    base = best_of(
        lambda: subprocess.run([sys.executable, "-m", "lllt", "--version"], check=True,
                               capture_output=True), 5,
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as d:
        counter = iter(range(100))

        def run() -> None:
            db = Path(d) / f"db{next(counter)}"  # a fresh log: no interval refusal
            out = subprocess.run(
                [sys.executable, "-m", "lllt", "run", "aga-red-eod-25min", "--device",
                 "sim://reference-cap?speed=max", "--db", str(db), "--yes"],
                capture_output=True, text=True, cwd=ROOT,
            )  # fmt: skip
            assert out.returncode == 0, out.stderr

        t = best_of(run, 5)
    report(
        "lllt_run_25min_speed_max",
        wall_s=f"{t:.3f}",
        cli_startup_s=f"{base:.3f}",
        ratio_to_startup=f"{t / base:.1f}",
        speedup=f"{1500 / t:.0f}x",
        target="<2 s",
        ok=t < 2.0,
    )


if __name__ == "__main__":
    main()

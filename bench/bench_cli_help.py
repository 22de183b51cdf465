"""`lllt --help` wall time (target < 0.5 s), against `python -c pass` in the same run."""

from __future__ import annotations

import subprocess
import sys

from _common import best_of, report


def main() -> None:
    base = best_of(lambda: subprocess.run([sys.executable, "-c", "pass"], check=True), 5)
    t = best_of(
        lambda: subprocess.run(
            [sys.executable, "-m", "lllt", "--help"], check=True, capture_output=True
        ),
        5,
    )
    report(
        "lllt_help",
        wall_s=f"{t:.3f}",
        python_startup_s=f"{base:.3f}",
        ratio_to_python_startup=f"{t / base:.1f}",
        target="<0.5 s",
        ok=t < 0.5,
    )


if __name__ == "__main__":
    main()

"""The firmware's libFuzzer harness for a long run (issue 8: >= 10 minutes, no finding).

Builds ``make -C firmware fuzz`` (clang, ASan + UBSan) and runs it for FUZZ_SECONDS
(default 600) on the corpus in firmware/build/fuzz-corpus, seeded from the golden
vectors. The baseline of the same run is the harness's speed on its seed corpus alone
(the first seconds, before it mutates): the ratio says how much deeper the mutated
inputs reach (longer scripts, sessions that run).
Usage: nice python bench/bench_fw_fuzz.py [SECONDS]
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

from _common import report

FIRMWARE = Path(__file__).resolve().parents[1] / "firmware"
SECONDS = int(sys.argv[1]) if len(sys.argv) > 1 else 600


def run(seconds: int) -> tuple[str, float]:
    t0 = time.perf_counter()
    proc = subprocess.run(
        ["make", "-s", "-C", str(FIRMWARE), "fuzz", f"FUZZ_SECONDS={seconds}"],
        capture_output=True,
        text=True,
        timeout=seconds + 600,
    )
    out = proc.stdout + proc.stderr
    if proc.returncode != 0:
        print(out[-4000:])
        raise SystemExit(f"fuzzing found something (exit {proc.returncode}): see above")
    return out, time.perf_counter() - t0


def stat(out: str, name: str) -> int:
    m = re.search(rf"stat::{name}:\s+(\d+)", out)
    return int(m.group(1)) if m else -1


def main() -> None:
    for old in (FIRMWARE / "build").glob("fuzz-crash-*"):
        old.unlink()
    base, _ = run(5)
    out, wall = run(SECONDS)
    cov = re.findall(r"cov: (\d+) ft: (\d+)", out)
    corpus = len(list((FIRMWARE / "build" / "fuzz-corpus").iterdir()))
    report(
        "fw fuzz",
        seconds=SECONDS,
        wall_s=round(wall, 1),
        runs=stat(out, "number_of_executed_units"),
        exec_per_s=stat(out, "average_exec_per_sec"),
        baseline_exec_per_s=stat(base, "average_exec_per_sec"),
        coverage_edges=cov[-1][0] if cov else "?",
        features=cov[-1][1] if cov else "?",
        corpus=corpus,
        peak_rss_mb=stat(out, "peak_rss_mb"),
        findings=len(list((FIRMWARE / "build").glob("fuzz-crash-*"))),
    )


if __name__ == "__main__":
    main()

"""The fault explorer at scale: seeds per second and violations over a big seed range.

    nice python bench/bench_explore.py --seeds 20000 --jobs 2

Target (issue 7): >= 20,000 seeds with 0 violations. Baseline in the same run: plain
sessions per second, one 60 s session of a generated protocol through the same host code
(Cap, SessionRunner, a SQLite log) on the same in-process simulator at 2 Hz telemetry,
with no faults, events or checks: what one seed would cost if it did nothing but run a
session. Prints a report line and, for every violating seed, its replay command.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _common import report

PLAIN = """format = "lllt-protocol/1"
id = "bench-plain"
name = "plain session"
references = ["bench"]

[[phases]]
name = "treatment"
duration = "60 s"
emit = { "655nm" = "5 mW/cm^2" }
"""


def plain_sessions_per_s(n: int) -> float:
    from lllt import clock
    from lllt.device import Cap
    from lllt.protocol import loads_protocol
    from lllt.session import RunOptions, SessionRunner
    from lllt.store import Store

    proto = loads_protocol(PLAIN)

    async def one(db: Path, seed: int) -> None:
        store = Store.open(db)
        try:
            async with Cap.connect(f"sim://reference-cap?speed=max&seed={seed}") as cap:
                runner = SessionRunner(
                    cap, store, proto, protocol_text=PLAIN, options=RunOptions(telemetry_hz=2.0)
                )
                out = await runner.run()
                assert out.status == "completed", out.to_dict()
        finally:
            store.close()

    with tempfile.TemporaryDirectory(dir="/dev/shm" if Path("/dev/shm").is_dir() else None) as d:
        t = time.perf_counter()
        for i in range(n):
            clock.run(one(Path(d) / f"{i}.db", i), virtual=True)
        return n / (time.perf_counter() - t)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20000)
    ap.add_argument("--from", dest="first", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--baseline", type=int, default=40, help="plain sessions to time")
    args = ap.parse_args()

    from lllt.explore import explore

    base = plain_sessions_per_s(args.baseline)
    t = time.perf_counter()
    bad = []
    sessions = runs = 0
    kinds: dict[str, int] = {}
    for rep in explore(range(args.first, args.first + args.seeds), jobs=args.jobs):
        sessions += rep.sessions
        runs += rep.runs
        if rep.violations:
            bad.append(rep)
            for v in rep.violations:
                kinds[v.invariant] = kinds.get(v.invariant, 0) + 1
            print(f"seed {rep.seed}: {rep.violations[0]}  (replay: {rep.replay})", flush=True)
    wall = time.perf_counter() - t
    rate = args.seeds / wall
    report(
        "bench_explore",
        seeds=args.seeds,
        first=args.first,
        jobs=args.jobs,
        wall_s=round(wall, 1),
        seeds_per_s=round(rate, 2),
        host_runs=runs,
        device_sessions=sessions,
        violating_seeds=len(bad),
        by_invariant=kinds or "none",
        plain_sessions_per_s=round(base, 2),
        seeds_per_plain_session=round(rate / base, 2),
    )
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())

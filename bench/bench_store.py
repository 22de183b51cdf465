"""Benchmark: the session log's cost per telemetry frame, and writing a whole session.

A 25-minute session at 10 Hz is 15,000 frames, and `lllt run` at speed=max must finish
in under 2 s of wall time, so the log may add only a few µs per frame. Figures:

- baseline: appending each frame to a Python list (the least any recorder can do);
- recorder: ``SessionRecorder.sample`` for every frame, plus a few events, including the
  batches it commits along the way (what the runner pays inside its loop);
- session: the whole write, from the session row to the final durable commit;
- naive: one INSERT and COMMIT per frame (what the batching avoids), on 1,500 frames.

Relative figures are ratios against the baseline measured in the same run. Usage:
``python bench/bench_store.py [--dir DIR] [--repeat N]`` (DIR: where the temporary logs
go; the default temporary folder may be a RAM disk, which flatters every commit).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

from lllt import wire
from lllt.info import DeviceInfo
from lllt.store import ChannelRef, PhasePlan, SessionStart, Status, Store

FRAMES = 15_000  # 25 min at 10 Hz
PERIOD_S = 0.1
T0 = 1_750_000_000.0
EVENTS = {3000: "derate", 3010: "DERATE", 9000: "HEAD", 9050: "HEAD", 14_990: "SESSION_END"}


def make_frames() -> list[wire.Telemetry]:
    """A plausible session: two steps, rising temperatures, counters growing."""
    frames = []
    for i in range(FRAMES):
        t_s = i * PERIOD_S
        f = round(3.0 * t_s / 1000.0, 6)
        frames.append(
            wire.Telemetry(
                time_ms=5_000 + i * 100,
                boot_count=1,
                state=wire.State.RUNNING,
                step=0 if t_s < 60 else 1,
                plan_id=1,
                flags=wire.TelemetryFlag.EMITTING | wire.TelemetryFlag.HEAD_PRESENT,
                derate_permille=1000 if i < 3000 else 900,
                supply_mv=5000,
                elapsed_ms=i * 100,
                step_elapsed_ms=0,
                setpoint=(3.0, 0.0) * 4,
                irradiance=(2.98, 0.0, 3.01, 0.0, 2.99, 0.0, 3.02, 0.0),
                fluence=(f, 0.0) * 4,
                temperature=(34.0 + t_s / 600, 34.2, 34.4, 34.1),
                ambient=25.0,
            )
        )
    return frames


def session_start() -> SessionStart:
    dev = DeviceInfo.for_profile("reference-cap")
    return SessionStart(
        protocol_id="bench",
        protocol_name="bench",
        protocol_text="# bench\n" * 20,
        device_serial=dev.serial,
        device_model=dev.model,
        device_url="sim://reference-cap?speed=max",
        simulated=True,
        channels=tuple(
            ChannelRef(c.id, c.wavelength_nm, dev.zone_name(c.zone)) for c in dev.channels
        ),
        zones=tuple(z.name for z in dev.zones),
        phases=(
            PhasePlan("warmup", "duration", 60.0, 60.0, {655: 0.18}),
            PhasePlan("treatment", "duration", 1440.0, 1440.0, {655: 4.32}),
        ),
        planned_fluence_j_cm2={655: 4.5},
        expected_duration_s=1500.0,
        max_duration_s=1500.0,
        min_interval_s=36 * 3600.0,
        max_sessions_per_week=4,
        plan_id=1,
        cutoff_c=dev.limits.cutoff_c,
        sensor_uncertainty_c=dev.limits.sensor_uncertainty_c,
    )


def bench_baseline(frames: list[wire.Telemetry]) -> float:
    out: list[tuple[float, wire.Telemetry]] = []
    append = out.append
    start = time.perf_counter()
    for i, tel in enumerate(frames):
        append((T0 + i * PERIOD_S, tel))
    return time.perf_counter() - start


def bench_session(frames: list[wire.Telemetry], folder: Path) -> tuple[float, float, dict]:
    """(seconds in the per-frame loop, seconds for the whole session, facts)."""
    path = folder / f"bench-{time.perf_counter_ns()}.db"
    whole = time.perf_counter()
    store = Store.open(path)
    rec = store.begin_session(session_start(), created_at=T0 - 1)
    rec.started(T0, plan_id=1)
    sample, event = rec.sample, rec.event
    loop = time.perf_counter()
    for i, tel in enumerate(frames):
        t = T0 + i * PERIOD_S
        sample(t, tel)
        kind = EVENTS.get(i)
        if kind is not None:
            event(t, kind, {"frame": i})
    loop = time.perf_counter() - loop
    row = rec.finish(
        T0 + FRAMES * PERIOD_S, status=Status.COMPLETED, outcome="completed", exit_code=0
    )
    store.close()
    whole = time.perf_counter() - whole
    conn = sqlite3.connect(path)
    kept = conn.execute("SELECT count(*) FROM telemetry").fetchone()[0]
    conn.close()
    facts = {
        "telemetry_rows": kept,
        "events": len(EVENTS),
        "db_bytes": sum(p.stat().st_size for p in folder.iterdir() if p.name.startswith(path.name)),
        "delivered_655": row.delivered_fluence.get(655),
    }
    return loop, whole, facts


def bench_naive(frames: list[wire.Telemetry], folder: Path, n: int = 1500) -> float:
    """Per-frame seconds with one transaction per frame (what batching avoids)."""
    path = folder / "naive.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE t (t REAL, state INT, irr TEXT, fl TEXT, temp TEXT)")
    start = time.perf_counter()
    for i, tel in enumerate(frames[:n]):
        conn.execute("BEGIN")
        conn.execute(
            "INSERT INTO t VALUES (?, ?, ?, ?, ?)",
            (
                T0 + i * PERIOD_S,
                int(tel.state),
                json.dumps(tel.irradiance),
                json.dumps(tel.fluence),
                json.dumps(tel.temperature),
            ),
        )
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=None, help="folder for the temporary logs")
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="lllt-bench-", dir=args.dir))
    try:
        frames = make_frames()
        base = min(bench_baseline(frames) for _ in range(args.repeat))
        runs = [bench_session(frames, folder) for _ in range(args.repeat)]
        loop = min(r[0] for r in runs)
        whole = min(r[1] for r in runs)
        facts = runs[0][2]
        naive = bench_naive(frames, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    us = 1e6 / FRAMES
    print(f"session log benchmark: {FRAMES} frames (25 min at 10 Hz), {len(EVENTS)} events")
    print(f"  log folder: {folder.parent} (pid {os.getpid()})")
    print(f"  baseline (list.append):        {base * us:7.3f} µs/frame")
    print(
        f"  recorder.sample (+ batches):   {loop * us:7.3f} µs/frame  "
        f"= {loop / base:5.1f} x baseline"
    )
    print(
        f"  whole session write:           {whole * 1e3:7.1f} ms  "
        f"({whole * us:.3f} µs/frame, {whole / base:.1f} x baseline)"
    )
    print(
        f"  naive (1 commit per frame):    {naive * 1e6:7.3f} µs/frame  "
        f"= {naive / (loop / FRAMES):5.1f} x the recorder"
    )
    print(
        f"  kept {facts['telemetry_rows']} telemetry rows of {FRAMES} "
        f"({facts['telemetry_rows'] / FRAMES:.1%}); log size {facts['db_bytes'] / 1024:.0f} KiB; "
        f"delivered 655 nm {facts['delivered_655']} J/cm²"
    )


if __name__ == "__main__":
    main()

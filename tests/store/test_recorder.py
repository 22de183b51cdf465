"""SessionRecorder: which telemetry is kept, when it is committed, phases and progress."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from lllt import wire
from lllt.errors import StoreError
from lllt.store import Kept, SessionStart, Status, Store

from ._support import T0, FakeWall, frame, session_start


def _committed(db_path: Path, sql: str) -> list[tuple[object, ...]]:
    """What another process would see: only committed rows."""
    conn = sqlite3.connect(db_path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_keeps_1hz_plus_every_sample_within_2s_of_an_event(store: Store) -> None:
    rec = store.begin_session(session_start(), created_at=T0)
    rec.started(T0, plan_id=7)
    n = 600  # 60 s at 10 Hz
    times = [T0 + i * 0.1 for i in range(n)]
    # events half-way between frames, so that no sample sits on a window's edge
    event_times = [T0 + 20.05, T0 + 41.35, T0 + 42.05]
    pending = list(event_times)
    for i, t in enumerate(times):
        while pending and pending[0] < t:
            rec.event(pending.pop(0), "marker")
        rec.sample(t, frame(i, total_s=60.0, steps_s=60.0))
    row = rec.finish(times[-1], status=Status.COMPLETED, outcome="completed", exit_code=0)

    expected: dict[int, str] = {}
    for i, t in enumerate(times):
        if i % 10 == 0:
            expected[i] = Kept.PERIODIC
        elif any(abs(t - te) <= 2.0 for te in event_times):
            expected[i] = Kept.EVENT
    expected.setdefault(n - 1, Kept.LAST)

    kept = {round((r.t - T0) * 10): r.kept for r in store.telemetry(row.id)}
    assert len(store.telemetry(row.id)) == len(kept)  # no sample twice
    assert kept == expected
    assert [e.kind for e in store.events(row.id)] == ["marker"] * 3


def test_commits_in_batches_not_per_frame(db_path: Path, store: Store) -> None:
    wall = FakeWall()
    rec = store.begin_session(session_start(), created_at=T0, wall_clock=wall)
    rec.started(T0, plan_id=7)
    count = "SELECT count(*) FROM telemetry"
    for i in range(50):
        rec.sample(T0 + i * 0.1, frame(i))
    assert _committed(db_path, count) == [(0,)]  # buffered: less than a wall second passed
    wall.t += 1.0
    rec.sample(T0 + 5.0, frame(50))
    assert _committed(db_path, count) == [(6,)]  # frames 0, 10, ..., 50
    rec.sample(T0 + 5.1, frame(51))
    rec.event(T0 + 5.15, "derate", {"permille": 900})  # an event commits at once
    assert _committed(db_path, "SELECT kind FROM events") == [("derate",)]
    # and the samples of the 2 s before it: frames 32..51 join 0, 10, 20, 30
    assert _committed(db_path, count) == [(len({0, 10, 20, 30, *range(32, 52)}),)]


def test_phases_follow_the_step_index_with_fluence_and_derating(store: Store) -> None:
    rec = store.begin_session(session_start(), created_at=T0)
    rec.started(T0, plan_id=7)
    for i in range(320):
        derate = 800 if 150 <= i < 200 else 1000  # derated in the treatment phase only
        rec.sample(T0 + i * 0.1, frame(i, derate=derate))
    row = rec.finish(T0 + 32, status=Status.COMPLETED, outcome="completed", exit_code=0)
    warmup, treatment = store.phases(row.id)
    assert (warmup.name, warmup.started_at, warmup.ended_at) == ("warmup", T0, T0 + 10.0)
    assert (treatment.started_at, treatment.ended_at) == (T0 + 10.0, T0 + 30.0)
    assert warmup.delivered_fluence[655] == pytest.approx(0.03)
    assert treatment.delivered_fluence[655] == pytest.approx(0.06)
    assert warmup.planned_fluence == {655: 0.03}
    assert (warmup.derated, treatment.derated) == (False, True)
    assert treatment.min_derate_permille == 800
    assert row.derated and row.min_derate_permille == 800
    assert row.delivered_fluence[655] == pytest.approx(0.09)


def test_partial_fluence_reaches_the_session_row_while_running(db_path: Path, store: Store) -> None:
    wall = FakeWall()
    rec = store.begin_session(session_start(), created_at=T0, wall_clock=wall)
    # telemetry of another plan before ours was loaded does not count
    rec.sample(T0 - 1.0, frame(200, plan_id=3))
    rec.started(T0, plan_id=7)
    for i in range(150):
        rec.sample(T0 + i * 0.1, frame(i))
    wall.t += 1.0
    rec.sample(T0 + 15.0, frame(150))
    (stored,) = _committed(db_path, "SELECT delivered_fluence_json, status FROM sessions")
    assert stored == ('{"655": 0.045, "735": 0.0}', "running")


def test_a_device_reboot_never_lowers_the_delivered_fluence(store: Store) -> None:
    rec = store.begin_session(session_start(), created_at=T0)
    rec.started(T0, plan_id=7)
    for i in range(101):
        rec.sample(T0 + i * 0.1, frame(i))
    rec.flush()
    # after a reboot the device's counters start again from zero
    rec.sample(T0 + 11.0, frame(0))
    row = rec.finish(T0 + 12, status=Status.FAILED, outcome="power loss", exit_code=3)
    assert row.delivered_fluence[655] == pytest.approx(0.03)


def test_device_events_are_kept_in_full_with_names(store: Store) -> None:
    rec = store.begin_session(session_start(), created_at=T0)
    rec.device_event(
        T0 + 3,
        wire.Event(12_345, wire.EventKind.INTERLOCK, wire.Interlock.THERMAL_CUTOFF, 2, 4301, 4250),
    )
    rec.device_event(T0 + 4, wire.Event(12_400, wire.EventKind.SESSION_END, 3, 1, 9000, 7))
    row = rec.finish(T0 + 5, status=Status.ABORTED, outcome="interlock", exit_code=1)
    first, second = store.events(row.id)
    assert (first.source, first.kind, first.device_ms) == ("device", "INTERLOCK", 12_345)
    assert first.data == {
        "a": 1,
        "b": 2,
        "value": 4301,
        "limit": 4250,
        "interlock": "thermal_cutoff",
    }
    assert second.data["outcome"] == "interlock"
    assert second.data["reason"] == "thermal_cutoff"


def test_a_failed_batch_is_kept_and_retried_without_disturbing_the_caller(
    db_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    wall = FakeWall()
    rec = store.begin_session(session_start(), created_at=T0, wall_clock=wall)
    rec.started(T0, plan_id=7)
    real_write = Store._write

    @contextlib.contextmanager
    def full_disk(self: Store, *, durable: bool = False) -> Iterator[sqlite3.Connection]:
        raise StoreError("disk full")
        yield  # pragma: no cover

    monkeypatch.setattr(Store, "_write", full_disk)
    for i in range(30):
        rec.sample(T0 + i * 0.1, frame(i))
    rec.event(T0 + 2.95, "derate")  # the commit fails: no exception here
    assert isinstance(rec.write_error, StoreError)
    with pytest.raises(StoreError):
        rec.flush()  # an explicit flush says so
    monkeypatch.setattr(Store, "_write", real_write)
    wall.t += 1.0
    rec.sample(T0 + 3.0, frame(30))
    assert rec.write_error is None
    # frame 0 (1 Hz), 10..29 (the event's 2 s before), 30 (1 Hz and its 2 s after)
    assert _committed(db_path, "SELECT count(*) FROM telemetry") == [(len({0, *range(10, 31)}),)]
    assert _committed(db_path, "SELECT kind FROM events") == [("derate",)]


def test_finish_refuses_a_status_that_is_not_final(store: Store) -> None:
    rec = store.begin_session(session_start(), created_at=T0)
    with pytest.raises(ValueError, match="cannot finish"):
        rec.finish(T0, status=Status.RUNNING, outcome="", exit_code=0)
    with pytest.raises(ValueError, match="unknown session status"):
        rec.finish(T0, status="exploded", outcome="", exit_code=0)


def test_session_row_is_written_before_start_and_updated(db_path: Path, store: Store) -> None:
    rec = store.begin_session(session_start(), created_at=T0)
    assert _committed(db_path, "SELECT status, started_at FROM sessions") == [("pending", None)]
    assert _committed(db_path, "SELECT count(*) FROM phases") == [(2,)]
    rec.started(T0 + 1, plan_id=7)
    assert _committed(db_path, "SELECT status, started_at FROM sessions") == [("running", T0 + 1)]


def test_finish_counts_the_frames_since_the_last_batch(store: Store) -> None:
    wall = FakeWall()  # never advances: no timed batch at all
    rec = store.begin_session(session_start(), created_at=T0, wall_clock=wall)
    rec.started(T0, plan_id=7)
    for i in range(151):  # the last batch was at the step change, frame 100
        rec.sample(T0 + i * 0.1, frame(i))
    row = rec.finish(T0 + 15.1, status=Status.STOPPED, outcome="stopped", exit_code=130)
    assert row.delivered_fluence[655] == pytest.approx(0.045)  # frame 150's counters
    assert row.actual_duration_s == 15.0  # the device's running time


def test_a_new_recorder_carries_on_a_session(store: Store) -> None:
    whole = store.begin_session(session_start(), created_at=T0)
    whole.started(T0, plan_id=7)
    for i in range(320):
        whole.sample(T0 + i * 0.1, frame(i, derate=700 if i == 50 else 1000))
    expected = whole.finish(T0 + 32, status=Status.COMPLETED, outcome="completed", exit_code=0)

    first = store.begin_session(session_start(), created_at=T0)
    first.started(T0, plan_id=7)
    for i in range(150):  # into the treatment phase, then the link drops
        first.sample(T0 + i * 0.1, frame(i, derate=700 if i == 50 else 1000))
    first.flush()
    second = store.recorder(first.session_id)
    for i in range(180, 320):  # reconnected 3 s later
        second.sample(T0 + i * 0.1, frame(i))
    row = second.finish(T0 + 32, status=Status.COMPLETED, outcome="completed", exit_code=0)

    assert row.delivered_fluence == expected.delivered_fluence
    assert (row.derated, row.min_derate_permille) == (True, 700)
    got = [(p.started_at, p.ended_at, p.delivered_fluence) for p in store.phases(row.id)]
    want = [(p.started_at, p.ended_at, p.delivered_fluence) for p in store.phases(expected.id)]
    assert got == want


def test_session_start_from_a_compiled_plan() -> None:
    from lllt.info import DeviceInfo
    from lllt.plan import compile as compile_plan
    from lllt.protocol import loads_protocol

    from ._support import PROTOCOL_TEXT

    plan = compile_plan(loads_protocol(PROTOCOL_TEXT), DeviceInfo.for_profile("reference-cap"))
    got = SessionStart.from_plan(
        plan,
        protocol_text=PROTOCOL_TEXT,
        device_url="sim://reference-cap?speed=max",
        plan_id=7,
        limits={"max_fluence_j_cm2": 10.0},
    )
    # the hand-written start of these tests describes the same session
    assert got == session_start()

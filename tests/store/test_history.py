"""History queries for preflight and `lllt history`: windows, real vs simulated, next session."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from lllt.store import DAY_S, DEFAULT_MIN_INTERVAL_S, Status, Store

from ._support import T0, frame, record_session, session_start

NOW = T0 + 10 * DAY_S
H = 3600.0
PER_SESSION = 0.09  # J/cm² at 655 nm of a whole _support session (30 s at 3 mW/cm²)


def _kill_owner(db_path: Path, session_id: int) -> None:
    conn = sqlite3.connect(db_path)
    conn.execute(
        "UPDATE sessions SET host_pid = 999999999, host_token = 'gone:999999999:1' WHERE id = ?",
        (session_id,),
    )
    conn.commit()
    conn.close()


@pytest.fixture
def populated(db_path: Path, store: Store) -> Store:
    # simulated: one outside the week, one in the week, one in the last day
    record_session(store, NOW - 8 * DAY_S)
    record_session(store, NOW - 3 * DAY_S)
    record_session(store, NOW - 2 * H)
    # real: one in the week, one interrupted an hour ago after 10 s, one that never started
    record_session(store, NOW - 30 * H, simulated=False, serial="CAP-1")
    rec = store.begin_session(session_start(simulated=False, serial="CAP-1"), created_at=NOW - H)
    rec.started(NOW - H, plan_id=7)
    for i in range(101):
        rec.sample(NOW - H + i * 0.1, frame(i))
    rec.flush()
    _kill_owner(db_path, rec.session_id)
    assert store.mark_interrupted(NOW) == [rec.session_id]
    never = store.begin_session(
        session_start(simulated=False, serial="CAP-1"), created_at=NOW - 600
    )
    never.finish(NOW - 590, status=Status.FAILED, outcome="upload refused", exit_code=3)
    return store


def test_fluence_windows_are_per_kind_of_device(populated: Store) -> None:
    sim = populated.history_summary(NOW, simulated=True)
    assert sim.fluence_24h[655] == pytest.approx(PER_SESSION)
    assert sim.fluence_7d[655] == pytest.approx(2 * PER_SESSION)
    assert sim.sessions_7d == 2
    real = populated.history_summary(NOW, simulated=False)
    # the interrupted session counts with the fluence it had reached (10 s: 0.03 J/cm²)
    assert real.fluence_24h[655] == pytest.approx(0.03)
    assert real.fluence_7d[655] == pytest.approx(PER_SESSION + 0.03)
    assert real.sessions_7d == 2  # the session that never started does not count
    assert populated.fluence_since(NOW - DAY_S, simulated=True)[655] == pytest.approx(PER_SESSION)
    assert populated.sessions_since(NOW - 7 * DAY_S, simulated=False) == 2


def test_next_session_waits_for_the_protocol_interval_after_the_last_end(
    populated: Store,
) -> None:
    sim = populated.history_summary(NOW, simulated=True)
    last_end = NOW - 2 * H + 35.0
    assert sim.last_end == pytest.approx(last_end)
    assert populated.last_session_end(simulated=True) == pytest.approx(last_end)
    assert sim.min_interval_s == 36 * H
    assert not sim.allowed_now
    assert sim.next_allowed_at == pytest.approx(last_end + 36 * H)
    assert "minimum interval 36 h" in sim.next_allowed_basis
    # an interrupted session may have run its plan to the end on the device
    real = populated.history_summary(NOW, simulated=False)
    assert real.last_end == pytest.approx(NOW - H + 30.0)


def test_the_default_interval_applies_when_the_protocol_asks_for_less(store: Store) -> None:
    record_session(store, NOW - 2 * H, min_interval_s=6 * H)
    s = store.history_summary(NOW, simulated=True)
    assert s.min_interval_s == DEFAULT_MIN_INTERVAL_S == 12 * H
    assert s.next_allowed_at == pytest.approx(NOW - 2 * H + 35.0 + 12 * H)
    record_session(store, NOW - 1 * H, min_interval_s=None)
    assert store.history_summary(NOW, simulated=True).min_interval_s == 12 * H


def test_allowed_now_once_the_interval_has_passed(store: Store) -> None:
    record_session(store, NOW - 40 * H)
    s = store.history_summary(NOW, simulated=True)
    assert s.allowed_now and s.next_allowed_at is None and s.next_allowed_basis == ""


def test_a_full_week_waits_for_its_oldest_session_to_leave_the_window(store: Store) -> None:
    starts = [NOW - 6.5 * DAY_S, NOW - 5 * DAY_S, NOW - 3.5 * DAY_S, NOW - 2 * DAY_S]
    for t in starts:
        record_session(store, t, max_sessions_per_week=4)
    s = store.history_summary(NOW, simulated=True)
    assert s.sessions_7d == 4
    assert s.next_allowed_at == pytest.approx(starts[0] + 7 * DAY_S)
    assert "4 sessions in the last 7 days" in s.next_allowed_basis


def test_a_session_overlapping_the_window_edge_counts(store: Store) -> None:
    record_session(store, NOW - DAY_S - 10.0)  # started before the window, ended inside it
    assert store.history_summary(NOW, simulated=True).fluence_24h[655] == pytest.approx(PER_SESSION)


def test_an_empty_log_allows_a_session_now(store: Store) -> None:
    s = store.history_summary(NOW, simulated=False)
    assert s.allowed_now and s.last_end is None and s.fluence_7d == {}
    assert store.last_session(simulated=False) is None

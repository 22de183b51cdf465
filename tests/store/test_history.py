"""History facts for preflight and `lllt history`: windows, real vs simulated, next session."""

from __future__ import annotations

import json
import sqlite3
import time
from datetime import datetime
from pathlib import Path

import pytest

from lllt.cli import app
from lllt.cli._app import run_app
from lllt.safety import DEFAULT_LIMITS, ScheduleRules, StoreHistory, next_session_allowed_at
from lllt.store import Status, Store

from ._support import T0, frame, record_session, session_start

DAY = 86400.0
NOW = T0 + 10 * DAY
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
    record_session(store, NOW - 8 * DAY)
    record_session(store, NOW - 3 * DAY)
    record_session(store, NOW - 2 * H)
    # real: one in the week, one interrupted an hour ago after 10 s, one that never started
    record_session(store, NOW - 30 * H, simulated=False, serial="CAP-1", min_interval_s=48 * H)
    rec = store.begin_session(
        session_start(simulated=False, serial="CAP-1", min_interval_s=20 * H), created_at=NOW - H
    )
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
    assert populated.fluence_since(NOW - DAY, simulated=True)[655] == pytest.approx(PER_SESSION)
    assert populated.fluence_since(NOW - 7 * DAY, simulated=True)[655] == pytest.approx(
        2 * PER_SESSION
    )
    # the interrupted session counts with the fluence it had reached (10 s: 0.03 J/cm²)
    assert populated.fluence_since(NOW - DAY, simulated=False)[655] == pytest.approx(0.03)
    assert populated.fluence_since(NOW - 7 * DAY, simulated=False)[655] == pytest.approx(
        PER_SESSION + 0.03
    )


def test_sessions_count_once_they_may_have_emitted(populated: Store) -> None:
    real = populated.sessions_since(NOW - 7 * DAY, simulated=False)
    assert [r.status for r in real] == [Status.COMPLETED, Status.INTERRUPTED]  # not the failed
    assert len(populated.sessions_since(NOW - 7 * DAY, simulated=True)) == 2


def test_last_session_end_and_interval(populated: Store) -> None:
    assert populated.last_session_end(simulated=True) == pytest.approx(NOW - 2 * H + 35.0)
    assert populated.last_min_interval_s(simulated=True) == 36 * H
    # a session its host lost may have run its plan to the end on the device
    assert populated.last_session_end(simulated=False) == pytest.approx(NOW - H + 30.0)
    assert populated.last_min_interval_s(simulated=False) == 20 * H


def test_a_session_overlapping_the_window_edge_counts(store: Store) -> None:
    record_session(store, NOW - DAY - 10.0)  # started before the window, ended inside it
    assert store.fluence_since(NOW - DAY, simulated=True)[655] == pytest.approx(PER_SESSION)


def test_an_empty_log(store: Store) -> None:
    assert store.fluence_since(NOW - DAY, simulated=False) == {}
    assert store.last_session(simulated=False) is None
    assert store.last_session_end(simulated=False) is None
    assert store.last_min_interval_s(simulated=False) is None


def test_preflight_reads_the_log_through_store_history(populated: Store) -> None:
    """The safety module's view of this log: the interface it relies on is honoured."""
    hist = StoreHistory(populated, simulated=False)
    assert hist.last_session_end() == pytest.approx(NOW - H + 30.0)
    assert hist.last_min_interval_s() == 20 * H
    assert len(hist.sessions_since(NOW - 7 * DAY)) == 2


# --- `lllt history`: totals and the next session, as preflight weighs them -------------------


def _history_json(db: Path, capsys: pytest.CaptureFixture[str]) -> dict:  # type: ignore[type-arg]
    assert run_app(app, ["history", "--db", str(db), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def test_next_session_waits_for_the_protocol_interval(
    db_path: Path, store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    now = time.time()
    record_session(store, now - 2 * H)  # 36 h protocol, ended 2 h ago
    data = _history_json(db_path, capsys)
    sim = data["next_allowed"]["simulated"]
    assert sim["now"] is False
    assert _epoch(sim["at"]) == pytest.approx(now - 2 * H + 35.0 + 36 * H, abs=2.0)
    assert "minimum interval 36 h" in sim["basis"]
    assert data["next_allowed"]["real"] == {"now": True, "at": None, "basis": ""}
    assert data["totals"]["simulated"]["24h"]["655"] == pytest.approx(PER_SESSION)
    assert data["totals"]["real"]["24h"] == {}
    # the same answer as preflight's own rule
    expected = next_session_allowed_at(
        StoreHistory(store, simulated=True),
        DEFAULT_LIMITS,
        now,
        ScheduleRules(min_interval_s=36 * H, max_sessions_per_week=4),
    )
    assert _epoch(sim["at"]) == pytest.approx(expected, abs=2.0)


def test_the_default_interval_applies_when_the_protocol_asks_for_less(
    db_path: Path, store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    now = time.time()
    record_session(store, now - 2 * H, min_interval_s=6 * H)
    sim = _history_json(db_path, capsys)["next_allowed"]["simulated"]
    assert _epoch(sim["at"]) == pytest.approx(now - 2 * H + 35.0 + 12 * H, abs=2.0)


def test_allowed_now_once_the_interval_has_passed(
    db_path: Path, store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    record_session(store, time.time() - 40 * H)
    assert _history_json(db_path, capsys)["next_allowed"]["simulated"]["now"] is True


def test_a_full_week_waits_for_its_oldest_session(
    db_path: Path, store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    now = time.time()
    ends = [now - d * DAY for d in (6.5, 5.0, 3.5, 2.0)]
    for end in ends:
        record_session(store, end - 35.0, max_sessions_per_week=4)
    sim = _history_json(db_path, capsys)["next_allowed"]["simulated"]
    assert _epoch(sim["at"]) == pytest.approx(ends[0] + 7 * DAY, abs=2.0)
    assert "4 sessions in the last 7 days (at most 4)" in sim["basis"]

"""Sessions whose host died: marked ``interrupted`` by the next process, then reconciled."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lllt import wire
from lllt.errors import StoreError
from lllt.store import HOST_NAME, Status, Store

from ._support import T0, frame, record_session, session_start

TESTS = Path(__file__).resolve().parents[1]


def _set_owner(db_path: Path, session_id: int, **cols: object) -> None:
    conn = sqlite3.connect(db_path)
    sets = ", ".join(f"{k} = ?" for k in cols)
    conn.execute(f"UPDATE sessions SET {sets} WHERE id = ?", (*cols.values(), session_id))
    conn.commit()
    conn.close()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_host_killed_mid_session_leaves_a_row_the_next_process_marks(db_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        sys.path.insert(0, {str(TESTS)!r})
        from store._support import T0, frame, session_start
        from lllt.store import Store
        store = Store.open({str(db_path)!r})
        rec = store.begin_session(session_start(), created_at=T0)
        rec.started(T0, plan_id=7)
        for i in range(151):
            rec.sample(T0 + i * 0.1, frame(i))
        rec.flush()  # a batch reached the log, as one does every wall second
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    with Store.open(db_path) as store:
        (before,) = store.sessions()
        assert before.status == Status.RUNNING
        assert store.mark_interrupted(T0 + 60) == [before.id]
        row = store.session(before.id)
    assert row.status == Status.INTERRUPTED
    assert row.interrupted_at == T0 + 60
    assert "ended while the session was running" in row.note
    assert row.delivered_fluence[655] == pytest.approx(0.045)  # frame 150: 15 s at 3 mW/cm²


def test_a_live_process_keeps_its_sessions(store: Store) -> None:
    rec = store.begin_session(session_start(), created_at=T0)
    rec.started(T0, plan_id=7)
    assert store.mark_interrupted(T0 + 10_000) == []
    assert store.session(rec.session_id).status == Status.RUNNING


def test_a_dead_pid_on_this_host_is_interrupted(db_path: Path, store: Store) -> None:
    rec = store.begin_session(session_start(), created_at=T0)  # still pending
    pid = _dead_pid()
    _set_owner(db_path, rec.session_id, host_pid=pid, host_token=f"boot:{pid}:123")
    assert store.mark_interrupted(T0 + 5) == [rec.session_id]
    row = store.session(rec.session_id)
    assert row.status == Status.INTERRUPTED
    assert "was pending" in row.note


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_a_reused_pid_is_not_taken_for_the_owner(db_path: Path, store: Store) -> None:
    rec = store.begin_session(session_start(), created_at=T0)
    rec.started(T0, plan_id=7)
    # our own pid, but a process that started at another time: the owner is gone
    _set_owner(db_path, rec.session_id, host_token=f"otherboot:{os.getpid()}:1")
    assert store.mark_interrupted(T0 + 5) == [rec.session_id]


def test_a_session_of_another_host_is_interrupted_only_when_stale(
    db_path: Path, store: Store
) -> None:
    fresh = store.begin_session(session_start(), created_at=T0)
    stale = store.begin_session(session_start(), created_at=T0 - 7200)
    assert HOST_NAME != "elsewhere"
    _set_owner(db_path, fresh.session_id, host_name="elsewhere", heartbeat_at=T0)
    _set_owner(db_path, stale.session_id, host_name="elsewhere", heartbeat_at=T0 - 7200)
    assert store.mark_interrupted(T0 + 60, stale_after_s=3600) == [stale.session_id]


def test_finished_sessions_are_never_marked(db_path: Path, store: Store) -> None:
    row = record_session(store)
    _set_owner(db_path, row.id, host_pid=_dead_pid(), host_token="boot:1:1")
    assert store.mark_interrupted(T0 + 10_000) == []
    assert store.session(row.id).status == Status.COMPLETED


def _interrupted(db_path: Path, store: Store, *, serial: str = "CAP-1", frames: int = 101) -> int:
    rec = store.begin_session(session_start(serial=serial, simulated=False), created_at=T0)
    rec.started(T0, plan_id=7)
    for i in range(frames):
        rec.sample(T0 + i * 0.1, frame(i))
    rec.flush()
    pid = _dead_pid()
    _set_owner(db_path, rec.session_id, host_pid=pid, host_token=f"boot:{pid}:1")
    store.mark_interrupted(T0 + 100)
    return rec.session_id


def test_reconciliation_from_the_device_record(db_path: Path, store: Store) -> None:
    sid = _interrupted(db_path, store)
    other = _interrupted(db_path, store, serial="CAP-2")
    assert [r.id for r in store.pending_reconciliation("CAP-1")] == [sid]
    assert store.session(sid).delivered_fluence[655] == pytest.approx(0.03)  # partial
    record = wire.SessionRecord(
        plan_id=7,
        boot_count=1,
        start_ms=10_000,
        end_ms=40_000,
        outcome=wire.Outcome.COMPLETED,
        reason=0,
        emitting_ms=30_000,
        fluence=(0.09, 0.0, 0.09, 0.0, 0.0899, 0.0, 0.09, 0.0),
    )
    row = store.reconcile_from_record(
        sid, record, reconciled_at=T0 + 500, started_at=T0, ended_at=T0 + 30
    )
    assert row.status == Status.RECONCILED
    assert row.outcome == "completed"
    assert row.delivered_fluence == {655: 0.09, 735: 0.0}
    assert row.delivered_by_channel[4] == 0.0899
    assert row.ended_at == T0 + 30 and row.reconciled_at == T0 + 500
    assert row.actual_duration_s == 30.0
    assert "ended while the session was running" in row.note  # the host's loss is kept
    assert "reconciled" in row.note
    assert row.device_record["outcome"] == "COMPLETED"
    assert store.events(sid)[-1].kind == "reconciled"
    assert store.pending_reconciliation("CAP-1") == []
    assert [r.id for r in store.pending_reconciliation("CAP-2")] == [other]
    with pytest.raises(StoreError, match="not interrupted"):
        store.reconcile_from_record(
            sid, record, reconciled_at=T0 + 600, started_at=T0, ended_at=T0 + 30
        )


def test_reconciling_an_interlock_keeps_its_reason(db_path: Path, store: Store) -> None:
    sid = _interrupted(db_path, store)
    record = wire.SessionRecord(
        7, 1, 10_000, 25_000, wire.Outcome.INTERLOCK, wire.Interlock.THERMAL_CUTOFF, 15_000,
        (0.045,) * 8,
    )  # fmt: skip
    row = store.reconcile_from_record(
        sid, record, reconciled_at=T0 + 500, started_at=T0, ended_at=T0 + 15
    )
    assert (row.outcome, row.reason) == ("interlock", "thermal_cutoff")


def test_a_record_with_the_wrong_channel_count_is_refused(db_path: Path, store: Store) -> None:
    sid = _interrupted(db_path, store)
    with pytest.raises(StoreError, match="3 fluence values for 8 channels"):
        store.reconcile(
            sid,
            outcome="completed",
            delivered_by_channel=[0.1, 0.1, 0.1],
            ended_at=T0 + 30,
            reconciled_at=T0 + 40,
            note="x",
        )
    assert store.session(sid).status == Status.INTERRUPTED


def test_a_session_the_runner_gives_up_on_awaits_reconciliation(store: Store) -> None:
    rec = store.begin_session(session_start(serial="CAP-3"), created_at=T0)
    rec.started(T0, plan_id=7)
    for i in range(51):
        rec.sample(T0 + i * 0.1, frame(i))
    # the link was lost and no reconnect succeeded: the device may still be running
    row = rec.finish(
        T0 + 60, status=Status.INTERRUPTED, outcome="link lost", reason="no reply", exit_code=3
    )
    assert row.ended_at is None and row.interrupted_at == T0 + 60
    assert row.effective_end == T0 + 60  # the later of the plan's end (T0+30) and last word
    assert [r.id for r in store.pending_reconciliation("CAP-3")] == [row.id]

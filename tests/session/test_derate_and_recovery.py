"""Derating on a warm scalp, a host killed mid-session, Ctrl-C over a serial link."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from lllt.session import run_protocol
from lllt.store import Store

from .conftest import LLLT, history, lllt, write_protocol


def test_fluence_phase_at_34_degrees_is_derated_and_still_reaches_its_target(
    tmp_path: Path,
) -> None:
    proto = write_protocol(
        tmp_path / "warm.toml",
        duration=None,
        fluence="8 J/cm^2",
        max_duration="40 min",
        emit='"655nm" = "10 mW/cm^2"',
    )
    db = tmp_path / "log.db"
    outcome = run_protocol(proto, "sim://reference-cap?speed=max&ambient=34", db=db)
    assert outcome.status == "completed", outcome.to_dict()
    assert outcome.derated and outcome.min_derate_permille < 1000
    assert outcome.delivered_fluence[655] == pytest.approx(8.0, rel=0.01)
    # derating stretched the phase beyond its undisturbed 800 s
    assert outcome.duration_s is not None and outcome.duration_s > 800 * 1.05
    with Store.open(db, create=False) as store:
        (row,) = store.sessions()
        events = store.events(row.id)
        (phase,) = store.phases(row.id)
    assert row.derated and row.min_derate_permille == outcome.min_derate_permille
    assert phase.derated
    assert any(e.kind == "monitor_derate" for e in events)
    assert any(e.kind == "DERATE" for e in events)  # and the device acknowledged it


def test_same_phase_at_25_degrees_is_not_derated(tmp_path: Path) -> None:
    proto = write_protocol(
        tmp_path / "cool.toml",
        duration=None,
        fluence="8 J/cm^2",
        max_duration="40 min",
        emit='"655nm" = "10 mW/cm^2"',
    )
    outcome = run_protocol(proto, "sim://reference-cap?speed=max&ambient=25", db=tmp_path / "d")
    assert outcome.status == "completed" and not outcome.derated
    assert outcome.delivered_fluence[655] == pytest.approx(8.0, rel=0.01)


def _wait_for_line(proc: subprocess.Popen[str], word: str, timeout: float = 20.0) -> None:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if word in line:
            return
        if not line and proc.poll() is not None:
            break
    raise AssertionError(f"{word!r} never appeared")


def test_host_killed_mid_session_is_interrupted_then_reconciled(
    tmp_path: Path, served_pty: object
) -> None:
    server = served_pty("--speed", "20")  # type: ignore[operator]
    proto = write_protocol(tmp_path / "p.toml", duration="1 min")  # 3 s of wall time at 20x
    db = tmp_path / "log.db"
    run = subprocess.Popen(
        [*LLLT, "run", str(proto), "--device", server.url, "--db", str(db), "--yes"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for_line(run, "started")
    time.sleep(1.0)  # wall time: the served device runs 20 s of its session meanwhile
    run.kill()
    run.communicate()

    (row,) = history(db)["sessions"]
    assert row["status"] == "interrupted"
    partial = row["delivered_fluence_j_cm2"]["655"]
    assert 0 < partial < row["planned_fluence_j_cm2"]["655"]

    # the device runs the finite plan to its end by itself (policy finish); the next
    # connection reads its record and settles the session
    deadline = time.monotonic() + 20
    while True:
        out = lllt("history", "--db", str(db), "--device", server.url, "--json")
        assert out.returncode == 0, out.stderr
        (row,) = json.loads(out.stdout)["sessions"]
        if row["status"] == "reconciled" or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert row["status"] == "reconciled"
    assert row["outcome"] == "completed"
    assert row["delivered_fluence_j_cm2"]["655"] == pytest.approx(0.18, rel=0.01)
    assert "lost" in row["note"]


def test_ctrl_c_over_a_served_pty_stops_with_the_emitters_off(
    tmp_path: Path, served_pty: object
) -> None:
    server = served_pty("--speed", "1")  # type: ignore[operator]
    proto = write_protocol(tmp_path / "p.toml", duration="5 min")
    db = tmp_path / "log.db"
    run = subprocess.Popen(
        [*LLLT, "run", str(proto), "--device", server.url, "--db", str(db), "--yes"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for_line(run, "started")
    time.sleep(0.5)
    run.send_signal(signal.SIGINT)
    _, err = run.communicate(timeout=10)
    assert run.returncode == 130, err
    assert "Traceback" not in err
    assert "emitters are confirmed off" in err
    with Store.open(db, create=False) as store:
        (row,) = store.sessions()
        events = store.events(row.id)
    assert row.status.value == "stopped"
    assert any(e.kind == "emitters_off_confirmed" for e in events)
    end = next(e for e in events if e.kind == "SESSION_END")
    assert end.data["outcome"] == "aborted" and end.data["reason"] == "user"

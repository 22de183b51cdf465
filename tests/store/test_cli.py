"""`lllt history`, `lllt export` (as subprocesses: exit codes, no tracebacks) and `lllt report`."""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from lllt.cli import app
from lllt.cli._app import run_app
from lllt.report import DPI, HEIGHT_IN, WIDTH_IN
from lllt.store import SCHEMA_VERSION, Status, Store

from ._support import T0, record_session, session_start


def lllt(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k != "LLLT_DB"}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "lllt", *args],
        capture_output=True,
        text=True,
        check=False,
        env=full_env,
    )


def _no_traceback(proc: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in proc.stderr + proc.stdout


@pytest.fixture
def log(db_path: Path) -> Path:
    with Store.open(db_path) as s:
        record_session(s, T0, events=[(105, "derate")])
        record_session(s, T0 + 3600, simulated=False, serial="CAP-1", status=Status.ABORTED)
    return db_path


def test_history_json(log: Path) -> None:
    proc = lllt("history", "--db", str(log), "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    newest, oldest = data["sessions"]
    assert (newest["status"], newest["simulated"], newest["device_serial"]) == (
        "aborted",
        False,
        "CAP-1",
    )
    assert oldest["delivered_fluence_j_cm2"]["655"] == pytest.approx(0.09)
    assert oldest["planned_fluence_j_cm2"] == {"655": 0.09}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", oldest["ended_at"])
    for key in ("id", "protocol_id", "outcome", "started_at", "derated", "reason"):
        assert key in oldest
    assert set(data["totals"]) == set(data["next_allowed"]) == {"real", "simulated"}
    assert data["next_allowed"]["real"]["now"] is True  # these sessions are long past


def test_history_text_marks_dead_hosts_sessions_interrupted(log: Path) -> None:
    with Store.open(log) as s:
        rec = s.begin_session(session_start(), created_at=T0 + 7200)
        rec.started(T0 + 7200, plan_id=7)
    conn = sqlite3.connect(log)
    conn.execute("UPDATE sessions SET host_pid = 999999999, host_token = 'x:999999999:1'")
    conn.commit()
    conn.close()
    proc = lllt("history", "--db", str(log), "--limit", "2")
    assert proc.returncode == 0, proc.stderr
    assert "interrupted" in proc.stdout
    assert "Sessions, newest first (2 of 3)" in proc.stdout
    assert "Real devices:" in proc.stdout and "Simulated devices:" in proc.stdout
    assert "next session: now" in proc.stdout


def test_history_of_a_missing_log_is_refused_and_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "sessions.db"
    proc = lllt("history", env={"LLLT_DB": str(missing)})
    assert proc.returncode == 2, proc.stderr
    assert f"there is no session log at {missing}" in proc.stderr
    assert "lllt run" in proc.stderr
    assert not missing.parent.exists()


def test_export_csv_and_json(log: Path, tmp_path: Path) -> None:
    proc = lllt("export", "--db", str(log), "--format", "csv")
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    assert [r["status"] for r in rows] == ["completed", "aborted"]
    out = tmp_path / "all.json"
    proc = lllt("export", "--db", str(log), "-o", str(out), "--since", "2025-06-15T16:00Z")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    assert [s["status"] for s in data["sessions"]] == ["aborted"]  # T0 + 1 h only


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--format", "xml"], "Expected --format csv or --format json"),
        (["--format", "csv", "--since", "yesterday"], "a duration such as 7d"),
        ([], "give --format csv or --format json"),
    ],
)
def test_export_bad_input_exits_2(log: Path, args: list[str], expected: str) -> None:
    proc = lllt("export", "--db", str(log), *args)
    assert proc.returncode == 2
    assert expected in proc.stderr
    _no_traceback(proc)


def test_a_file_that_is_not_sqlite_exits_2_with_advice(tmp_path: Path) -> None:
    bad = tmp_path / "sessions.db"
    bad.write_bytes(b"garbage" * 1000)
    proc = lllt("history", "--db", str(bad))
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"error: {bad} is not an lllt session log")
    assert "--db" in proc.stderr
    _no_traceback(proc)


def test_a_newer_log_exits_3_saying_upgrade(db_path: Path) -> None:
    Store.open(db_path).close()
    conn = sqlite3.connect(db_path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    conn.commit()
    conn.close()
    proc = lllt("export", "--db", str(db_path), "--format", "json")
    assert proc.returncode == 3
    assert "Upgrade lllt" in proc.stderr
    _no_traceback(proc)


# --- report (in-process: matplotlib is the slow part, not the CLI) -----------------------


def test_report_png_decodes_with_the_expected_size(
    log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from PIL import Image

    out = tmp_path / "session.png"
    assert run_app(app, ["report", "2", "-o", str(out), "--db", str(log)]) == 0
    with Image.open(out) as img:
        assert img.format == "PNG"
        assert img.size == (round(WIDTH_IN * DPI), round(HEIGHT_IN * DPI))
        img.load()  # the whole image decodes
        # something was drawn: not a blank canvas
        colors = img.convert("RGB").getcolors(maxcolors=1 << 20)
        assert colors is not None and len(colors) > 10


def test_report_html_embeds_the_png_and_tables(
    log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "session.html"
    assert run_app(app, ["report", "1", "-o", str(out), "--db", str(log)]) == 0
    page = out.read_text()
    m = re.search(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert m is not None
    assert base64.b64decode(m.group(1)).startswith(b"\x89PNG\r\n\x1a\n")
    for text in ("warmup", "treatment", "derate", "test-red", "completed"):
        assert text in page


def test_report_of_an_unknown_session_exits_2_naming_it(
    log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "x.png"
    assert run_app(app, ["report", "42", "-o", str(out), "--db", str(log)]) == 2
    assert "no session 42" in capsys.readouterr().err
    assert not out.exists()


def test_report_to_an_unknown_file_type_exits_2(
    log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_app(app, ["report", "1", "-o", str(tmp_path / "x.pdf"), "--db", str(log)]) == 2
    assert "FILE.png or FILE.html" in capsys.readouterr().err


def test_report_of_a_session_without_telemetry(store: Store, tmp_path: Path) -> None:
    from lllt.report import write_report

    rec = store.begin_session(session_start(), created_at=T0)
    rec.finish(T0 + 1, status=Status.FAILED, outcome="upload refused", exit_code=3)
    out = write_report(store, "last", tmp_path / "failed.html")
    page = out.read_text()
    assert "upload refused" in page and "data:image/png;base64," in page

"""Courses: stages in the schedule, the course status, and course simulation.

Acceptance (issue 10): a schedule can have stages and a course length; ``lllt course``
shows sessions done and due, adherence, dose per week, next allowed and next due;
``lllt course simulate`` runs a whole course on the virtual calendar without touching the
person's own log (the 26-week benchmark is ``bench/bench_course_simulate.py``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lllt.course import DAY, WEEK, SessionEntry, course_status, due_offsets
from lllt.errors import FileFormatError, InvalidInput
from lllt.protocol import load_protocol, loads_protocol, shipped_dir
from lllt.store import Store

REPO = Path(__file__).resolve().parents[2]

TAPER = """
format = "lllt-protocol/1"
id = "taper"
name = "tapering clinic regimen"
[schedule]
min_interval = "12 h"
course = "14 weeks"
[[schedule.stages]]
every = "3.5 d"
length = "8 weeks"
[[schedule.stages]]
every = "1 week"
length = "4 weeks"
[[schedule.stages]]
every = "2 weeks"
length = "2 weeks"
[[phases]]
name = "treatment"
duration = "20 min"
emit = { "655nm" = "2 mW/cm^2" }
[provenance]
"schedule.stages[1].every" = { kind = "published", source = "JMIR Dermatology 2024" }
"""


def lllt(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lllt", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


def test_a_tapering_course_has_its_stages_and_sessions() -> None:
    protocol = loads_protocol(TAPER)
    offsets = due_offsets(protocol)
    assert len(offsets) == 16 + 4 + 1
    assert offsets[16] == 8 * WEEK and offsets[20] == 12 * WEEK
    assert offsets[1] == 3.5 * DAY
    # provenance reaches the stages' numbers
    assert "schedule.stages[2].length" in protocol.numbers()


def test_stages_that_disagree_with_the_course_or_hold_no_session_are_refused() -> None:
    with pytest.raises(FileFormatError, match="the stages last 14 weeks but the course is"):
        loads_protocol(TAPER.replace('course = "14 weeks"', 'course = "16 weeks"'))
    with pytest.raises(FileFormatError, match="would hold no session"):
        loads_protocol(TAPER.replace('every = "2 weeks"', 'every = "3 weeks"'))


def test_a_course_from_the_weekly_count_and_length() -> None:
    protocol = load_protocol(shipped_dir() / "aga-red-3x-week-15min.toml")
    offsets = due_offsets(protocol)
    assert len(offsets) == 78  # 26 weeks x 3
    assert offsets[1] == pytest.approx(WEEK / 3)
    research = load_protocol(shipped_dir() / "research-far-red-735nm.toml")
    with pytest.raises(InvalidInput, match="gives no course length"):
        due_offsets(research)


def test_status_counts_done_due_adherence_and_dose() -> None:
    protocol = load_protocol(shipped_dir() / "aga-red-3x-week-15min.toml")
    start = 1_800_000_000.0
    every = WEEK / 3
    sessions = [
        SessionEntry(start + k * every, "completed", {655: 4.475})
        for k in range(6)
        if k != 3  # one missed
    ] + [SessionEntry(start + 6 * every, "aborted", {655: 1.0})]
    now = start + 6 * every + 3600
    status = course_status(protocol, sessions, now, next_allowed=now + 10)
    assert (status.sessions_done, status.sessions_due, status.sessions_planned) == (5, 7, 78)
    assert status.sessions_incomplete == 1
    assert status.adherence == pytest.approx(5 / 7)
    assert status.cumulative_j_cm2[655] == pytest.approx(5 * 4.475 + 1.0)
    # the last 7 days: sessions 4 (k=4), 5, and the aborted one (k=3 was missed)
    assert status.last_7_days_j_cm2[655] == pytest.approx(2 * 4.475 + 1.0)
    assert status.next_due == pytest.approx(start + 5 * every)  # the 6th done is due next
    assert status.weeks == [(3, 3), (2, 3), (0, 1)]  # k=3 missed, k=6 aborted


def test_lllt_course_shows_the_course_of_the_log(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    run = lllt(
        "run", "aga-red-3x-week-15min", "--device", "sim://reference-cap?speed=max",
        "--db", str(db), "--yes",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    out = lllt("course", "--db", str(db), "--simulated")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "course of aga-red-3x-week-15min" in text
    assert "1 done of 1 due so far (78 in the course)" in text
    assert "adherence: 100 %" in text
    assert "655 nm 4.4" in text  # the dose of the session (derating may shave it)
    assert "next due:" in text and "next allowed:" in text
    data = json.loads(lllt("course", "--db", str(db), "--simulated", "--json").stdout)
    assert data["sessions_done"] == 1 and data["next_allowed"] > data["now"]


def test_lllt_course_on_a_missing_or_empty_log_is_one_line(tmp_path: Path) -> None:
    out = lllt("course", "--db", str(tmp_path / "missing.db"))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "there is no session log at" in out.stderr and "lllt run" in out.stderr
    empty = tmp_path / "empty.db"
    Store.open(empty, create=True).close()
    out = lllt("course", "--db", str(empty))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "no sessions yet" in out.stderr and "--protocol" in out.stderr


SHORT = """
format = "lllt-protocol/1"
id = "short-course"
name = "short course"
[schedule]
min_interval = "36 h"
max_sessions_per_week = 3
course = "2 weeks"
[[phases]]
name = "treatment"
duration = "5 min"
ramp = "10 s"
emit = { "655nm" = "3 mW/cm^2" }
"""


def test_simulate_runs_the_course_on_the_virtual_calendar_and_not_in_the_own_log(
    tmp_path: Path,
) -> None:
    own = tmp_path / "own.db"
    path = tmp_path / "short.toml"
    path.write_text(SHORT, encoding="utf-8")
    report = tmp_path / "report.json"
    out = lllt(
        "course", "simulate", str(path), "--sim", "sim://reference-cap?speed=max",
        "--seed", "3", "--miss", "0.3", "--report", str(report),
        env={"LLLT_DB": str(own)},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert not own.exists()  # the person's log is never touched
    data = json.loads(report.read_text(encoding="utf-8"))
    assert data["sessions_planned"] == 6 and len(data["sessions"]) == 6
    assert data["sessions_completed"] + data["sessions_missed"] == 6
    assert 0 < data["sessions_missed"] < 6  # drawn from the seed
    assert data["cumulative_fluence_j_cm2"]["655"] == pytest.approx(
        data["sessions_completed"] * 3 * (300 - 5) / 1000, rel=0.05
    )
    starts = [s["due"] for s in data["sessions"]]
    assert starts[-1] - starts[0] == pytest.approx(5 * WEEK / 3)  # the virtual calendar
    # the same seed gives the same course
    again = lllt(
        "course", "simulate", str(path), "--sim", "sim://reference-cap?speed=max",
        "--seed", "3", "--miss", "0.3", "--json",
    )  # fmt: skip
    statuses = [s["status"] for s in json.loads(again.stdout)["sessions"]]
    assert statuses == [s["status"] for s in data["sessions"]]


def test_simulate_refuses_the_own_log_and_a_real_device(tmp_path: Path) -> None:
    own = tmp_path / "own.db"
    out = lllt(
        "course", "simulate", "aga-red-eod-25min", "--log", str(own), env={"LLLT_DB": str(own)},
    )  # fmt: skip
    assert out.returncode == 2 and "your own session log" in out.stderr
    assert not own.exists()
    out = lllt("course", "simulate", "aga-red-eod-25min", "--sim", "serial:///dev/null")
    assert out.returncode == 2 and "in-process simulator" in out.stderr
    assert "Traceback" not in out.stderr
    out = lllt("course", "simulate", "aga-red-eod-25min", "--sim", "sim://reference-cap",
               "--miss", "2")  # fmt: skip
    assert out.returncode == 2 and "not a probability" in out.stderr

"""One summary for every way `lllt run` ends, in text and as one JSON object."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

LLLT = [sys.executable, "-m", "lllt"]
KEYS = {"session_id", "status", "outcome", "exit_code", "planned_fluence_j_cm2",
        "delivered_fluence_j_cm2", "log", "next_allowed"}  # fmt: skip


def run_json(*args: str) -> tuple[int, dict[str, Any], str]:
    out = subprocess.run(
        [*LLLT, "run", *args, "--yes", "--json"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert "Traceback" not in out.stderr, out.stderr
    return out.returncode, json.loads(out.stdout), out.stderr


def test_completed(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    code, data, _ = run_json("aga-red-eod-25min", "-d", "sim://reference-cap?speed=max",
                             "--db", str(db))  # fmt: skip
    assert code == 0 and set(data) >= KEYS
    assert data["status"] == "completed" and data["session_id"] == 1
    assert abs(data["delivered_fluence_j_cm2"]["655"] - 0.5232) < 0.001
    assert data["next_allowed"]["now"] is False and data["next_allowed"]["at"]


def test_refused_carries_the_reasons_and_the_next_time(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    args = ("aga-red-eod-25min", "-d", "sim://reference-cap?speed=max", "--db", str(db))
    run_json(*args)
    code, data, stderr = run_json(*args)
    assert code == 1 and set(data) >= KEYS
    assert data["outcome"] == "refused" and data["session_id"] is None
    assert [r["constraint"] for r in data["reasons"]] == ["session_spacing"]
    assert data["next_allowed"]["at"]
    assert "preflight refused" in stderr  # the one-line message still goes to stderr


def test_device_error_is_one_object(tmp_path: Path) -> None:
    code, data, _ = run_json("aga-red-eod-25min", "-d", "socket://127.0.0.1:1",
                             "--db", str(tmp_path / "log.db"))  # fmt: skip
    assert code == 3 and set(data) >= KEYS
    assert data["status"] == "not_started" and data["error"]["error"]


def test_bad_input_is_one_object(tmp_path: Path) -> None:
    code, data, _ = run_json("missing.toml", "-d", "sim://reference-cap")
    assert code == 2 and data["exit_code"] == 2 and data["error"]["message"]


def _interrupted(tmp_path: Path, *extra: str) -> tuple[int, str]:
    db = tmp_path / "log.db"
    run = subprocess.Popen(
        [*LLLT, "run", "aga-red-eod-25min", "-d", "sim://reference-cap?speed=20", "--db",
         str(db), "--yes", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert run.stderr is not None
    if extra:
        time.sleep(2.0)
    else:
        assert run.stdout is not None
        while "started" not in run.stdout.readline():
            pass
        time.sleep(1.0)
    os.kill(run.pid, signal.SIGINT)
    out, err = run.communicate(timeout=20)
    assert "Traceback" not in err, err
    return run.returncode, out


def test_ctrl_c_mid_session_prints_the_partial_dose_id_and_next_time(tmp_path: Path) -> None:
    code, out = _interrupted(tmp_path)
    assert code == 130, out
    assert "session 1: stopped" in out
    delivered = out.split("delivered 655 nm ", 1)[1].split(" ", 1)[0]
    assert 0 < float(delivered) < 4.4
    assert "next session: not before" in out


def test_ctrl_c_mid_session_json(tmp_path: Path) -> None:
    code, out = _interrupted(tmp_path, "--json")
    assert code == 130, out
    data = json.loads(out)
    assert data["session_id"] == 1 and data["status"] == "stopped"
    assert 0 < data["delivered_fluence_j_cm2"]["655"] < 4.4
    assert data["next_allowed"]["at"]

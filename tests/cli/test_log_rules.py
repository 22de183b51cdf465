"""Which log `lllt run` writes, who may create one, and what reading commands refuse."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

LLLT = [sys.executable, "-m", "lllt"]
URL = "sim://reference-cap?speed=max"


def lllt(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "LLLT_DB"}
    out = subprocess.run(
        [*LLLT, *args], capture_output=True, text=True, timeout=60, check=False, cwd=cwd, env=env
    )
    assert "Traceback" not in out.stderr, out.stderr
    return out


def test_run_does_not_create_a_log_in_a_missing_folder(tmp_path: Path) -> None:
    db = tmp_path / "nonexistent" / "dir" / "x.db"
    out = lllt("run", "aga-red-eod-25min", "--device", URL, "--db", str(db), "--yes")
    assert out.returncode == 2
    assert "does not exist" in out.stderr and "mkdir -p" in out.stderr
    assert not db.parent.exists()


def test_run_says_it_creates_the_log_and_names_it_in_the_summary(tmp_path: Path) -> None:
    db = tmp_path / "new.db"
    out = lllt("run", "aga-red-eod-25min", "--device", URL, "--db", str(db), "--yes")
    assert out.returncode == 0, out.stderr
    assert f"creating the session log {db}" in out.stdout
    assert f"log: {db} (created by this run)" in out.stdout
    data = json.loads(
        lllt(
            "run", "aga-red-650-eod", "--device", "sim://led-helmet-rgb?speed=max",
            "--db", str(db), "--yes", "--json",
        ).stdout
    )  # fmt: skip
    assert data["log"] == str(db) and data["log_created"] is False


@pytest.mark.parametrize("command", [["history"], ["export", "--format", "csv"]])
def test_reading_commands_refuse_a_missing_log(tmp_path: Path, command: list[str]) -> None:
    db = tmp_path / "nope.db"
    out = lllt(*command, "--db", str(db))
    assert out.returncode == 2
    assert f"there is no session log at {db}" in out.stderr
    assert not db.exists()


def test_reading_commands_refuse_a_text_file(tmp_path: Path) -> None:
    text = tmp_path / "README.md"
    text.write_text("# not a log\n")
    out = lllt("history", "--db", str(text))
    assert out.returncode == 2
    assert "not an lllt session log" in out.stderr
    assert text.read_text() == "# not a log\n"


def test_reading_commands_and_run_refuse_another_sqlite_file(tmp_path: Path) -> None:
    other = tmp_path / "recipes.db"
    raw = sqlite3.connect(other)
    raw.execute("CREATE TABLE recipes (name TEXT)")
    raw.commit()
    raw.close()
    out = lllt("history", "--db", str(other))
    assert out.returncode == 2 and "not an lllt session log" in out.stderr
    out = lllt("run", "aga-red-eod-25min", "--device", URL, "--db", str(other), "--yes")
    assert out.returncode == 2 and "not an lllt session log" in out.stderr

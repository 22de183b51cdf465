"""The confirm prompt of `lllt run`: on a pseudo-terminal and without one."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest

from ._pty import LLLT, PtyRun

URL = "sim://reference-cap?speed=max"


def _run(*args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(
        [*LLLT, *args], capture_output=True, text=True, timeout=60, check=False, **kw
    )  # type: ignore[call-overload]
    assert "Traceback" not in out.stderr, out.stderr
    return out


def test_no_terminal_and_no_yes_refuses_with_the_way_to_proceed(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    out = _run("run", "aga-red-eod-25min", "--device", URL, "--db", str(db), input="y\n")
    assert out.returncode == 2
    assert "--yes" in out.stderr and "not a terminal" in out.stderr
    assert not db.exists()  # nothing connected, nothing logged


def test_no_terminal_json_refusal_is_one_object(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    out = _run("run", "aga-red-eod-25min", "--device", URL, "--db", str(db), "--json", input="")
    assert out.returncode == 2
    data = json.loads(out.stdout)
    assert data["status"] == "not_started" and data["exit_code"] == 2
    assert "--yes" in data["error"]["advice"]


def test_ctrl_c_at_the_prompt_exits_130_at_once(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    with PtyRun("run", "aga-red-eod-25min", "--device", URL, "--db", str(db)) as run:
        run.read_until("Start the session? [y/N]")
        t0 = time.monotonic()
        run.interrupt()  # one Ctrl-C
        rc = run.wait(10)
        took = time.monotonic() - t0
    assert rc == 130, run.output
    assert took < 5.0, took  # not a wait for a timeout (a loaded machine may be slow)
    assert "nothing was sent to the device" in run.output
    assert not db.exists()  # the log is created only when a session starts


def test_a_ctrl_c_the_read_did_not_see_still_ends_the_prompt(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A SIGINT whose handler is pending while the main thread sits in read() (it landed
    just before the read began, or on another thread) must still end the prompt."""
    import io
    import os
    import signal
    import threading

    from lllt.cli.run_cmds import _ask
    from lllt.errors import UserAborted

    r, w = os.pipe()
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    # the signal goes to this helper thread: the main thread's read is not interrupted
    sender = threading.Thread(
        target=lambda: (time.sleep(0.3), signal.pthread_kill(threading.get_ident(), signal.SIGINT))
    )
    late_line = threading.Timer(4.0, os.write, (w, b"y\n"))  # unblocks a read that waits
    t0 = time.monotonic()
    try:
        with os.fdopen(r, "r") as stdin:
            monkeypatch.setattr("sys.stdin", stdin)
            sender.start()
            late_line.start()
            with pytest.raises(UserAborted, match="stopped by the user at the prompt"):
                _ask("Start the session?", io.StringIO())
            took = time.monotonic() - t0
    finally:
        signal.signal(signal.SIGINT, previous)
        late_line.cancel()
        sender.join()
        os.close(w)
    assert took < 2.0, took  # at once, not when the next line arrives


def test_no_at_the_prompt_starts_nothing(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    with PtyRun("run", "aga-red-eod-25min", "--device", URL, "--db", str(db)) as run:
        run.read_until("[y/N]")
        run.send("n\r")
        rc = run.wait(10)
    assert rc == 130, run.output
    assert "declined" in run.output
    assert not db.exists()


def test_no_simulated_time_runs_while_the_prompt_waits(tmp_path: Path) -> None:
    """At speed=20 a 1.5 s wait at the prompt would be 30 simulated seconds: the session
    must start from zero after the yes (the connection is made only then)."""
    db = tmp_path / "log.db"
    proto = tmp_path / "p.toml"
    proto.write_text(
        'format = "lllt-protocol/1"\nid = "short"\nname = "short"\nreferences = ["t"]\n'
        '[schedule]\nmin_interval = "12 h"\n[[phases]]\nname = "treatment"\n'
        'duration = "3 min"\nemit = { "655nm" = "3 mW/cm^2" }\n'
    )
    url = "sim://reference-cap?speed=20"
    with PtyRun("run", str(proto), "--device", url, "--db", str(db)) as run:
        run.read_until("[y/N]")
        time.sleep(1.5)
        run.send("y\r")
        run.read_until("elapsed")
        run.interrupt()
        rc = run.wait(20)
    assert rc == 130, run.output
    first = re.search(r"(\d+):(\d\d) elapsed", run.output)
    assert first is not None, run.output
    assert int(first[1]) * 60 + int(first[2]) < 20, first[0]  # not 30 s ahead
    from lllt.store import Store

    with Store.open(db, create=False) as store:
        (row,) = store.sessions()
        first_frame = store.telemetry(row.id)[0]
    # the device's own clock starts when it is connected: after the yes, not before
    assert first_frame.device_ms < 15_000, first_frame.device_ms
    # one Ctrl-C mid-session: one summary with the id, the partial dose and the next time
    assert "session 1: stopped" in run.output
    assert "delivered 655 nm" in run.output
    assert "next session: not before" in run.output


def test_yes_at_the_prompt_runs_and_names_the_new_log(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    with PtyRun("run", "aga-red-eod-25min", "--device", URL, "--db", str(db)) as run:
        run.read_until("[y/N]")
        run.send("y\r")
        rc = run.wait(60)
    assert rc == 0, run.output
    assert f"creating the session log {db}" in run.output
    assert "session 1: completed" in run.output
    assert f"log: {db} (created by this run)" in run.output


def test_the_device_is_not_connected_while_the_prompt_waits(tmp_path: Path) -> None:
    """lllt opens serial ports exclusively: while the prompt waits, another program can
    open the cap's port, so lllt does not hold it (it connects again after the yes)."""
    import serial

    from lllt_sim.harness import ServedSimulator

    db = tmp_path / "log.db"
    with ServedSimulator("--pty") as served:
        port = served.url.removeprefix("serial://")
        with PtyRun("run", "aga-red-eod-25min", "--device", served.url, "--db", str(db)) as run:
            run.read_until("[y/N]")
            other = serial.Serial(port, 115200, timeout=0, exclusive=True)  # raises if held
            other.close()
            run.send("n\r")
            rc = run.wait(10)
    assert rc == 130, run.output

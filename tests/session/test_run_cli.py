"""`lllt run` as a device owner runs it, against the in-process simulator."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from lllt.protocol import shipped_protocols

from .conftest import history, lllt, write_protocol

SHIPPED = shipped_protocols()


def _profile(path: Path) -> str:
    return tomllib.loads(path.read_text(encoding="utf-8"))["meta"]["profile"]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_protocol_runs_then_the_interval_refuses_a_second(
    path: Path, tmp_path: Path
) -> None:
    db = tmp_path / "log.db"
    url = f"sim://{_profile(path)}?speed=max"
    extra = ["--research"] if "research" in path.stem else []
    first = lllt("run", str(path), "--device", url, "--db", str(db), "--yes", *extra)
    assert first.returncode == 0, first.stdout + first.stderr

    log = history(db)
    (session,) = log["sessions"]
    assert session["status"] == "completed"
    planned = session["planned_fluence_j_cm2"]
    assert planned, session
    for wl, want in planned.items():
        assert session["delivered_fluence_j_cm2"][wl] == pytest.approx(want, rel=0.01)

    again = lllt("run", str(path), "--device", url, "--db", str(db), "--yes", *extra)
    assert again.returncode == 1
    assert "minimum interval" in again.stderr
    assert "next session is allowed" in again.stderr
    assert len(history(db)["sessions"]) == 1  # nothing was started


def test_research_protocol_needs_the_research_flag(tmp_path: Path) -> None:
    path = next(p for p in SHIPPED if "research" in p.stem)
    out = lllt(
        "run",
        str(path),
        "--device",
        "sim://reference-cap?speed=max",
        "--db",
        str(tmp_path / "db"),
        "--yes",
    )
    assert out.returncode == 1
    assert "research" in out.stderr


def test_overtemp_stops_within_one_tick_and_is_recorded(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    path = next(p for p in SHIPPED if p.stem == "aga-red-eod-25min")
    out = lllt(
        "run",
        str(path),
        "--device",
        "sim://reference-cap?speed=max&faults=overtemp@300s",
        "--db",
        str(db),
        "--yes",
    )
    assert out.returncode == 1, out.stdout + out.stderr
    assert "THERMAL_CUTOFF" in out.stderr

    (session,) = history(db)["sessions"]
    assert session["status"] == "aborted"
    assert "THERMAL_CUTOFF" in session["reason"]
    delivered = session["delivered_fluence_j_cm2"]["655"]
    assert 0 < delivered < session["planned_fluence_j_cm2"]["655"]  # the partial dose

    from lllt.store import Store

    with Store.open(db, create=False) as store:
        events = store.events(session["id"])
        samples = store.telemetry(session["id"])
    trip = next(e for e in events if e.kind == "INTERLOCK")
    end = next(e for e in events if e.kind == "SESSION_END")
    assert trip.device_ms is not None and end.device_ms is not None
    # the session ended (emitters off) in the tick of the trip: within 10 ms of device time
    assert 0 <= end.device_ms - trip.device_ms <= 10
    # the first sample after the trip (the STATUS that confirmed the stop may carry the
    # same device millisecond as the trip itself)
    after = [s for s in samples if s.device_ms >= trip.device_ms and s.state != 2]
    assert after, "telemetry after the trip is kept"
    assert all(v == 0 for v in after[0].irradiance)
    # and it was the device's 0.01 °C reading at the cut-off, 43 °C less the uncertainty
    assert trip.data.get("interlock") == "thermal_cutoff"


def test_limits_file_cannot_raise_a_default(tmp_path: Path) -> None:
    limits = tmp_path / "limits.toml"
    limits.write_text('format = "lllt-limits/1"\nmax_fluence_per_session = "20 J/cm^2"\n')
    proto = write_protocol(tmp_path / "p.toml")
    out = lllt(
        "run",
        str(proto),
        "--device",
        "sim://reference-cap?speed=max",
        "--db",
        str(tmp_path / "db"),
        "--limits",
        str(limits),
        "--yes",
    )
    assert out.returncode == 2
    assert "max_fluence_per_session" in out.stderr and "raise" in out.stderr


def test_limits_file_that_lowers_a_limit_tightens_the_session(tmp_path: Path) -> None:
    limits = tmp_path / "limits.toml"
    limits.write_text('format = "lllt-limits/1"\nmax_irradiance = "2 mW/cm^2"\n')
    proto = write_protocol(tmp_path / "p.toml", duration="2 min")
    db = tmp_path / "db"
    out = lllt(
        "run",
        str(proto),
        "--device",
        "sim://reference-cap?speed=max",
        "--db",
        str(db),
        "--limits",
        str(limits),
        "--yes",
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "tighten" in out.stdout
    (session,) = history(db)["sessions"]
    # 2 mW/cm² for 120 s instead of 3: 0.24 J/cm²
    assert session["delivered_fluence_j_cm2"]["655"] == pytest.approx(0.24, rel=0.01)


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["run", "missing.toml", "--device", "sim://reference-cap"], 2, "missing.toml"),
        (["run", "{proto}", "--device", "bogus://x"], 2, "Expected"),
        (["run", "{proto}", "--device", "sim://no-such-cap"], 2, "profile"),
        (["run", "{proto}", "--device", "sim://reference-cap?speed=fast"], 2, "speed"),
        (["run", "{proto}", "--device", "serial:///dev/does-not-exist"], 3, "no such port"),
        (["run", "{proto}", "--device", "socket://127.0.0.1:1"], 3, "nothing answers"),
        (["run", "{proto}", "--device", "sim://reference-cap", "--policy", "maybe"], 2, "policy"),
    ],
)
def test_bad_input_gives_a_message_and_an_exit_code(
    tmp_path: Path, args: list[str], code: int, words: str
) -> None:
    proto = write_protocol(tmp_path / "p.toml")
    argv = [a.replace("{proto}", str(proto)) for a in args]
    out = lllt(*argv, "--db", str(tmp_path / "db"), "--yes")
    assert out.returncode == code, out.stdout + out.stderr
    assert words in out.stderr

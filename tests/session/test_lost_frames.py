"""Lost frames, signals and racing checks: the findings of the lost-frames review.

Each test names its finding. The CLI ones run the real ``lllt`` in a subprocess, through
``lllt link proxy`` (the link fault layer) in front of ``lllt sim serve --tcp``.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lllt import wire as W
from lllt.errors import PreflightRefused
from lllt.session import RunOptions, run_protocol
from lllt.store import Store
from lllt_sim.harness import ServedSimulator

from .conftest import LLLT, history, lllt, write_protocol

_URL = re.compile(r"socket://\S+")


class Proxy:
    """``lllt link proxy`` in a subprocess in front of ``upstream``."""

    def __init__(self, upstream: str, rules: str) -> None:
        self.proc = subprocess.Popen(
            [*LLLT, "link", "proxy", "--to", upstream, "--faults", rules],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        match = _URL.search(line)
        if match is None:
            self.stop()
            raise RuntimeError(f"lllt link proxy did not say where it listens: {line!r}")
        self.url = match.group(0)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()


@pytest.fixture
def served(tmp_path: Path):  # type: ignore[no-untyped-def]
    started: list[ServedSimulator | Proxy] = []

    def serve(*args: str) -> ServedSimulator:
        srv = ServedSimulator("--tcp", "127.0.0.1:0", *args)
        started.append(srv)
        return srv

    def proxy(upstream: str, rules: str) -> Proxy:
        p = Proxy(upstream, rules)
        started.append(p)
        return p

    serve.proxy = proxy  # type: ignore[attr-defined]
    yield serve
    for s in reversed(started):
        s.stop()


def _run(proto: Path, url: str, db: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return lllt("run", str(proto), "--device", url, "--db", str(db), "--yes", *extra, timeout=90)


# --- finding 1: a lost START reply -------------------------------------------------------


def test_lost_start_reply_in_process_counts_and_the_next_run_is_refused(tmp_path: Path) -> None:
    proto = write_protocol(tmp_path / "p.toml", duration="5 min")
    db = tmp_path / "log.db"
    url = "sim://reference-cap?speed=max&seed=7&link=drop,to=host,type=STARTED"
    outcome = run_protocol(proto, url, db=db)
    assert outcome.status != "failed", outcome.to_dict()
    with Store.open(db, create=False) as store:
        (row,) = store.sessions()
    assert row.counts  # counted unless proven otherwise
    with pytest.raises(PreflightRefused, match="minimum interval"):
        run_protocol(proto, "sim://reference-cap?speed=max&seed=7", db=db)


def test_lost_start_reply_through_the_proxy_then_a_new_run_is_refused(
    tmp_path: Path, served: object
) -> None:
    server = served("--speed", "10")  # type: ignore[operator]
    proxy = served.proxy(server.url, "drop,to=host,type=STARTED")  # type: ignore[attr-defined]
    proto = write_protocol(tmp_path / "p.toml", duration="5 min")
    db = tmp_path / "log.db"
    first = _run(proto, proxy.url, db)
    assert first.returncode == 3, first.stdout + first.stderr
    (row,) = history(db)["sessions"]
    assert row["status"] in ("interrupted", "reconciled"), row
    second = _run(proto, server.url, db)
    assert second.returncode == 1, second.stdout + second.stderr
    assert "minimum interval" in second.stderr


# --- finding 2: a lost ABORT is resent -----------------------------------------------------


def _limits(tmp_path: Path, abort_c: float) -> Path:
    path = tmp_path / "limits.toml"
    path.write_text(
        'format = "lllt-limits/1"\n'
        f'warn_temperature = "{abort_c - 1} degC"\n'
        f'abort_temperature = "{abort_c} degC"\n',
        encoding="utf-8",
    )
    return path


def test_lost_aborts_are_resent_until_the_emitters_are_off(tmp_path: Path) -> None:
    from lllt.safety import load_limits

    proto = write_protocol(tmp_path / "p.toml", duration="20 min")
    db = tmp_path / "log.db"
    # every one of the first client's three tries is lost: only a resend can stop it
    url = "sim://reference-cap?speed=max&faults=overtemp@10s&link=drop,to=device,type=ABORT,n=3"
    limits = load_limits(_limits(tmp_path, 40.0))
    outcome = run_protocol(proto, url, db=db, options=RunOptions(limits=limits))
    assert outcome.status == "aborted", outcome.to_dict()
    assert outcome.emitters_off_confirmed
    with Store.open(db, create=False) as store:
        (row,) = store.sessions()
        events = store.events(row.id)
        samples = store.telemetry(row.id)
    assert any(e.kind == "abort_resent" for e in events)
    end = next(e for e in events if e.kind == "SESSION_END")
    assert end.data["outcome"] == "aborted", end.data  # by the host, before any cut-off
    hottest = max(max(v for v in s.temperature if v is not None) for s in samples)
    assert hottest < 41.0, f"the scalp reading climbed to {hottest} °C"


def test_when_no_abort_gets_through_the_record_says_stop_not_confirmed(tmp_path: Path) -> None:
    proto = write_protocol(tmp_path / "p.toml", duration="20 min")
    db = tmp_path / "log.db"
    from lllt.safety import load_limits

    url = "sim://reference-cap?speed=max&faults=overtemp@10s&link=drop,to=device,type=ABORT"
    options = RunOptions(limits=load_limits(_limits(tmp_path, 40.0)), stop_confirm_s=5.0)
    outcome = run_protocol(proto, url, db=db, options=options)
    assert outcome.status == "interrupted" and not outcome.emitters_off_confirmed
    assert outcome.reason.startswith("stop not confirmed"), outcome.reason
    assert "aborted" not in outcome.status
    with Store.open(db, create=False) as store:
        (row,) = store.sessions()
        events = store.events(row.id)
    assert any(e.kind == "stop_not_confirmed" for e in events)
    assert row.counts


# --- finding 3: SIGTERM, SIGHUP, SIGQUIT stop like Ctrl-C -----------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT])
def test_termination_signals_stop_the_session_like_ctrl_c(
    tmp_path: Path, served: object, sig: signal.Signals
) -> None:
    server = served("--speed", "1")  # type: ignore[operator]
    # and the first ABORT is lost on the way: the stop path resends it
    proxy = served.proxy(server.url, "drop,to=device,type=ABORT,n=1")  # type: ignore[attr-defined]
    proto = write_protocol(tmp_path / "p.toml", duration="5 min")
    db = tmp_path / "log.db"
    run = subprocess.Popen(
        [*LLLT, "run", str(proto), "--device", proxy.url, "--db", str(db), "--yes"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own session: the signal is not ignored
    )
    assert run.stdout is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if "started" in run.stdout.readline():
            break
    time.sleep(0.3)
    run.send_signal(sig)
    _, err = run.communicate(timeout=20)
    assert run.returncode == 130, err
    assert "Traceback" not in err
    assert f"stopped by {sig.name}" in err and "emitters are confirmed off" in err
    with Store.open(db, create=False) as store:
        (row,) = store.sessions()
        events = store.events(row.id)
    assert row.status.value == "stopped"
    assert any(e.kind == "emitters_off_confirmed" for e in events)
    end = next(e for e in events if e.kind == "SESSION_END")
    assert end.data["outcome"] == "aborted"


def test_sigint_stops_the_session_even_when_started_ignored(tmp_path: Path) -> None:
    """A shell script's background job (or a supervisor) starts lllt with SIGINT ignored;
    a SIGINT must still stop the session, not leave the cap running."""
    proto = write_protocol(tmp_path / "p.toml", duration="25 min")
    db = tmp_path / "log.db"
    ignoring = (
        "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
        "os.execv(sys.executable, [sys.executable, '-m', 'lllt', *sys.argv[1:]])"
    )
    url = "sim://reference-cap?speed=20"
    run = subprocess.Popen(
        [sys.executable, "-c", ignoring, "run", str(proto), "--device", url, "--db", str(db),
         "--yes"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert run.stdout is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if "started" in run.stdout.readline():
            break
    time.sleep(0.5)
    run.send_signal(signal.SIGINT)
    try:
        _, err = run.communicate(timeout=20)  # the whole plan would take 75 s
    except subprocess.TimeoutExpired:
        run.kill()
        run.communicate()
        raise AssertionError("SIGINT did nothing: the session ran on") from None
    assert run.returncode == 130, err
    assert "Traceback" not in err
    with Store.open(db, create=False) as store:
        (row,) = store.sessions()
        events = store.events(row.id)
    assert row.status.value == "stopped"
    assert any(e.kind == "emitters_off_confirmed" for e in events)


# --- finding 4: the spacing check and the insert are one transaction ------------------------


def test_a_session_logged_while_the_person_confirms_refuses_the_second(tmp_path: Path) -> None:
    proto = write_protocol(tmp_path / "p.toml", duration="5 min")
    db = tmp_path / "log.db"
    other: list[subprocess.CompletedProcess[str]] = []

    def confirm(result: object) -> bool:
        # while this person reads the preflight, another run on the same log goes through
        other.append(_run(proto, "sim://reference-cap?speed=max", db))
        return True

    with pytest.raises(PreflightRefused, match="minimum interval"):
        run_protocol(
            proto, "sim://reference-cap?speed=max", db=db, options=RunOptions(confirm=confirm)
        )
    assert other and other[0].returncode == 0, other[0].stderr
    assert len(history(db)["sessions"]) == 1


def test_a_pending_row_of_another_run_counts_at_its_planned_dose(tmp_path: Path) -> None:
    from lllt.info import DeviceInfo
    from lllt.plan import compile as compile_plan
    from lllt.protocol import load_protocol
    from lllt.safety import StoreHistory
    from lllt.store import SessionStart

    proto = write_protocol(tmp_path / "p.toml", duration="5 min")
    plan = compile_plan(load_protocol(proto), DeviceInfo.for_profile("reference-cap"))
    start = SessionStart.from_plan(plan, protocol_text="", device_url="sim://x", plan_id=5)
    with Store.open(tmp_path / "log.db") as store:
        store.begin_session(start, created_at=1000.0)  # another run, not started yet
        (past,) = StoreHistory(store, simulated=True).sessions_since(0)
    assert past.fluence_j_cm2[655] == pytest.approx(plan.fluence_by_wavelength()[655])
    assert past.end >= 1000.0 + plan.expected_duration_s


# --- finding 5: the research gate follows the wavelengths ----------------------------------


def test_an_unmarked_735_nm_protocol_needs_research(tmp_path: Path) -> None:
    proto = write_protocol(tmp_path / "p.toml", duration="5 min", emit='"735nm" = "3 mW/cm^2"')
    db = tmp_path / "log.db"
    refused = _run(proto, "sim://reference-cap?speed=max", db)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "735 nm" in refused.stderr and "630-680 nm" in refused.stderr
    assert "--research" in refused.stderr
    allowed = _run(proto, "sim://reference-cap?speed=max", db, "--research")
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr


# --- finding 6: a fresh log on the same cap starts from the cap's records -----------------


def test_a_fresh_log_on_the_same_cap_is_refused(tmp_path: Path, served: object) -> None:
    server = served("--speed", "50", "--state", str(tmp_path / "cap.json"))  # type: ignore[operator]
    proto = write_protocol(tmp_path / "p.toml", duration="1 min")
    first = _run(proto, server.url, tmp_path / "a.db")
    assert first.returncode == 0, first.stdout + first.stderr
    second = _run(proto, server.url, tmp_path / "b.db")
    assert second.returncode == 1, second.stdout + second.stderr
    assert "minimum interval" in second.stderr
    (adopted,) = history(tmp_path / "b.db")["sessions"]
    assert adopted["status"] == "reconciled"
    assert adopted["delivered_fluence_j_cm2"]["655"] > 0.1


# --- finding 7: the end of the reconnect window goes through the stop path -----------------


def test_after_the_reconnect_window_the_host_still_stops_the_cap(tmp_path: Path) -> None:
    proto = write_protocol(tmp_path / "p.toml", duration="20 min")
    db = tmp_path / "log.db"
    # from 30 s on nothing but replies comes back: telemetry, events and HELLO_INFO are lost,
    # so the link looks dead and every reconnect fails; ABORT and its STATUS still pass
    rules = "drop,to=host,type=TELEMETRY|EVENT|HELLO_INFO,at=30s"
    url = f"sim://reference-cap?speed=max&link={rules}"
    outcome = run_protocol(proto, url, db=db, options=RunOptions(reconnect_s=3.0))
    assert outcome.emitters_off_confirmed, outcome.to_dict()
    assert outcome.status == "failed" and outcome.outcome == "telemetry_silent", outcome.to_dict()
    with Store.open(db, create=False) as store:
        (row,) = store.sessions()
    assert row.counts and row.started_at is not None
    assert 0 < outcome.delivered_fluence[655] < 1.0  # stopped near 30 s, not run to the end


# --- finding 12: a per cent sign is only ever the whole unit of a duty cycle ---------------


@pytest.mark.parametrize(
    "emit", ['"655nm" = "3 mW/cm^2 %"', '"655nm" = "300 % mW/cm^2"'], ids=["suffix", "prefix"]
)
def test_per_cent_signs_in_an_irradiance_are_refused_by_the_cli(tmp_path: Path, emit: str) -> None:
    proto = write_protocol(tmp_path / "p.toml", emit=emit)
    out = lllt("protocol", "check", str(proto))
    assert out.returncode == 2, out.stdout + out.stderr
    assert "per cent sign" in out.stdout + out.stderr


def test_the_wire_says_1_1() -> None:
    assert (W.PROTOCOL_MAJOR, W.PROTOCOL_MINOR) == (1, 1)
    assert sys.version_info >= (3, 11)

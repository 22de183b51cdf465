"""A Bluetooth link that drops mid-session (``link_drop``: the simulated cap disconnects
and stops advertising for the window), under each lease policy.

finish: the device runs the plan to its end alone; the host reconnects when the cap
advertises again and the session log shows the complete session with the fluence the
device delivered (from its record). stop: the emitters are off at lease expiry and the
log says why.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lllt import wire as W
from lllt.session import RunOptions, run_protocol
from lllt.store import Store

from .conftest import write_protocol


def _run(tmp_path: Path, faults: str, policy: W.LinkPolicy, mtu: int) -> tuple[object, object]:
    proto = write_protocol(tmp_path / "p.toml", duration="1 min")
    db = tmp_path / "log.db"
    outcome = run_protocol(
        proto,
        f"blesim://reference-cap?speed=max&seed=3&mtu={mtu}&faults={faults}",
        db=db,
        options=RunOptions(policy=policy, reconnect_s=60.0),
        timeout=600.0,
    )
    with Store.open(db, create=False) as store:
        (row,) = store.sessions()
        events = store.events(row.id)
        samples = store.telemetry(row.id)
    return outcome, (row, events, samples)


@pytest.mark.parametrize("mtu", [23, 247])
def test_finish_device_completes_alone_and_the_host_reconciles(tmp_path: Path, mtu: int) -> None:
    # dropped at 40 s for 40 s: the 60-s session ends while the host is away
    outcome, (row, events, samples) = _run(tmp_path, "link_drop@40s+40s", W.LinkPolicy.FINISH, mtu)
    kinds = [e.kind for e in events]
    assert "link_lost" in kinds and "link_restored" in kinds, kinds
    assert outcome.status == "completed", outcome.to_dict()  # type: ignore[attr-defined]
    assert row.status.value == "completed"
    planned = row.planned_fluence[655]
    # the device's account of the whole session: 60 s at 3 mW/cm² = 0.18 J/cm²
    assert row.delivered_fluence[655] == pytest.approx(planned, rel=0.01)
    assert planned == pytest.approx(0.18, rel=0.01)
    _emitters_confirmed_off(outcome, samples)


def test_finish_short_drop_session_continues(tmp_path: Path) -> None:
    outcome, (row, events, samples) = _run(tmp_path, "link_drop@20s+5s", W.LinkPolicy.FINISH, 247)
    kinds = [e.kind for e in events]
    assert "link_lost" in kinds and "link_restored" in kinds, kinds
    assert outcome.status == "completed", outcome.to_dict()  # type: ignore[attr-defined]
    assert row.delivered_fluence[655] == pytest.approx(row.planned_fluence[655], rel=0.01)
    # telemetry came back after the drop (the host supervised the rest of the session)
    assert max(s.elapsed_ms for s in samples) >= 55_000


@pytest.mark.parametrize("mtu", [23, 247])
def test_stop_emitters_off_at_lease_expiry_and_the_log_says_why(tmp_path: Path, mtu: int) -> None:
    outcome, (row, events, samples) = _run(tmp_path, "link_drop@20s+30s", W.LinkPolicy.STOP, mtu)
    assert outcome.status != "completed", outcome.to_dict()  # type: ignore[attr-defined]
    assert outcome.exit_code != 0  # type: ignore[attr-defined]
    assert "lease" in row.reason.lower(), row.reason
    # the device stopped at lease expiry: far less than the plan was delivered, about
    # 20 s of light plus at most the 3-s lease
    delivered = row.delivered_fluence.get(655, 0.0)
    assert 0.05 < delivered < 0.075, delivered
    assert any(e.kind == "link_lost" for e in events)
    _emitters_confirmed_off(outcome, samples)


def _emitters_confirmed_off(outcome: object, samples: list) -> None:  # type: ignore[type-arg]
    """Confirmed on the new connection's telemetry, not assumed from the record."""
    assert outcome.emitters_off_confirmed  # type: ignore[attr-defined]
    last = samples[-1]
    assert not last.flags & W.TelemetryFlag.EMITTING
    assert all(v == 0 for v in last.irradiance)

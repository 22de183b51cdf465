"""Every simulator fault, early, midway and late in a session, ends in its safe state.

A 5-minute session at 3 mW/cm² on reference-cap; each fault triggers 30 s, 150 s or 270 s
after the start. Whatever the fault, the session log must end complete (a final status,
a reason when it did not complete, the delivered dose), the emitters must be off at the
end, the scalp must never have read 43 °C, and no more than the plan may be delivered.
The expected end states are the ones docs/safety.md documents for each fault.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lllt import wire as W
from lllt.session import RunOptions, run_protocol
from lllt.store import Store

from .conftest import write_protocol

MOMENTS = {"early": 30, "middle": 150, "late": 270}

#: fault -> end states it may lead to (docs/safety.md, fault matrix)
EXPECTED: dict[str, set[str]] = {
    "overtemp": {"aborted", "completed"},  # cut-off, or the session ends before it trips
    "thermistor_open": {"aborted"},
    "thermistor_short": {"aborted"},
    "led_open:0": {"aborted"},
    "stuck_on:0": {"aborted"},
    "stuck_on:1": {"aborted"},  # a 735 nm channel the plan keeps dark
    "brownout": {"aborted"},
    "link_drop": {"interrupted"},  # for good: the device finishes the plan alone
    "link_drop+20s": {"completed"},  # back within the reconnect window
    "corrupt:0.002": {"completed"},
    "reboot": {"aborted"},
    "head_off": {"aborted"},  # off the head for good: aborted after 5 min
    "head_off+60s": {"completed"},  # back on after a minute: the session resumes
}

#: the reason an aborted session names
REASON_WORDS = {
    "overtemp": "THERMAL_CUTOFF",
    "thermistor_open": "SENSOR_FAULT",
    "thermistor_short": "SENSOR_FAULT",
    "led_open:0": "",
    "stuck_on:0": "",
    "stuck_on:1": "",
    "brownout": "BROWNOUT",
    "reboot": "reboot",
    "head_off": "HEAD_OFF",
}


def _with_time(fault: str, at: int) -> str:
    name, plus, duration = fault.partition("+")
    return f"{name}@{at}s" + (f"+{duration}" if plus else "")


@pytest.mark.parametrize("moment", list(MOMENTS))
@pytest.mark.parametrize("fault", list(EXPECTED))
def test_fault_ends_in_its_safe_state(fault: str, moment: str, tmp_path: Path) -> None:
    proto = write_protocol(tmp_path / "p.toml", duration="5 min")
    db = tmp_path / "log.db"
    spec = _with_time(fault, MOMENTS[moment])
    outcome = run_protocol(
        proto,
        f"sim://reference-cap?speed=max&seed=3&faults={spec}",
        db=db,
        options=RunOptions(reconnect_s=30.0),
    )
    assert outcome.status in EXPECTED[fault], outcome.to_dict()

    with Store.open(db, create=False) as store:
        (row,) = store.sessions()
        samples = store.telemetry(row.id)
        events = store.events(row.id)
    # the record is complete and final
    assert row.status.value == outcome.status
    assert row.exit_code == outcome.exit_code
    if outcome.status != "completed":
        assert row.reason, "a session that did not complete says why"
        assert outcome.exit_code != 0
    if outcome.status == "aborted" and REASON_WORDS.get(fault):
        assert REASON_WORDS[fault].lower() in row.reason.lower()
    planned = row.planned_fluence[655]
    assert row.delivered_fluence.get(655, 0.0) <= planned * 1.01
    if outcome.status == "completed":
        assert row.delivered_fluence[655] == pytest.approx(planned, rel=0.01)
    # never a reading at or above 43 °C
    temps = [t for s in samples for t in s.temperature if t is not None and 0 < t < 80]
    assert temps and max(temps) < 43.0
    # emitters off at the end: confirmed by telemetry, or the device's own end of session
    if outcome.status != "interrupted":
        assert outcome.emitters_off_confirmed
        last = samples[-1]
        assert not last.flags & W.TelemetryFlag.EMITTING
        assert all(v == 0 for v in last.irradiance)
    assert any(e.kind in ("SESSION_END", "emitters_off_confirmed", "link_lost") for e in events)


def test_a_lost_session_end_is_recognised_from_telemetry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a noisy link SESSION_END may never arrive; telemetry that no longer shows the
    plan running ends the wait, and the device's record says how the session ended."""
    import asyncio

    from lllt.device import Cap
    from lllt.session import Observer

    original = Cap._unsolicited

    def drop_session_end(self: Cap, seq: int, msg: W.Message) -> None:
        if isinstance(msg, W.Event) and msg.kind == W.EventKind.SESSION_END:
            return
        original(self, seq, msg)

    monkeypatch.setattr(Cap, "_unsolicited", drop_session_end)
    ended_at: list[float] = []

    class Clock(Observer):
        def finished(self, outcome: object) -> None:
            ended_at.append(asyncio.get_running_loop().time())

    proto = write_protocol(tmp_path / "p.toml", duration="1 min")
    outcome = run_protocol(
        proto,
        "sim://reference-cap?speed=max",
        db=tmp_path / "db",
        observer=Clock(),
        timeout=600.0,
    )
    assert outcome.status == "completed"
    assert outcome.delivered_fluence[655] == pytest.approx(0.18, rel=0.01)
    assert ended_at and ended_at[0] < 65.0  # within a few frames of the end, in device time

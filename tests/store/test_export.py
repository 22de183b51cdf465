"""Export: what JSON and CSV give back is what the log holds."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime

import pytest

from lllt.cli.session_cmds import parse_since
from lllt.errors import InvalidInput
from lllt.store import Status, Store, export_csv, export_json

from ._support import T0, record_session


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


@pytest.fixture
def two(store: Store) -> Store:
    record_session(store, T0, events=[(105, "derate")])
    record_session(store, T0 + 86400, simulated=False, serial="CAP-1", status=Status.ABORTED)
    return store


def test_json_export_round_trips_sessions_phases_events_and_telemetry(two: Store) -> None:
    data = json.loads(json.dumps(export_json(two)))
    assert data["format"] == "lllt-export/1"
    rows = two.sessions(newest_first=False)
    assert [s["id"] for s in data["sessions"]] == [r.id for r in rows]
    for item, row in zip(data["sessions"], rows, strict=True):
        assert item["status"] == row.status.value
        assert item["simulated"] is row.simulated
        assert item["protocol_text"] == row.protocol_text
        assert {int(k): v for k, v in item["delivered_fluence_j_cm2"].items()} == (
            row.delivered_fluence
        )
        assert _epoch(item["started_at"]) == pytest.approx(row.started_at, abs=1e-3)
        phases = two.phases(row.id)
        assert [p["name"] for p in item["phases"]] == [p.name for p in phases]
        assert [p["delivered_fluence_j_cm2"] for p in item["phases"]] == [
            {str(k): v for k, v in p.delivered_fluence.items()} for p in phases
        ]
        events = two.events(row.id)
        assert [(e["kind"], e["data"]) for e in item["events"]] == [
            (e.kind, e.data) for e in events
        ]
        telemetry = two.telemetry(row.id)
        assert len(item["telemetry"]) == len(telemetry) > 0
        for got, want in zip(item["telemetry"], telemetry, strict=True):
            assert _epoch(got["t"]) == pytest.approx(want.t, abs=1e-3)
            assert got["irradiance_mw_cm2"] == list(want.irradiance)
            assert got["fluence_j_cm2"] == list(want.fluence)
            assert got["temperature_c"] == list(want.temperature)  # None stays null
            assert got["kept"] == want.kept
    assert data["sessions"][0]["events"][0]["kind"] == "derate"


def test_csv_export_has_one_row_per_session_with_flattened_fluence(two: Store) -> None:
    rows = list(csv.DictReader(io.StringIO(export_csv(two))))
    stored = two.sessions(newest_first=False)
    assert [int(r["id"]) for r in rows] == [s.id for s in stored]
    for got, want in zip(rows, stored, strict=True):
        assert float(got["delivered_655nm_j_cm2"]) == want.delivered_fluence[655]
        assert float(got["planned_655nm_j_cm2"]) == want.planned_fluence[655]
        assert got["status"] == want.status.value
        assert got["simulated"] == ("true" if want.simulated else "false")
        assert _epoch(got["ended_at"]) == pytest.approx(want.ended_at, abs=1e-3)
        phases = two.phases(want.id)
        assert [got[f"phase{p.index}_name"] for p in phases] == ["warmup", "treatment"]
        assert [float(got[f"phase{p.index}_delivered_655nm_j_cm2"]) for p in phases] == [
            p.delivered_fluence[655] for p in phases
        ]


def test_since_selects_sessions_created_from_then(two: Store) -> None:
    later = two.sessions()[0]
    assert [s["id"] for s in export_json(two, since=T0 + 3600)["sessions"]] == [later.id]
    rows = list(csv.DictReader(io.StringIO(export_csv(two, since=T0 + 3600))))
    assert [int(r["id"]) for r in rows] == [later.id]
    assert export_csv(two, since=T0 + 10 * 86400).count("\n") == 1  # the header alone


def test_parse_since_durations_and_dates() -> None:
    now = 1_800_000_000.0
    assert parse_since("7d", now) == now - 7 * 86400
    assert parse_since("24h", now) == now - 86400
    assert parse_since("90min", now) == now - 5400
    assert parse_since("2w", now) == now - 14 * 86400
    assert parse_since("2025-01-31", now) == _epoch("2025-01-31T00:00:00+00:00")
    assert parse_since("2025-01-31T08:00Z", now) == _epoch("2025-01-31T08:00:00+00:00")
    assert parse_since("2025-01-31T08:00+02:00", now) == _epoch("2025-01-31T06:00:00+00:00")
    for bad in ("yesterday", "7 days", "-3d", "2025-13-01", ""):
        with pytest.raises(InvalidInput, match="7d"):
            parse_since(bad, now)

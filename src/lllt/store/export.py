"""Exporting the log: JSON and CSV."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    pass
from lllt.store.db import Store
from lllt.store.rows import iso_utc
from lllt.store.schema import SCHEMA_VERSION

EXPORT_FORMAT = "lllt-export/1"

#: session columns of the CSV export, before the per-wavelength and per-phase columns
CSV_COLUMNS = (
    "id",
    "uuid",
    "protocol_id",
    "protocol_name",
    "protocol_sha256",
    "status",
    "outcome",
    "reason",
    "note",
    "exit_code",
    "created_at",
    "started_at",
    "ended_at",
    "duration_s",
    "expected_duration_s",
    "device_serial",
    "device_model",
    "device_url",
    "simulated",
    "research",
    "derated",
    "min_derate_permille",
    "plan_id",
)


def export_json(store: Store, *, since: float | None = None) -> dict[str, Any]:
    """Sessions created at or after ``since`` (oldest first) with phases, events, telemetry."""
    sessions = []
    for row in store.sessions(since=since, newest_first=False):
        item = row.to_dict(full=True)
        item["phases"] = [p.to_dict() for p in store.phases(row.id)]
        item["events"] = [e.to_dict() for e in store.events(row.id)]
        item["telemetry"] = [t.to_dict() for t in store.telemetry(row.id)]
        sessions.append(item)
    return {
        "format": EXPORT_FORMAT,
        "since": iso_utc(since),
        "schema_version": SCHEMA_VERSION,
        "sessions": sessions,
    }


def export_csv(store: Store, *, since: float | None = None) -> str:
    """One row per session; fluence and phases flattened into columns.

    Per wavelength: ``planned_<nm>nm_j_cm2`` and ``delivered_<nm>nm_j_cm2``; per phase i:
    ``phase<i>_name``, ``phase<i>_started_at``, ``phase<i>_ended_at``,
    ``phase<i>_derated`` and ``phase<i>_delivered_<nm>nm_j_cm2``. Columns are the union
    over the exported sessions; a cell a session has no value for is empty.
    """
    import csv

    rows = store.sessions(since=since, newest_first=False)
    phases = {r.id: store.phases(r.id) for r in rows}
    wls = sorted({wl for r in rows for wl in (*r.planned_fluence, *r.delivered_fluence)})
    n_phases = max((len(p) for p in phases.values()), default=0)
    phase_wls = sorted({wl for ps in phases.values() for p in ps for wl in p.delivered_fluence})
    columns = list(CSV_COLUMNS)
    columns += [f"planned_{wl}nm_j_cm2" for wl in wls]
    columns += [f"delivered_{wl}nm_j_cm2" for wl in wls]
    for i in range(n_phases):
        columns += [
            f"phase{i}_name",
            f"phase{i}_started_at",
            f"phase{i}_ended_at",
            f"phase{i}_derated",
        ]
        columns += [f"phase{i}_delivered_{wl}nm_j_cm2" for wl in phase_wls]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        d = r.to_dict(full=True)
        cells: dict[str, Any] = {k: d[k] for k in CSV_COLUMNS}
        for wl in wls:
            cells[f"planned_{wl}nm_j_cm2"] = r.planned_fluence.get(wl, "")
            cells[f"delivered_{wl}nm_j_cm2"] = r.delivered_fluence.get(wl, "")
        for p in phases[r.id]:
            pre = f"phase{p.index}_"
            if f"{pre}name" not in columns:
                continue  # a phase index beyond the union (sparse indices)
            cells[pre + "name"] = p.name
            cells[pre + "started_at"] = iso_utc(p.started_at, ms=True)
            cells[pre + "ended_at"] = iso_utc(p.ended_at, ms=True)
            cells[pre + "derated"] = p.derated
            for wl in phase_wls:
                cells[f"{pre}delivered_{wl}nm_j_cm2"] = p.delivered_fluence.get(wl, "")
        writer.writerow({k: _csv_cell(v) for k, v in cells.items()})
    return out.getvalue()


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value

"""``lllt history``, ``lllt export`` and ``lllt report``: the session log for people.

Each command opens the log (``--db`` > ``LLLT_DB`` > the user data directory), first
marks the sessions whose host process died as ``interrupted`` (every invocation that
opens the log does, so a crash is visible at the next look), then reads. A log that does
not exist yet reads as empty and is not created by these read-only commands.
"""

from __future__ import annotations

import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from lllt.cli._app import app, handle_errors, print_json
from lllt.errors import InvalidInput

if TYPE_CHECKING:
    from lllt.store import HistorySummary, SessionRow, Store

_DB_HELP = "Session log file (default: LLLT_DB, else sessions.db in the user data folder)."
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d|w)\s*$", re.IGNORECASE)
_UNIT_S = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}
SINCE_FORM = (
    "an ISO date or time such as 2025-01-31 or 2025-01-31T08:00Z, "
    "or a duration such as 7d, 24h, 90min"
)
# Annotated options: a Path default built in the signature would be shared between calls
DbOption = Annotated[Path | None, typer.Option("--db", help=_DB_HELP)]


def open_log(db: Path | None, *, create: bool = False) -> Store:
    """Open the log and mark the sessions of dead host processes (DESIGN §8)."""
    from lllt.clock import wall_time
    from lllt.store import Store

    store = Store.open(db, create=create)
    store.mark_interrupted(wall_time())
    return store


def parse_since(text: str, now: float) -> float:
    """``--since``: a duration back from now (``7d``) or an ISO date/time (UTC if naive)."""
    m = _DURATION.match(text)
    if m:
        return now - float(m.group(1)) * _UNIT_S[m.group(2).lower()]
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput(
            f"--since {text!r} is neither a date nor a duration",
            advice=f"Expected {SINCE_FORM}.",
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)  # every time lllt prints is UTC: read them alike
    return when.timestamp()


# --- history --------------------------------------------------------------------------------


@app.command("history")
@handle_errors
def history(
    db: DbOption = None,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    limit: int = typer.Option(20, "--limit", min=1, help="Show at most this many sessions."),
) -> None:
    """Sessions (newest first), fluence totals and when the next session is allowed."""
    from lllt.clock import wall_time

    now = wall_time()
    with open_log(db) as store:
        rows = store.sessions(limit=limit)
        kinds = {
            "real": store.history_summary(now, simulated=False),
            "simulated": store.history_summary(now, simulated=True),
        }
        present = {
            "real": store.has_sessions(simulated=False),
            "simulated": store.has_sessions(simulated=True),
        }
        total = len(store.sessions())
    if as_json:
        print_json(
            {
                "db": store.path,
                "now": _iso(now),
                "sessions": [r.to_dict() for r in rows],
                "totals": {
                    k: {
                        "24h": s.to_dict()["fluence_24h_j_cm2"],
                        "7d": s.to_dict()["fluence_7d_j_cm2"],
                        "sessions_7d": s.sessions_7d,
                    }
                    for k, s in kinds.items()
                },
                "next_allowed": {
                    k: {
                        "now": s.allowed_now,
                        "at": _iso(s.next_allowed_at),
                        "basis": s.next_allowed_basis,
                        "min_interval_s": s.min_interval_s,
                    }
                    for k, s in kinds.items()
                },
            }
        )
        return
    out = sys.stdout.write
    if not rows:
        out(f"No sessions recorded yet (log: {store.path}).\n")
        return
    out(f"Session log: {store.path}\n")
    shown = f"{len(rows)} of {total}" if total > len(rows) else f"{total}"
    out(f"Sessions, newest first ({shown}):\n")
    out(_session_table(rows))
    for kind, summary in kinds.items():
        if present[kind]:
            out("\n" + _summary_text(kind, summary, now))


def _session_table(rows: list[SessionRow]) -> str:
    header = ("id", "started (UTC)", "device", "protocol", "status", "duration", "delivered")
    table: list[tuple[str, ...]] = [header]
    notes: dict[int, list[str]] = {}
    for r in rows:
        device = r.device_serial + (" (sim)" if r.simulated else "")
        status = r.status.value + (" derated" if r.derated else "")
        when = _iso(r.started_at if r.started_at is not None else r.created_at) or ""
        table.append(
            (
                str(r.id),
                when.replace("T", " ").rstrip("Z"),
                device,
                r.protocol_id,
                status,
                _duration(r.duration_s),
                _fluence_text(r.delivered_fluence, r.planned_fluence),
            )
        )
        lines = []
        if r.outcome and r.outcome != r.status.value:
            lines.append(f"outcome: {r.outcome}")
        if r.reason:
            lines.append(f"reason: {r.reason}")
        if r.derated:
            lines.append(f"derated to {r.min_derate_permille / 10:g} %")
        if r.note:
            lines.append(f"note: {r.note}")
        notes[r.id] = lines
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    text = []
    for i, row in enumerate(table):
        text.append("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
        if i and notes[int(row[0])]:
            text.extend(f"      {line}" for line in notes[int(row[0])])
    return "\n".join(line.rstrip() for line in text) + "\n"


def _summary_text(kind: str, s: HistorySummary, now: float) -> str:
    title = "Real devices" if kind == "real" else "Simulated devices"
    lines = [f"{title}:"]
    lines.append(f"  last 24 h:    {_fluence_text(s.fluence_24h) or 'nothing'}")
    lines.append(
        f"  last 7 days:  {_fluence_text(s.fluence_7d) or 'nothing'} "
        f"({s.sessions_7d} session{'s' if s.sessions_7d != 1 else ''})"
    )
    if s.allowed_now:
        lines.append("  next session: now")
    else:
        assert s.next_allowed_at is not None
        wait = _duration(s.next_allowed_at - now)
        lines.append(
            f"  next session: {_iso(s.next_allowed_at)} (in {wait}): {s.next_allowed_basis}"
        )
    return "\n".join(lines) + "\n"


def _fluence_text(values: dict[int, float], planned: dict[int, float] | None = None) -> str:
    wls = sorted({k for k, v in values.items() if v} | set(planned or {}))
    parts = []
    for wl in wls:
        got = values.get(wl, 0.0)
        if planned and wl in planned:
            parts.append(f"{wl} nm {got:.3g}/{planned[wl]:.3g}")
        else:
            parts.append(f"{wl} nm {got:.3g}")
    return ", ".join(parts) + (" J/cm²" if parts else "")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    total = round(seconds)
    d, rest = divmod(total, 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    if d:
        return f"{d} d {h} h"
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _iso(t: float | None) -> str | None:
    from lllt.store import iso_utc

    return iso_utc(t)


# --- export ---------------------------------------------------------------------------------


@app.command("export")
@handle_errors
def export(
    fmt: str | None = typer.Option(
        None, "--format", "-f", help="csv or json (default: from the -o suffix)."
    ),
    since: str | None = typer.Option(
        None, "--since", help="Only sessions since a date (2025-01-31) or for a duration (7d)."
    ),
    db: DbOption = None,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="File (default: stdout).")
    ] = None,
) -> None:
    """Export sessions: CSV (one row per session) or JSON (phases, events, telemetry)."""
    import json

    from lllt.clock import wall_time
    from lllt.store import export_csv, export_json

    kind = _export_format(fmt, output)
    start = None if since is None else parse_since(since, wall_time())
    with open_log(db) as store:
        if kind == "csv":
            text = export_csv(store, since=start)
        else:
            text = json.dumps(export_json(store, since=start), indent=2, ensure_ascii=False)
            text += "\n"
    if output is None:
        sys.stdout.write(text)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as e:
        raise InvalidInput(
            f"cannot write {output}: {e.strerror or e}", advice="Choose a writable path for -o."
        ) from None


def _export_format(fmt: str | None, output: Path | None) -> str:
    if fmt is None and output is not None and output.suffix.lower() in (".csv", ".json"):
        return output.suffix.lower()[1:]
    if fmt is None:
        raise InvalidInput(
            "which format? give --format csv or --format json",
            advice="Example: lllt export --format csv -o sessions.csv",
        )
    kind = fmt.strip().lower()
    if kind not in ("csv", "json"):
        raise InvalidInput(
            f"unknown export format {fmt!r}", advice="Expected --format csv or --format json."
        )
    return kind


# --- report ---------------------------------------------------------------------------------


@app.command("report")
@handle_errors
def report(
    session: Annotated[
        str, typer.Argument(help="Session id (see `lllt history`), uuid, or 'last'.")
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="FILE.png or FILE.html")],
    db: DbOption = None,
) -> None:
    """Plot a session: irradiance, scalp temperature with the limits, fluence against target."""
    from lllt.report import SUFFIXES, write_report

    if output.suffix.lower() not in SUFFIXES:
        raise InvalidInput(
            f"cannot write a report as {output.name!r}: unknown file type "
            f"{output.suffix or '(none)'}",
            advice="Name the output FILE.png or FILE.html.",
        )
    key: Any = int(session) if session.isdigit() else session
    with open_log(db) as store:
        path = write_report(store, key, output)
    sys.stderr.write(f"wrote {path}\n")

"""``lllt history``, ``lllt export`` and ``lllt report``: the session log for people.

Each command opens the log (``--db`` > ``LLLT_DB`` > the user data directory), first
marks the sessions whose host process died as ``interrupted`` (every invocation that
opens the log does, so a crash is visible at the next look), then reads. Only `lllt run`
creates a log: these commands refuse a missing file, or one that is not an lllt session
log, with exit 2 (a mistyped ``--db`` must not read as "no sessions").
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from lllt.cli._app import (
    DB_HELP,
    DEVICE_HELP,
    JSON_HELP,
    LIMITS_HELP,
    app,
    epilog,
    handle_errors,
    print_json,
)
from lllt.errors import InvalidInput

if TYPE_CHECKING:
    from lllt.safety import Limits
    from lllt.store import SessionRow, Store

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d|w)\s*$", re.IGNORECASE)
_UNIT_S = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}
SINCE_FORM = (
    "an ISO date or time such as 2025-01-31 or 2025-01-31T08:00Z, "
    "or a duration such as 7d, 24h, 90min"
)
# Annotated options: a Path default built in the signature would be shared between calls
DbOption = Annotated[Path | None, typer.Option("--db", help=DB_HELP)]


def open_log(db: Path | None, *, create: bool = False) -> Store:
    """Open the log and mark the sessions of dead host processes.

    Without ``create`` a missing file is refused (exit 2) rather than read as empty."""
    from lllt.clock import wall_time
    from lllt.store import Store, resolve_db_path

    if not create:
        path = resolve_db_path(db)
        if not path.exists():
            raise InvalidInput(
                f"there is no session log at {path}",
                advice="`lllt run` creates it with the first session; check --db or LLLT_DB "
                "for a typo.",
            )
    store = Store.open(db, create=create)
    store.mark_interrupted(wall_time())
    return store


def _reconcile_from(url: str, db: Path | None) -> list[int]:
    from lllt.cli.device_cmds import run_on_device_loop
    from lllt.device import Cap
    from lllt.session import reconcile_pending

    async def main() -> list[int]:
        with open_log(db) as store:  # only `lllt run` creates a log
            async with Cap.connect(url) as cap:
                return await reconcile_pending(cap, store)

    return run_on_device_loop(url, main)  # type: ignore[no-any-return]


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


@app.command(
    "history",
    epilog=epilog(
        "lllt history --db ./demo.db",
        "lllt history --device serial:///dev/ttyACM0 --json",
        codes=(
            "Exit codes: 0 shown; 2 invalid input (also: no log at --db, or not an "
            "lllt log); 3 device or session log problem."
        ),
    ),
)
@handle_errors
def history(
    db: DbOption = None,
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
    limit: int = typer.Option(20, "--limit", min=1, help="Show at most this many sessions."),
    limits: Annotated[
        Path | None,
        typer.Option("--limits", help=LIMITS_HELP),
    ] = None,
    device: Annotated[
        str | None,
        typer.Option("--device", "-d", metavar="URL", help=DEVICE_HELP),
    ] = None,
) -> None:
    """Sessions (newest first), fluence totals and when the next session is allowed.

    With --device, first connects to that device and settles, from its own session
    records, the sessions a host lost track of."""
    from lllt.clock import wall_time
    from lllt.safety import DEFAULT_LIMITS, load_limits

    if device:
        for sid in _reconcile_from(device, db):
            print(f"session {sid} reconciled from the device's record", file=sys.stderr)
    now = wall_time()
    lim = DEFAULT_LIMITS if limits is None else load_limits(limits)
    with open_log(db) as store:
        rows = store.sessions(limit=limit)
        total = len(store.sessions())
        outlook = {
            kind: _outlook(store, now, simulated=kind == "simulated", limits=lim)
            for kind in ("real", "simulated")
        }
    if as_json:
        print_json(
            {
                "db": store.path,
                "now": _iso(now),
                "sessions": [r.to_dict() for r in rows],
                "totals": {k: o.totals() for k, o in outlook.items()},
                "next_allowed": {k: o.next_allowed() for k, o in outlook.items()},
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
    for o in outlook.values():
        if o.present:
            out("\n" + o.text())


@dataclass(frozen=True)
class _Outlook:
    """What history means for the next session on one kind of device (real or simulated).

    The weighing is preflight's own (``lllt.safety``): the same ``StoreHistory`` view of the
    log, the same limits and ``next_session``, so `lllt history` never says
    "now" when `lllt run` would refuse. The next session is assumed to follow the last
    session's protocol schedule.
    """

    simulated: bool
    present: bool
    now: float
    fluence_24h: dict[int, float]
    fluence_7d: dict[int, float]
    sessions_7d: int
    next_at: float  # == now when allowed now
    basis: str

    def totals(self) -> dict[str, Any]:
        return {
            "24h": {str(k): v for k, v in sorted(self.fluence_24h.items())},
            "7d": {str(k): v for k, v in sorted(self.fluence_7d.items())},
            "sessions_7d": self.sessions_7d,
        }

    def next_allowed(self) -> dict[str, Any]:
        allowed = self.next_at <= self.now
        return {
            "now": allowed,
            "at": None if allowed else _iso(self.next_at),
            "basis": "" if allowed else self.basis,
        }

    def text(self) -> str:
        title = "Simulated devices" if self.simulated else "Real devices"
        plural = "" if self.sessions_7d == 1 else "s"
        lines = [
            f"{title}:",
            f"  last 24 h:    {_fluence_text(self.fluence_24h) or 'nothing'}",
            f"  last 7 days:  {_fluence_text(self.fluence_7d) or 'nothing'} "
            f"({self.sessions_7d} session{plural})",
        ]
        if self.next_at <= self.now:
            lines.append("  next session: now")
        else:
            from lllt.safety.limits import format_duration

            wait = format_duration(self.next_at - self.now)
            lines.append(f"  next session: {_iso(self.next_at)} (in {wait}): {self.basis}")
        return "\n".join(lines) + "\n"


def _outlook(store: Store, now: float, *, simulated: bool, limits: Limits) -> _Outlook:
    from lllt.safety import ScheduleRules, StoreHistory, next_session

    day, week = 86400.0, 7 * 86400.0
    hist = StoreHistory(store, simulated=simulated)
    last = store.last_session(simulated=simulated)
    rules = ScheduleRules(
        protocol_id="" if last is None else last.protocol_id,
        min_interval_s=None if last is None else last.min_interval_s,
        max_sessions_per_week=None if last is None else last.max_sessions_per_week,
    )
    recent = hist.sessions_since(now - week)
    wavelengths = sorted({wl for s in recent for wl in s.fluence_j_cm2})
    nxt = next_session(hist, limits, now, rules)
    next_at = nxt.at
    basis = ""
    if nxt.bound_by == "interval" and nxt.last_end is not None:
        basis = (
            f"minimum interval {nxt.interval_s / 3600:g} h after the session that ended "
            f"{_iso(nxt.last_end)}"
        )
    elif nxt.bound_by == "per_week":
        basis = f"{nxt.sessions_7d} sessions in the last 7 days (at most {nxt.per_week})"
    return _Outlook(
        simulated=simulated,
        present=store.has_sessions(simulated=simulated),
        now=now,
        fluence_24h={w: hist.fluence_since(now - day, w) for w in wavelengths},
        fluence_7d={w: hist.fluence_since(now - week, w) for w in wavelengths},
        sessions_7d=len(recent),
        next_at=next_at,
        basis=basis,
    )


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


@app.command(
    "export",
    epilog=epilog(
        "lllt export --db ./demo.db -o sessions.csv",
        "lllt export --format json --since 7d",
        codes=(
            "Exit codes: 0 written; 2 invalid input (also: no log at --db, or not "
            "an lllt log); 3 session log problem."
        ),
    ),
)
@handle_errors
def export(
    fmt: str | None = typer.Option(
        None, "--format", "-f", metavar="FORMAT", help="csv or json (default: from the -o suffix)."
    ),
    since: str | None = typer.Option(
        None,
        "--since",
        metavar="WHEN",
        help="Only sessions since a date (2025-01-31) or for a duration (7d).",
    ),
    db: DbOption = None,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Write to FILE instead of stdout.")
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


@app.command(
    "report",
    epilog=epilog(
        "lllt report last --db ./demo.db -o session.png",
        "lllt report 3 -o session.html",
        codes=(
            "Exit codes: 0 written; 2 invalid input (also: no log at --db, or not "
            "an lllt log); 3 session log problem."
        ),
    ),
)
@handle_errors
def report(
    session: Annotated[
        str,
        typer.Argument(
            metavar="SESSION", help="Session ID (see `lllt history`), its UUID, or 'last'."
        ),
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="Write to FILE (.png or .html).")],
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

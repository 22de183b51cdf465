"""Session reports: one figure (PNG) or a self-contained HTML page for a logged session.

The figure has three panels against clock time (UTC): irradiance, one line per wavelength
(the mean over the zones that emit it) with the spread between its channels shaded;
scalp-contact temperature of the hottest zone with the spread over all zones shaded, and
one set of thresholds: the readings at which the host derates and stops (41 °C and 43 °C
less the device's sensor uncertainty) and the device's cut-off when it differs;
cumulative fluence per wavelength against its planned target. The title places the
session in its course (how many sessions of the protocol the log holds, since when).
Phase boundaries and events are marked on every panel. HTML embeds the same PNG (base64)
with summary, phase and event tables.

matplotlib is imported only here and only when a report is drawn, through its
object-oriented API on an Agg canvas: no pyplot, no global backend switch, so drawing a
report inside a notebook or a GUI leaves its backend alone.
"""

from __future__ import annotations

import base64
import html
import io
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lllt.errors import InvalidInput
from lllt.store import EventRow, PhaseRow, SessionRow, Store, TelemetryRow, iso_utc

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: docs/clinical-basis.md: derate at 41 °C, stop at 43 °C (both less the sensor uncertainty)
DERATE_C = 41.0
ABORT_C = 43.0
#: figure size in inches and resolution: the PNG is WIDTH_IN*DPI x HEIGHT_IN*DPI pixels
WIDTH_IN, HEIGHT_IN, DPI = 11.0, 10.0, 100
SUFFIXES = (".png", ".html")

#: events worth a label on the plot (the rest get a thin line only)
_LABELLED = {
    "INTERLOCK",
    "FAULT",
    "SESSION_END",
    "LEASE_EXPIRED",
    "LEASE_RESTORED",
    "HEAD",
    "DERATE",
    "BOOT",
    "derate",
    "abort",
    "link_lost",
    "reconnected",
    "user_stop",
}
_MAX_LABELS = 24


def write_report(store: Store, session: int | str, path: str | Path) -> Path:
    """Write the report of ``session`` (id, uuid or "last") to ``path`` (.png or .html)."""
    out = Path(path)
    suffix = out.suffix.lower()
    if suffix not in SUFFIXES:
        raise InvalidInput(
            f"cannot write a report as {out.name!r}: unknown file type {out.suffix or '(none)'}",
            advice="Name the output FILE.png or FILE.html.",
        )
    row = find_session(store, session)
    phases, events, telemetry = (
        store.phases(row.id),
        store.events(row.id),
        store.telemetry(row.id),
    )
    png = render_png(row, phases, events, telemetry, course_line(store, row))
    data = png if suffix == ".png" else html_page(row, phases, events, png).encode("utf-8")
    try:
        out.write_bytes(data)
    except OSError as e:
        raise InvalidInput(
            f"cannot write {out}: {e.strerror or e}",
            advice="Choose a writable path for -o.",
        ) from None
    return out


def find_session(store: Store, key: int | str) -> SessionRow:
    try:
        return store.session(key)
    except LookupError:
        raise InvalidInput(
            f"no session {key} in the session log {store.path}",
            advice="See `lllt history` (with the same --db) for the session ids.",
        ) from None


# --- the figure ------------------------------------------------------------------------------


def render_png(
    row: SessionRow,
    phases: list[PhaseRow],
    events: list[EventRow],
    telemetry: list[TelemetryRow],
    course: str = "",
) -> bytes:
    fig = figure(row, phases, events, telemetry, course)
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def figure(
    row: SessionRow,
    phases: list[PhaseRow],
    events: list[EventRow],
    telemetry: list[TelemetryRow],
    course: str = "",
) -> Figure:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI, layout="constrained")
    ax_irr, ax_temp, ax_flu = fig.subplots(3, 1, sharex=True)
    t0 = _origin(row, telemetry)

    from datetime import UTC, datetime

    import matplotlib.dates as mdates

    def clock(t: float) -> datetime:
        return datetime.fromtimestamp(t, UTC)

    xs = [clock(r.t) for r in telemetry]
    wl_colors = _wavelength_colors(row)

    # irradiance: one line per wavelength (the mean over the zones that emitted it), the
    # spread between its lowest and highest channel shaded
    for wl in sorted({c.wavelength_nm for c in row.channels}):
        idx = [i for i, c in enumerate(row.channels) if c.wavelength_nm == wl]
        series = [[r.irradiance[i] if i < len(r.irradiance) else math.nan for r in telemetry]
                  for i in idx]  # fmt: skip
        lit = [(i, ys) for i, ys in zip(idx, series, strict=True) if any(y for y in ys if y == y)]
        if not lit:
            continue  # a wavelength that never emitted only clutters the legend
        zones = sorted({row.channels[i].zone for i, _ in lit}, key=_zone_order(row))
        cols = [ys for _, ys in lit]
        mean = [_mean(v) for v in zip(*cols, strict=True)]
        low = [_nanmin(v) for v in zip(*cols, strict=True)]
        high = [_nanmax(v) for v in zip(*cols, strict=True)]
        color = wl_colors.get(wl)
        if set(zones) == set(row.zones) and len(zones) > 1:
            where = f"all {len(zones)} zones"
        else:
            where = ", ".join(zones) if len(zones) <= 4 else f"{len(zones)} zones"
        ax_irr.plot(xs, mean, color=color, linewidth=1.4, label=f"{wl} nm, {where} (mean)")
        if len(cols) > 1:
            ax_irr.fill_between(
                xs, low, high, color=color, alpha=0.2, linewidth=0, label=f"{wl} nm spread"
            )
    ax_irr.set_ylim(bottom=0.0)
    ax_irr.set_ylabel("irradiance (mW/cm²)")
    ax_irr.set_title("Irradiance per wavelength", loc="left", fontsize=10)

    # temperature: the hottest zone (what the monitor acts on), all zones' spread shaded,
    # and one set of thresholds: the readings at which the host derates and stops
    temps = [[_reading(r.temperature, zi) for zi in range(len(row.zones))] for r in telemetry]
    hottest = [_nanmax(v) for v in temps]
    coolest = [_nanmin(v) for v in temps]
    seen = any(not math.isnan(y) for y in hottest)
    ax_temp.plot(
        xs,
        hottest,
        color="tab:blue",
        linewidth=1.4,
        label="hottest zone" if seen or not telemetry else "no reading",
    )
    if len(row.zones) > 1 and seen:
        ax_temp.fill_between(
            xs,
            coolest,
            hottest,
            color="tab:blue",
            alpha=0.2,
            linewidth=0,
            label=f"coolest to hottest of {len(row.zones)} zones",
        )
    u = row.sensor_uncertainty_c or 0.0
    less = f" ({DERATE_C:g} °C less {u:g} °C sensor uncertainty)" if u > 0 else ""
    ax_temp.axhline(
        DERATE_C - u,
        color="tab:orange",
        linewidth=1.0,
        label=f"host derates at a reading of {DERATE_C - u:g} °C{less}",
    )
    less = f" ({ABORT_C:g} °C less {u:g} °C)" if u > 0 else ""
    cutoff = row.cutoff_c
    same = cutoff is not None and abs(cutoff - (ABORT_C - u)) < 0.005
    ax_temp.axhline(
        ABORT_C - u,
        color="tab:red",
        linewidth=1.0,
        label=f"host stops at {ABORT_C - u:g} °C{less}"
        + ("; the device's own cut-off too" if same else ""),
    )
    if cutoff is not None and not same:
        ax_temp.axhline(
            cutoff,
            color="darkred",
            linestyle=":",
            linewidth=1.0,
            label=f"device cut-off {cutoff:g} °C",
        )
    ax_temp.set_ylabel("scalp contact (°C)")
    ax_temp.set_title("Scalp temperature", loc="left", fontsize=10)

    # cumulative fluence per wavelength (the most-dosed channel), against target
    for wl in sorted({c.wavelength_nm for c in row.channels}):
        idx = [i for i, c in enumerate(row.channels) if c.wavelength_nm == wl]
        ys = [
            max((r.fluence[i] for i in idx if i < len(r.fluence)), default=0.0) for r in telemetry
        ]
        target = row.planned_fluence.get(wl, 0.0)
        if not any(ys) and not target:
            continue
        color = wl_colors.get(wl)
        ax_flu.plot(xs, ys, color=color, linewidth=1.5, label=f"{wl} nm delivered")
        if target:
            ax_flu.axhline(
                target, color=color, linestyle="--", linewidth=1.0, label=f"{wl} nm target"
            )
    ax_flu.set_ylim(bottom=0.0)
    ax_flu.set_ylabel("fluence (J/cm²)")
    ax_flu.set_xlabel(f"time (UTC); the session started {iso_utc(t0)}")
    ax_flu.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M"))
    ax_flu.set_title("Cumulative fluence per wavelength", loc="left", fontsize=10)

    # phase boundaries and events on every panel
    axes = (ax_irr, ax_temp, ax_flu)
    for p in phases:
        if p.started_at is None:
            continue
        x = clock(p.started_at)
        for ax in axes:
            ax.axvline(x, color="0.55", linewidth=0.8)
        ax_irr.annotate(
            p.name,
            (x, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(3, -3),
            textcoords="offset points",
            va="top",
            fontsize=8,
            color="0.3",
        )
    ends = [p.ended_at for p in phases if p.ended_at is not None]
    if ends:
        for ax in axes:
            ax.axvline(clock(max(ends)), color="0.55", linewidth=0.8)
    labelled = 0
    for ev in events:
        x = clock(ev.t)
        for ax in axes:
            ax.axvline(x, color="tab:purple", linestyle=":", linewidth=0.8)
        if ev.kind in _LABELLED and labelled < _MAX_LABELS:
            labelled += 1
            ax_flu.annotate(
                _event_label(ev),
                (x, 0.0),
                xycoords=("data", "axes fraction"),
                xytext=(2, 3),
                textcoords="offset points",
                rotation=90,
                va="bottom",
                fontsize=7,
                color="tab:purple",
            )
    if not telemetry:
        ax_irr.text(0.5, 0.5, "no telemetry recorded", transform=ax_irr.transAxes, ha="center")
    for ax in axes:
        ax.grid(True, linewidth=0.3)
        handles, _labels = ax.get_legend_handles_labels()
        if handles:
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)

    sim = " (simulated)" if row.simulated else ""
    fig.suptitle(
        f"Session {row.id} · {row.protocol_id} · {row.device_serial}{sim} · {row.status}\n"
        + (f"{course}\n" if course else "")
        + _fluence_line(row),
        fontsize=11,
    )
    return fig


def _mean(values: tuple[float, ...]) -> float:
    real = [v for v in values if not math.isnan(v)]
    return sum(real) / len(real) if real else math.nan


def _nanmin(values: tuple[float, ...] | list[float]) -> float:
    real = [v for v in values if not math.isnan(v)]
    return min(real) if real else math.nan


def _nanmax(values: tuple[float, ...] | list[float]) -> float:
    real = [v for v in values if not math.isnan(v)]
    return max(real) if real else math.nan


def _zone_order(row: SessionRow) -> Any:
    order = {z: i for i, z in enumerate(row.zones)}
    return lambda z: order.get(z, len(order))


def course_line(store: Store, row: SessionRow) -> str:
    """The session's place in its course: how many sessions of this protocol the log holds
    up to it (same kind of device), since when, and the course length the protocol gives."""
    import re

    same = [
        r
        for r in store.sessions(simulated=row.simulated, newest_first=False)
        if r.protocol_id == row.protocol_id and r.counts and r.created_at <= row.created_at
    ]
    if not same:
        return ""
    n = len(same)
    first = same[0].started_at or same[0].created_at
    here = row.started_at or row.created_at
    day = int((here - first) // 86400) + 1
    text = f"course: session {n} of {row.protocol_id} in this log, day {day} since {iso_utc(first)}"
    m = re.search(r'(?m)^\s*course\s*=\s*"([^"]+)"', row.protocol_text or "")
    if m:
        text += f" (the protocol's course: {m.group(1)})"
    return text


def _reading(values: tuple[float | None, ...], index: int) -> float:
    """A zone's temperature, NaN (a gap in the line) when there is no reading."""
    value = values[index] if index < len(values) else None
    return math.nan if value is None else value


def _origin(row: SessionRow, telemetry: list[TelemetryRow]) -> float:
    if row.started_at is not None:
        return row.started_at
    if telemetry:
        return telemetry[0].t
    return row.created_at


def _wavelength_colors(row: SessionRow) -> dict[int, str]:
    palette = ["tab:red", "darkred", "tab:orange", "tab:pink", "tab:brown", "tab:olive"]
    wls = sorted({c.wavelength_nm for c in row.channels})
    return {wl: palette[i % len(palette)] for i, wl in enumerate(wls)}


def _event_label(ev: EventRow) -> str:
    detail = ev.data.get("interlock") or ev.data.get("outcome") or ev.data.get("reason")
    if ev.kind == "DERATE" and "value" in ev.data:
        detail = f"{ev.data['value'] / 10:g} %"
    return f"{ev.kind} {detail}" if detail else ev.kind


def _fluence_line(row: SessionRow) -> str:
    wls = sorted(set(row.planned_fluence) | {k for k, v in row.delivered_fluence.items() if v})
    got, want = row.delivered_fluence, row.planned_fluence
    parts = [f"{wl} nm {got.get(wl, 0.0):.3g} of {want.get(wl, 0.0):.3g} J/cm²" for wl in wls]
    return "delivered: " + ("; ".join(parts) if parts else "nothing")


# --- HTML ----------------------------------------------------------------------------------


def html_page(row: SessionRow, phases: list[PhaseRow], events: list[EventRow], png: bytes) -> str:
    e = html.escape
    summary = [
        ("session", f"{row.id} ({row.uuid})"),
        ("protocol", f"{row.protocol_id}: {row.protocol_name}"),
        ("protocol sha256", row.protocol_sha256),
        ("device", f"{row.device_model} {row.device_serial} at {row.device_url}"
         + (" (simulated)" if row.simulated else "")),
        ("status", str(row.status)),
        ("outcome", row.outcome),
        ("reason", row.reason),
        ("note", row.note),
        ("started", iso_utc(row.started_at) or "—"),
        ("ended", iso_utc(row.ended_at) or "—"),
        ("duration", _duration(row.duration_s)),
        ("expected duration", _duration(row.expected_duration_s)),
        ("fluence", _fluence_line(row)),
        ("derated", f"yes (down to {row.min_derate_permille / 10:g} %)" if row.derated else "no"),
        ("research", "yes" if row.research else "no"),
    ]  # fmt: skip
    rows = "\n".join(
        f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in summary if v not in ("", None)
    )
    phase_rows = "\n".join(
        "<tr>"
        + "".join(
            f"<td>{e(str(c))}</td>"
            for c in (
                p.index,
                p.name,
                p.kind,
                iso_utc(p.started_at) or "—",
                iso_utc(p.ended_at) or "—",
                _wl_text(p.planned_fluence),
                _wl_text(p.delivered_fluence),
                f"{p.min_derate_permille / 10:g} %" if p.derated else "no",
            )
        )
        + "</tr>"
        for p in phases
    )
    event_rows = "\n".join(
        f"<tr><td>{e(iso_utc(ev.t, ms=True) or '')}</td><td>{e(ev.source)}</td>"
        f"<td>{e(ev.kind)}</td><td><code>{e(_data_text(ev))}</code></td></tr>"
        for ev in events
    )
    img = base64.b64encode(png).decode("ascii")
    title = e(f"lllt session {row.id}: {row.protocol_id}")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
th, td {{ border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }}
th {{ background: #f3f3f3; }}
img {{ max-width: 100%; }}
</style>
</head>
<body>
<h1>{title}</h1>
<table>
{rows}
</table>
<img alt="irradiance, temperature and fluence of session {row.id}" src="data:image/png;base64,{img}">
<h2>Phases</h2>
<table>
<tr><th>#</th><th>name</th><th>kind</th><th>started</th><th>ended</th><th>planned</th><th>delivered</th><th>derated</th></tr>
{phase_rows}
</table>
<h2>Events</h2>
<table>
<tr><th>time (UTC)</th><th>source</th><th>kind</th><th>data</th></tr>
{event_rows}
</table>
</body>
</html>
"""  # noqa: E501


def _wl_text(values: dict[int, float]) -> str:
    shown = {k: v for k, v in values.items() if v}
    if not shown:
        return "—"
    return ", ".join(f"{wl} nm {v:.3g} J/cm²" for wl, v in sorted(shown.items()))


def _data_text(ev: EventRow) -> str:
    return ", ".join(f"{k}={v}" for k, v in ev.data.items())


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    m, s = divmod(round(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"

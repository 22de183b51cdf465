"""Session reports: one figure (PNG) or a self-contained HTML page for a logged session.

The figure has three panels against minutes since the session started: irradiance per
channel; scalp-contact temperature per zone with the 41 °C (derate) and 43 °C (abort)
lines of REFERENCE.md, less the device's sensor uncertainty when it was recorded, and the
device's own cut-off; cumulative fluence per wavelength against its planned target.
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
from typing import TYPE_CHECKING

from lllt.errors import InvalidInput
from lllt.store import EventRow, PhaseRow, SessionRow, Store, TelemetryRow, iso_utc

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: REFERENCE.md: derate at 41 °C, stop at 43 °C (both less the sensor uncertainty)
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
    png = render_png(row, phases, events, telemetry)
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
) -> bytes:
    fig = figure(row, phases, events, telemetry)
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
) -> Figure:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI, layout="constrained")
    ax_irr, ax_temp, ax_flu = fig.subplots(3, 1, sharex=True)
    t0 = _origin(row, telemetry)

    def minutes(t: float) -> float:
        return (t - t0) / 60.0

    xs = [minutes(r.t) for r in telemetry]
    wl_colors = _wavelength_colors(row)
    zone_styles = ["-", "--", "-.", ":"]

    # irradiance per channel
    for i, ch in enumerate(row.channels):
        ys = [r.irradiance[i] if i < len(r.irradiance) else math.nan for r in telemetry]
        if not any(y for y in ys if not math.isnan(y)):
            continue  # a channel that never emitted only clutters the legend
        zi = row.zones.index(ch.zone) if ch.zone in row.zones else i
        ax_irr.plot(
            xs,
            ys,
            color=wl_colors.get(ch.wavelength_nm),
            linestyle=zone_styles[zi % len(zone_styles)],
            linewidth=1.2,
            label=f"{ch.zone} {ch.wavelength_nm} nm",
        )
    ax_irr.set_ylim(bottom=0.0)
    ax_irr.set_ylabel("irradiance (mW/cm²)")
    ax_irr.set_title("Irradiance per channel", loc="left", fontsize=10)

    # temperature per zone, with the limits (zone colours stay clear of the limit colours)
    zone_colors = ["tab:blue", "tab:green", "tab:cyan", "tab:olive", "tab:brown", "tab:gray"]
    for zi, zone in enumerate(row.zones):
        ys = [_reading(r.temperature, zi) for r in telemetry]
        seen = any(not math.isnan(y) for y in ys)
        ax_temp.plot(
            xs,
            ys,
            color=zone_colors[zi % len(zone_colors)],
            linewidth=1.2,
            label=zone if seen or not telemetry else f"{zone} (no reading)",
        )
    u = row.sensor_uncertainty_c or 0.0
    cutoff = row.cutoff_c
    ax_temp.axhline(DERATE_C, color="tab:orange", linewidth=1.0, label="41 °C derate")
    ax_temp.axhline(ABORT_C, color="tab:red", linewidth=1.0, label="43 °C abort")
    if u > 0:
        ax_temp.axhline(
            DERATE_C - u,
            color="tab:orange",
            linestyle="--",
            linewidth=0.8,
            label=f"derate at {DERATE_C - u:g} °C (41 − {u:g} sensor uncertainty)",
        )
        same = cutoff is not None and abs(cutoff - (ABORT_C - u)) < 0.005
        ax_temp.axhline(
            ABORT_C - u,
            color="tab:red",
            linestyle="--",
            linewidth=0.8,
            label=f"abort at {ABORT_C - u:g} °C (43 − {u:g} sensor uncertainty)"
            + (" = device cut-off" if same else ""),
        )
        if same:
            cutoff = None
    if cutoff is not None:
        ax_temp.axhline(
            cutoff,
            color="darkred",
            linestyle=":",
            linewidth=1.0,
            label=f"device cut-off {cutoff:g} °C",
        )
    ax_temp.set_ylabel("scalp contact (°C)")
    ax_temp.set_title("Scalp temperature per zone", loc="left", fontsize=10)

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
    ax_flu.set_xlabel("minutes since the session started")
    ax_flu.set_title("Cumulative fluence per wavelength", loc="left", fontsize=10)

    # phase boundaries and events on every panel
    axes = (ax_irr, ax_temp, ax_flu)
    for p in phases:
        if p.started_at is None:
            continue
        x = minutes(p.started_at)
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
            ax.axvline(minutes(max(ends)), color="0.55", linewidth=0.8)
    labelled = 0
    for ev in events:
        x = minutes(ev.t)
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
        f"{_fluence_line(row)}",
        fontsize=11,
    )
    return fig


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

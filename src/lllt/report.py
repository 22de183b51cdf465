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
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lllt.errors import InvalidInput
from lllt.store import EventRow, PhaseRow, SessionRow, Store, TelemetryRow, iso_utc

if TYPE_CHECKING:
    from matplotlib.axes import Axes
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

#: clock time on the x axis, a datetime: matplotlib's date converter takes datetimes where
#: its type stubs ask for floats, so the figure's x values are typed loosely
_XTime = Any


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
    """The session ``key`` (id, uuid or ``"last"``) of ``store``; InvalidInput if the log has
    none."""
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
    """The report's figure (:func:`figure`) as PNG bytes, ``WIDTH_IN`` × ``HEIGHT_IN`` inches
    at ``DPI``."""
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
    """The report's figure: irradiance, temperature and fluence panels, marked and titled."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI, layout="constrained")
    ax_irr, ax_temp, ax_flu = fig.subplots(3, 1, sharex=True)
    xs = [_clock(r.t) for r in telemetry]
    wl_colors = _wavelength_colors(row)
    _plot_irradiance(ax_irr, row, telemetry, xs, wl_colors)
    _plot_temperature(ax_temp, row, telemetry, xs)
    _plot_fluence(ax_flu, row, telemetry, xs, wl_colors, _origin(row, telemetry))
    axes = (ax_irr, ax_temp, ax_flu)
    _mark_phases(axes, phases, names_on=ax_irr)
    _mark_events(axes, events, labels_on=ax_flu)
    if not telemetry:
        ax_irr.text(0.5, 0.5, "no telemetry recorded", transform=ax_irr.transAxes, ha="center")
    _add_grids_and_legends(axes)
    fig.suptitle(_figure_title(row, course), fontsize=11)
    return fig


def _clock(t: float) -> _XTime:
    """An epoch time as a UTC datetime, the figure's x axis."""
    return datetime.fromtimestamp(t, UTC)


def _wavelengths(row: SessionRow) -> list[int]:
    """The session's wavelengths, in nm, shortest first."""
    return sorted({c.wavelength_nm for c in row.channels})


def _channels_of(row: SessionRow, wavelength: int) -> list[int]:
    """The indices of the channels that emit ``wavelength``."""
    return [i for i, c in enumerate(row.channels) if c.wavelength_nm == wavelength]


def _lit_channels(
    row: SessionRow, telemetry: list[TelemetryRow], wavelength: int
) -> list[tuple[int, list[float]]]:
    """(channel index, irradiance over time) of each channel of ``wavelength`` that emitted."""
    idx = _channels_of(row, wavelength)
    series = [[r.irradiance[i] if i < len(r.irradiance) else math.nan for r in telemetry]
              for i in idx]  # fmt: skip
    return [(i, ys) for i, ys in zip(idx, series, strict=True) if any(y for y in ys if y == y)]


def _zones_text(row: SessionRow, zones: list[str]) -> str:
    """Where a wavelength emitted, for its legend entry: all zones, their names or a count."""
    if set(zones) == set(row.zones) and len(zones) > 1:
        return f"all {len(zones)} zones"
    return ", ".join(zones) if len(zones) <= 4 else f"{len(zones)} zones"


def _plot_irradiance(
    ax: Axes,
    row: SessionRow,
    telemetry: list[TelemetryRow],
    xs: list[_XTime],
    wl_colors: dict[int, str],
) -> None:
    """One line per wavelength (the mean over the zones that emitted it), the spread
    between its lowest and highest channel shaded."""
    for wl in _wavelengths(row):
        lit = _lit_channels(row, telemetry, wl)
        if not lit:
            continue  # a wavelength that never emitted only clutters the legend
        zones = sorted({row.channels[i].zone for i, _ in lit}, key=_zone_order(row))
        cols = [ys for _, ys in lit]
        mean = [_mean(v) for v in zip(*cols, strict=True)]
        low = [_nanmin(v) for v in zip(*cols, strict=True)]
        high = [_nanmax(v) for v in zip(*cols, strict=True)]
        color = wl_colors.get(wl)
        where = _zones_text(row, zones)
        ax.plot(xs, mean, color=color, linewidth=1.4, label=f"{wl} nm, {where} (mean)")
        if len(cols) > 1:
            ax.fill_between(
                xs, low, high, color=color, alpha=0.2, linewidth=0, label=f"{wl} nm spread"
            )
    ax.set_ylim(bottom=0.0)
    ax.set_ylabel("irradiance (mW/cm²)")
    ax.set_title("Irradiance per wavelength", loc="left", fontsize=10)


def _plot_temperature(
    ax: Axes, row: SessionRow, telemetry: list[TelemetryRow], xs: list[_XTime]
) -> None:
    """The hottest zone (what the monitor acts on), all zones' spread shaded, and the
    thresholds."""
    temps = [[_reading(r.temperature, zi) for zi in range(len(row.zones))] for r in telemetry]
    hottest = [_nanmax(v) for v in temps]
    coolest = [_nanmin(v) for v in temps]
    seen = any(not math.isnan(y) for y in hottest)
    ax.plot(
        xs,
        hottest,
        color="tab:blue",
        linewidth=1.4,
        label="hottest zone" if seen or not telemetry else "no reading",
    )
    if len(row.zones) > 1 and seen:
        ax.fill_between(
            xs,
            coolest,
            hottest,
            color="tab:blue",
            alpha=0.2,
            linewidth=0,
            label=f"coolest to hottest of {len(row.zones)} zones",
        )
    _plot_thresholds(ax, row)
    ax.set_ylabel("scalp contact (°C)")
    ax.set_title("Scalp temperature", loc="left", fontsize=10)


def _plot_thresholds(ax: Axes, row: SessionRow) -> None:
    """The readings at which the host derates and stops, and the device's cut-off if it
    differs."""
    uncertainty = row.sensor_uncertainty_c or 0.0
    less = (
        f" ({DERATE_C:g} °C less {uncertainty:g} °C sensor uncertainty)" if uncertainty > 0 else ""
    )
    ax.axhline(
        DERATE_C - uncertainty,
        color="tab:orange",
        linewidth=1.0,
        label=f"host derates at a reading of {DERATE_C - uncertainty:g} °C{less}",
    )
    less = f" ({ABORT_C:g} °C less {uncertainty:g} °C)" if uncertainty > 0 else ""
    cutoff = row.cutoff_c
    same = cutoff is not None and abs(cutoff - (ABORT_C - uncertainty)) < 0.005
    ax.axhline(
        ABORT_C - uncertainty,
        color="tab:red",
        linewidth=1.0,
        label=f"host stops at {ABORT_C - uncertainty:g} °C{less}"
        + ("; the device's own cut-off too" if same else ""),
    )
    if cutoff is not None and not same:
        ax.axhline(
            cutoff,
            color="darkred",
            linestyle=":",
            linewidth=1.0,
            label=f"device cut-off {cutoff:g} °C",
        )


def _plot_fluence(
    ax: Axes,
    row: SessionRow,
    telemetry: list[TelemetryRow],
    xs: list[_XTime],
    wl_colors: dict[int, str],
    started: float,
) -> None:
    """Cumulative fluence per wavelength (the most-dosed channel), against its target."""
    import matplotlib.dates as mdates

    for wl in _wavelengths(row):
        idx = _channels_of(row, wl)
        ys = [
            max((r.fluence[i] for i in idx if i < len(r.fluence)), default=0.0) for r in telemetry
        ]
        target = row.planned_fluence.get(wl, 0.0)
        if not any(ys) and not target:
            continue
        color = wl_colors.get(wl)
        ax.plot(xs, ys, color=color, linewidth=1.5, label=f"{wl} nm delivered")
        if target:
            ax.axhline(target, color=color, linestyle="--", linewidth=1.0, label=f"{wl} nm target")
    ax.set_ylim(bottom=0.0)
    ax.set_ylabel("fluence (J/cm²)")
    ax.set_xlabel(f"time (UTC); the session started {iso_utc(started)}")
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M"))
    ax.set_title("Cumulative fluence per wavelength", loc="left", fontsize=10)


def _mark_phases(axes: Sequence[Axes], phases: list[PhaseRow], *, names_on: Axes) -> None:
    """A line on every panel where each phase starts and where the last one ends, the
    phase's name at the top of ``names_on``."""
    for p in phases:
        if p.started_at is None:
            continue
        x = _clock(p.started_at)
        for ax in axes:
            ax.axvline(x, color="0.55", linewidth=0.8)
        names_on.annotate(
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
            ax.axvline(_clock(max(ends)), color="0.55", linewidth=0.8)


def _mark_events(axes: Sequence[Axes], events: list[EventRow], *, labels_on: Axes) -> None:
    """A dotted line on every panel at each event, the first labelled kinds named at the
    bottom of ``labels_on``."""
    labelled = 0
    for ev in events:
        x = _clock(ev.t)
        for ax in axes:
            ax.axvline(x, color="tab:purple", linestyle=":", linewidth=0.8)
        if ev.kind in _LABELLED and labelled < _MAX_LABELS:
            labelled += 1
            labels_on.annotate(
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


def _add_grids_and_legends(axes: Sequence[Axes]) -> None:
    """A light grid on every panel, and its legend to the right when it has entries."""
    for ax in axes:
        ax.grid(True, linewidth=0.3)
        handles, _labels = ax.get_legend_handles_labels()
        if handles:
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)


def _figure_title(row: SessionRow, course: str) -> str:
    """The session, its place in the course (when known) and the fluence it delivered."""
    sim = " (simulated)" if row.simulated else ""
    return (
        f"Session {row.id} · {row.protocol_id} · {row.device_serial}{sim} · {row.status}\n"
        + (f"{course}\n" if course else "")
        + _fluence_line(row)
    )


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


def _summary_items(row: SessionRow) -> list[tuple[str, str | None]]:
    """The summary table of a session page: (label, value), empty values left out later."""
    return [
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


def _phase_cells(p: PhaseRow) -> tuple[object, ...]:
    """One row of the phases table of a session page."""
    return (
        p.index,
        p.name,
        p.kind,
        iso_utc(p.started_at) or "—",
        iso_utc(p.ended_at) or "—",
        _wl_text(p.planned_fluence),
        _wl_text(p.delivered_fluence),
        f"{p.min_derate_permille / 10:g} %" if p.derated else "no",
    )


def html_page(row: SessionRow, phases: list[PhaseRow], events: list[EventRow], png: bytes) -> str:
    """A self-contained HTML page of the session: a summary table, the figure ``png``
    embedded (base64), and tables of its phases and events."""
    e = html.escape
    rows = "\n".join(
        f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>"
        for k, v in _summary_items(row)
        if v not in ("", None)
    )
    phase_rows = "\n".join(
        "<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in _phase_cells(p)) + "</tr>" for p in phases
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

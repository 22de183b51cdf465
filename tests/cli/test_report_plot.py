"""`lllt report`: one line per wavelength with the spread shaded, one set of thresholds,
clock time on the axis and the session's place in its course."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from lllt.report import course_line, figure
from lllt.store import Store

LLLT = [sys.executable, "-m", "lllt"]


def test_report_of_a_real_run(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    run = subprocess.run(
        [*LLLT, "run", "aga-led-rgb-daily-18min", "-d", "sim://led-helmet-rgb?speed=max",
         "--db", str(db), "--yes"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    out = subprocess.run(
        [*LLLT, "report", "last", "--db", str(db), "-o", str(tmp_path / "r.png")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "r.png").stat().st_size > 10_000

    with Store.open(db, create=False) as store:
        (row,) = store.sessions()
        course = course_line(store, row)
        fig = figure(row, store.phases(row.id), store.events(row.id), store.telemetry(row.id),
                     course)  # fmt: skip
    ax_irr, ax_temp, ax_flu = fig.axes[:3]
    # 3 wavelengths x 4 zones = 12 channels, drawn as 3 lines (plus 3 shaded spreads)
    assert len(ax_irr.get_lines()) - _marker_lines(ax_irr) == 3
    labels = ax_irr.get_legend_handles_labels()[1]
    assert sum("spread" in label for label in labels) == 3
    temp_labels = ax_temp.get_legend_handles_labels()[1]
    assert sum("derates" in label for label in temp_labels) == 1
    assert sum("stops" in label for label in temp_labels) == 1
    assert not any(label == "41 °C derate" for label in temp_labels)  # the old second set
    assert "UTC" in ax_flu.get_xlabel()
    assert "course: session 1 of aga-led-rgb-daily-18min" in course
    assert "24 weeks" in course
    assert course in fig._suptitle.get_text()  # type: ignore[union-attr]


def _marker_lines(ax: object) -> int:
    """Vertical phase and event markers are Line2D too; count them to leave them out."""
    lines = ax.get_lines()  # type: ignore[attr-defined]
    return sum(1 for line in lines if len(set(line.get_xdata())) == 1)

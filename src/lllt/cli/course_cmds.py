"""``lllt course`` and ``lllt course simulate``: where a person stands in a course, and
whole courses run on a simulator's virtual calendar for research.

``lllt course`` only reads the session log. ``lllt course simulate`` writes its sessions
to a log of its own (a temporary file unless ``--log`` names one), never to the person's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from lllt.cli._app import (
    DB_HELP,
    JSON_HELP,
    RESEARCH_HELP,
    app,
    epilog,
    err,
    handle_errors,
    print_json,
)

course_app = typer.Typer(
    name="course",
    help="Where you stand in a course of treatment; simulate whole courses.",
    invoke_without_command=True,
    add_completion=False,
    rich_markup_mode=None,
)
app.add_typer(course_app, name="course")


def _load(name: str) -> tuple[Any, str]:
    from lllt.errors import InvalidInput
    from lllt.protocol import load_protocol, resolve

    path = resolve(name)
    if not path.exists() and not path.suffix:
        raise InvalidInput(
            f"no shipped protocol or file named {name!r}",
            advice="See `lllt protocol list` for the shipped ids.",
        )
    protocol = load_protocol(path)
    return protocol, path.read_text(encoding="utf-8", errors="replace")


@course_app.callback(
    epilog=epilog(
        "lllt course",
        "lllt course --protocol aga-red-3x-week-15min --json",
        "lllt course simulate aga-red-3x-week-15min --miss 0.05 --seed 1",
    )
)
@handle_errors
def course(
    ctx: typer.Context,
    protocol: Annotated[
        str | None,
        typer.Option(
            "--protocol", "-p", help="Protocol id or file (default: that of the last session)."
        ),
    ] = None,
    db: Annotated[Path | None, typer.Option("--db", help=DB_HELP)] = None,
    simulated: bool = typer.Option(
        False, "--simulated", help="Read the simulator's sessions instead of real ones."
    ),
    json_out: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Sessions done and due, adherence, dose per week, next due and next allowed time,
    and a week-by-week plot, for the course in the session log."""
    if ctx.invoked_subcommand is not None:
        return
    from lllt.cli.session_cmds import open_log
    from lllt.clock import wall_time
    from lllt.course import SessionEntry, course_status, status_lines
    from lllt.errors import InvalidInput
    from lllt.safety import DEFAULT_LIMITS, StoreHistory
    from lllt.safety.preflight import ScheduleRules, format_when, next_session_allowed_at

    now = wall_time()
    with open_log(db) as store:
        rows = store.sessions(simulated=simulated, newest_first=False)
        if protocol is None:
            if not rows:
                raise InvalidInput(
                    "the session log has no sessions yet",
                    advice="Give the course's protocol with --protocol ID.",
                )
            protocol = rows[-1].protocol_id
        model, _ = _load(protocol)
        entries = [
            SessionEntry(
                r.started_at if r.started_at is not None else r.created_at,
                str(r.status),
                dict(r.delivered_fluence),
            )
            for r in rows
            if r.protocol_id == model.id and r.counts
        ]
        history = StoreHistory(store, simulated=simulated)
        allowed = next_session_allowed_at(
            history, DEFAULT_LIMITS, now, ScheduleRules.from_protocol(model)
        )
    status = course_status(model, entries, now, next_allowed=allowed)
    if json_out:
        print_json(status.to_dict())
        return
    for line in status_lines(status, lambda t: format_when(t, now)):
        print(line)


@course_app.command(
    "simulate",
    epilog=epilog(
        "lllt course simulate aga-red-3x-week-15min",
        "lllt course simulate aga-red-eod-25min --miss 0.1 --seed 3 -o course.json",
    ),
)
@handle_errors
def simulate(
    protocol: Annotated[str, typer.Argument(metavar="PROTOCOL", help="Protocol id or file.")],
    device: str = typer.Option(
        "sim://reference-cap?speed=max",
        "--sim",
        metavar="URL",
        help="The in-process simulator to run the course on (a sim:// URL).",
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the missed and interrupted sessions."),
    miss: float = typer.Option(0.0, "--miss", help="Probability that a session is missed."),
    interrupt: float = typer.Option(
        0.0, "--interrupt", help="Probability that a session is interrupted (cap off the head)."
    ),
    report: Annotated[
        Path | None, typer.Option("--report", "-o", help="Write the course report (JSON) here.")
    ] = None,
    db: Annotated[
        Path | None,
        typer.Option(
            "--log", metavar="FILE", help="Keep the simulated sessions in this log (default: none)."
        ),
    ] = None,
    research: bool = typer.Option(False, "--research", help=RESEARCH_HELP),
    json_out: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Run a whole course on a simulator's virtual calendar, every session at its due
    time, and print the course report. Never touches your own session log."""
    import tempfile

    from lllt.course import simulate_course

    _check_probabilities(("--miss", miss), ("--interrupt", interrupt))
    model, text = _load(protocol)
    with tempfile.TemporaryDirectory(prefix="lllt-course-") as tmp:
        log = db if db is not None else Path(tmp) / "course.db"
        _refuse_own_log(log)
        out = simulate_course(
            model, text, device, str(log), seed=seed, miss=miss, interrupt=interrupt,
            research_ok=research,
        )  # fmt: skip
        if db is None:
            out["db"] = None
    if report is not None:
        _write_course_report(report, out)
    if json_out:
        print_json(out)
        return
    _print_simulated_course(out, model.id, device, seed)
    if report is not None:
        print(f"  report: {report}")


def _check_probabilities(*options: tuple[str, float]) -> None:
    """InvalidInput unless the value of each (option, value) lies between 0 and 1."""
    from lllt.errors import InvalidInput

    for name, p in options:
        if not 0.0 <= p <= 1.0:
            raise InvalidInput(f"{name} {p:g} is not a probability; expected 0 to 1")


def _refuse_own_log(log: Path) -> None:
    """InvalidInput if ``log`` is the person's own session log (LLLT_DB or the default)."""
    import os

    from lllt.errors import InvalidInput
    from lllt.store import default_db_path

    real = Path(os.environ.get("LLLT_DB") or default_db_path())
    if log.resolve() == real.resolve():
        raise InvalidInput(
            f"{log} is your own session log; a simulated course needs a log of its own",
            advice="Leave out --log (a temporary log is used) or give another file.",
        )


def _write_course_report(path: Path, out: dict[str, Any]) -> None:
    """Write the course report as indented JSON; InvalidInput if the file cannot be written."""
    import json

    from lllt.errors import InvalidInput

    try:
        path.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    except OSError as error:
        raise InvalidInput(f"cannot write {path}: {error.strerror or error}") from None


def _per_wavelength(doses: dict[str, float]) -> str:
    """Doses keyed by wavelength as text: "655 nm 2.65, ..." or "none"."""
    return ", ".join(f"{k} nm {v:.2f}" for k, v in doses.items()) or "none"


def _print_simulated_course(out: dict[str, Any], protocol_id: str, device: str, seed: int) -> None:
    """The course report for people; sessions that did not complete (and were not missed)
    go to stderr."""
    adherence = out["adherence"]
    print(f"simulated course of {protocol_id} on {device} (seed {seed})")
    print(
        f"  sessions: {out['sessions_planned']} planned, {out['sessions_completed']} completed, "
        f"{out['sessions_missed']} missed, {out['sessions_refused']} refused, "
        f"{out['sessions_other']} incomplete"
    )
    print(f"  adherence: {adherence * 100:.0f} %" if adherence is not None else "  adherence: -")
    print(f"  cumulative dose (J/cm²): {_per_wavelength(out['cumulative_fluence_j_cm2'])}")
    print(
        f"  dose per week on average (J/cm²): {_per_wavelength(out['mean_per_week_fluence_j_cm2'])}"
    )
    per = out["wall_per_session_s"]
    print(
        f"  wall time: {out['wall_s']:.1f} s"
        + (f" ({per:.3f} s per session)" if per is not None else "")
    )
    for s in out["sessions"]:
        if s["status"] not in ("completed", "missed"):
            err(f"  session {s['index'] + 1}: {s['status']}: {s['reason']}")

"""``lllt protocol check | list | schema``: validate protocol files and show the dose they ask.

``check`` prints the analysis of :func:`lllt.plan.analyze` for each file (a table, or
with ``--json`` one JSON list) and one line on stderr per problem, naming the file and the
field; it exits 0 when every file is valid (and runnable on the chosen device), 2 when
not. Imports of pydantic, pint and the simulator profiles happen inside the commands so
that ``lllt --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from lllt.cli._app import (
    DB_HELP,
    DEVICE_HELP,
    JSON_HELP,
    LIMITS_HELP,
    PROFILE_HELP,
    RESEARCH_HELP,
    app,
    epilog,
    err,
    handle_errors,
    print_json,
)

if TYPE_CHECKING:
    from lllt.info import DeviceInfo

protocol_app = typer.Typer(
    name="protocol",
    help="Check, list and create treatment protocol files.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)
app.add_typer(protocol_app, name="protocol")


def _device(device: str | None, profile: str | None) -> tuple[DeviceInfo | None, dict[str, Any]]:
    from lllt.errors import InvalidInput

    if device and profile:
        raise InvalidInput("give --device or --profile, not both")
    if profile:
        from lllt.info import DeviceInfo

        return DeviceInfo.for_profile(profile), {"profile": profile}
    if device:
        from lllt.device import fetch_device_info

        return fetch_device_info(device, timeout=10.0), {"url": device}
    return None, {}


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


@protocol_app.command(
    "check",
    epilog=epilog(
        "lllt protocol check aga-red-eod-25min --profile reference-cap",
        "lllt protocol check my-protocol.toml --device sim://reference-cap --db ./demo.db",
        codes=(
            "Exit codes: 0 all valid and accepted; 1 valid but refused by a safety "
            "limit; 2 invalid or not runnable on the device; 3 device or session "
            "log problem."
        ),
    ),
)
@handle_errors
def check(
    files: Annotated[
        list[str],
        typer.Argument(
            metavar="PROTOCOL",
            help="Protocol FILE (.toml, .yaml, .yml, .json) or the ID of a shipped protocol.",
        ),
    ],
    device: str | None = typer.Option(None, "--device", "-d", metavar="URL", help=DEVICE_HELP),
    profile: str | None = typer.Option(
        None, "--profile", "-p", metavar="PROFILE", help=PROFILE_HELP
    ),
    json_out: bool = typer.Option(False, "--json", help=JSON_HELP),
    limits: str | None = typer.Option(None, "--limits", metavar="FILE", help=LIMITS_HELP),
    db: str | None = typer.Option(None, "--db", metavar="FILE", help=DB_HELP),
    research: bool = typer.Option(False, "--research", help=RESEARCH_HELP),
) -> None:
    """Validate protocol files, print the dose they ask for and, with a device or a
    profile, the preflight safety analysis `lllt run` would make (thermal prediction
    included), taking the history in --db into account."""
    from lllt.plan import check_file

    info, label = _device(device, profile)
    lim = None
    if limits:
        from lllt.safety import load_limits

        lim = load_limits(limits)
    results = [check_file(f, info) for f in files]
    for result in results:
        if result.get("device") is not None:
            result["device"] = {**label, **result["device"]}
        for problem in result["errors"]:
            where = f"{problem['field']}: " if problem["field"] else ""
            err(f"error: {result['file']}: {where}{_one_line(problem['message'])}")
        if info is not None and result["valid"]:
            result["safety"] = _safety(result["file"], info, lim, db, research)
    if json_out:
        print_json(results)
    else:
        for result in results:
            _print_analysis(result, label)
    if not all(r["valid"] for r in results):
        raise typer.Exit(2)
    if not all(r.get("safety", {}).get("accepted", True) for r in results):
        raise typer.Exit(1)


def _safety(
    path: str, info: DeviceInfo, limits: Any, db: str | None, research: bool
) -> dict[str, Any]:
    """The preflight analysis of `lllt run`, without a connection: idle scalp at 25 °C."""
    import time

    from lllt.plan import compile as compile_plan
    from lllt.protocol import load_protocol, resolve
    from lllt.safety import StoreHistory, analyze

    protocol = load_protocol(resolve(path))
    plan = compile_plan(protocol, info)
    history = None
    if db is not None:
        from lllt.store import Store

        with Store.open(db, create=False) as store:
            history = StoreHistory(store, simulated=info.simulated)
    # a check analyses; `lllt run` enforces the research flag (the table says it is needed)
    # no event loop runs in a check, so the host's timeline is the system clock (what
    # lllt.clock.wall_time returns here), read without importing asyncio for it
    out = analyze(plan, info, limits, history, time.time(), research_ok=True)
    if protocol.research and not research:
        # one statement, not two that contradict: the flag was not given here
        out["reasons"] = [r for r in out["reasons"] if r.get("constraint") != "research_flag"]
        out["assumptions"].append("research-only protocol: `lllt run` will need --research")
        out["needs_research_flag"] = True
    return out


# --- text output --------------------------------------------------------------------------


def _num(value: float) -> str:
    return f"{value:.4g}"


def _fluence_text(fluence: dict[str, float]) -> str:
    return ", ".join(f"{wl} nm {_num(f)}" for wl, f in fluence.items()) or "-"


def _emit_text(emit: dict[str, float]) -> str:
    return ", ".join(f"{key} {_num(irr)} mW/cm²" for key, irr in emit.items())


def _table(rows: list[list[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        indent + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def _schedule_text(schedule: dict[str, Any] | None) -> str:
    from lllt.units import human_duration

    if not schedule:
        return "none given (the host's default limits apply)"
    parts = []
    if schedule["min_interval_s"] is not None:
        parts.append(f"at least {human_duration(schedule['min_interval_s'])} between sessions")
    if schedule["max_sessions_per_week"] is not None:
        parts.append(f"at most {schedule['max_sessions_per_week']} per week")
    if schedule["course_s"] is not None:
        parts.append(f"course {human_duration(schedule['course_s'])}")
    return ", ".join(parts) or "none given"


def _print_analysis(result: dict[str, Any], label: dict[str, Any]) -> None:
    from lllt.units import human_duration

    target = label.get("profile") or label.get("url")
    if not result.get("phases"):
        print(f"{result['file']}: invalid (problems above)")
        return
    if not result["valid"]:
        status = f"not runnable on {target} (problems above)"
    else:
        status = f"valid on {target}" if target else "valid (no device given)"
    print(f"{result['file']}: {status}")
    research = "  [research only: `lllt run` needs --research]" if result["research"] else ""
    print(f"  {result['id']}: {result['name']}{research}")
    rows = [["phase", "ends on", "time", "ramp", "pulse", "emit", "zones", "fluence J/cm²"]]
    for phase in result["phases"]:
        time = human_duration(phase["duration_s"])
        if phase["kind"] == "fluence":
            ends = f"{_num(phase['fluence_target_j_cm2'])} J/cm²"
            time = f"~{time} (max {human_duration(phase['max_duration_s'])})"
        else:
            ends = "duration"
        pulse = phase["pulse"]
        pulse_text = (
            f"{_num(pulse['frequency_hz'])} Hz {_num(pulse['duty_pct'])} %" if pulse else "CW"
        )
        fluence = _fluence_text(phase["fluence_j_cm2"])
        if not phase["fluence_j_cm2"] and phase.get("channel_fluence_j_cm2"):
            fluence = ", ".join(
                f"{ch} {_num(f)}" for ch, f in phase["channel_fluence_j_cm2"].items()
            )
        rows.append(
            [
                phase["name"],
                ends,
                time,
                human_duration(phase["ramp_s"]) if phase["ramp_s"] else "-",
                pulse_text,
                _emit_text(phase["emit"]),
                ",".join(phase["zones"]),
                fluence,
            ]
        )
    total = human_duration(result["total_duration_s"])
    if result["max_duration_s"] > result["total_duration_s"]:
        total = f"~{total} (max {human_duration(result['max_duration_s'])})"
    rows.append(["total", "", total, "", "", "", "", _fluence_text(result["fluence_j_cm2"])])
    for line in _table(rows):
        print(line)
    print(f"  schedule: {_schedule_text(result['schedule'])}")
    if result["references"]:
        print(f"  references: {'; '.join(result['references'])}")
    safety = result.get("safety")
    if safety is not None:
        verdict = "accepted" if safety["accepted"] else "REFUSED"
        if safety["accepted"] and safety.get("needs_research_flag"):
            verdict = "accepted with --research"
        print(f"  safety (preflight of `lllt run`): {verdict}")
        thermal = safety.get("thermal")
        if thermal is not None:
            print(
                f"    predicted peak scalp temperature {thermal['peak_c']:.1f} °C "
                f"(derate at {thermal['warn_c']:g} °C, stop at {thermal['abort_c']:g} °C)"
            )
        for reason in safety["reasons"]:
            print(f"    {reason['action']}: [{reason['source']}] {_one_line(reason['message'])}")
        for assumption in safety.get("assumptions", []):
            print(f"    assumed: {assumption}")
    print()


# --- show ---------------------------------------------------------------------------------


@protocol_app.command(
    "show",
    epilog=epilog("lllt protocol show aga-red-eod-25min", "lllt protocol show my-protocol.toml"),
)
@handle_errors
def show(
    protocols: Annotated[
        list[str],
        typer.Argument(metavar="ID", help="Shipped protocol ids or protocol files."),
    ],
) -> None:
    """Print every number of a protocol with where it comes from (published, derived or
    chosen) and the dose arithmetic of each phase."""
    from lllt.errors import InvalidInput
    from lllt.protocol import load_protocol, resolve

    for i, name in enumerate(protocols):
        path = resolve(name)
        if not path.exists() and not path.suffix:
            raise InvalidInput(
                f"no shipped protocol or file named {name!r}",
                advice="See `lllt protocol list` for the shipped ids.",
            )
        if i:
            print()
        for line in show_lines(load_protocol(path)):
            print(line)


def show_lines(protocol: Any) -> list[str]:
    """The text of `lllt protocol show` for one protocol."""
    from lllt.safety.limits import DEFAULT_LIMITS

    out = [f"{protocol.id}: {protocol.name}"]
    if protocol.research:
        out.append("  research only: `lllt run` needs --research")
    if protocol.meta and protocol.meta.profile:
        out.append(f"  written for the device profile {protocol.meta.profile}")
    for ref in protocol.references:
        out.append(f"  reference: {ref}")
    out += ["", "Numbers and where they come from (published / derived / chosen):"]
    for key, value in protocol.numbers().items():
        out.append(f"  {key}  {value}")
        entry = protocol.provenance.get(key)
        out.append(f"      {entry.text}" if entry else "      no provenance given in the file")
    out += ["", "Dose per session (scalp average; irradiance x duty x (time - ramp / 2)):"]
    totals: dict[str, float] = {}
    for phase in protocol.phases:
        duty = phase.duty_pct
        duty_text = f" x {_num(duty)} %" if phase.pulse else ""
        for key, irradiance in phase.emit.items():
            label = f"{key[:-2]} nm" if key.endswith("nm") else key
            if phase.fluence is not None:
                seconds = phase.duration_at(irradiance)
                out.append(
                    f"  {phase.name}, {label}: target {_num(phase.fluence)} J/cm²; at "
                    f"{_num(irradiance)} mW/cm²{duty_text} that takes about "
                    f"{_num(seconds)} s (ramp {_num(phase.ramp)} s included)"
                )
                dose = phase.fluence
            else:
                dose = phase.fluence_at(irradiance)
                out.append(
                    f"  {phase.name}, {label}: {_num(irradiance)} mW/cm²{duty_text} x "
                    f"({_num(phase.duration or 0.0)} s - {_num(phase.ramp)} s / 2) / 1000 "
                    f"= {_num(dose)} J/cm²"
                )
            totals[label] = totals.get(label, 0.0) + dose
    per = DEFAULT_LIMITS.max_fluence_session_j_cm2
    total_cap = DEFAULT_LIMITS.max_total_fluence_session_j_cm2
    out.append(
        "  session: "
        + ", ".join(f"{k} {_num(v)} J/cm²" for k, v in totals.items())
        + (f"; {_num(sum(totals.values()))} J/cm² over all wavelengths" if len(totals) > 1 else "")
    )
    out.append(
        f"  default limits: {per:g} J/cm² per wavelength and {total_cap:g} J/cm² in total "
        "per session (docs/safety.md)"
    )
    if protocol.notes:
        out += ["", "Notes:"] + [f"  {line}" for line in protocol.notes.strip().splitlines()]
    return out


# --- list and schema ---------------------------------------------------------------------


@protocol_app.command("list", epilog=epilog("lllt protocol list", "lllt protocol list --json"))
@handle_errors
def list_(
    json_out: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Show the shipped protocols and the device profile each was written for."""
    from lllt.errors import FileFormatError
    from lllt.protocol import load_protocol, shipped_protocols
    from lllt.units import human_duration

    entries: list[dict[str, Any]] = []
    for path in shipped_protocols():
        try:
            protocol = load_protocol(path)
        except FileFormatError as error:  # a broken install: say which file, keep listing
            err(f"error: {_one_line(str(error))}")
            continue
        fluence_phase = any(p.is_fluence for p in protocol.phases)
        entries.append(
            {
                "id": protocol.id,
                "name": protocol.name,
                "file": str(path),
                "wavelengths_nm": list(protocol.wavelengths),
                "session_s": protocol.expected_duration_s,
                "ends_on_fluence": fluence_phase,
                "schedule": _schedule_text(
                    {
                        "min_interval_s": protocol.schedule.min_interval,
                        "max_sessions_per_week": protocol.schedule.max_sessions_per_week,
                        "course_s": protocol.schedule.course,
                    }
                    if protocol.schedule
                    else None
                ),
                "profile": protocol.meta.profile if protocol.meta else None,
                "research": protocol.research,
            }
        )
    if json_out:
        print_json(entries)
        return
    rows = [["id", "wavelengths", "session", "schedule", "profile"]]
    for e in entries:
        session = human_duration(e["session_s"])
        rows.append(
            [
                e["id"] + (" (research)" if e["research"] else ""),
                ", ".join(f"{wl} nm" for wl in e["wavelengths_nm"]),
                f"~{session} (to a fluence)" if e["ends_on_fluence"] else session,
                e["schedule"],
                e["profile"] or "-",
            ]
        )
    for line in _table(rows, indent=""):
        print(line)
    print("\nCheck one with: lllt protocol check ID --profile PROFILE")


@protocol_app.command("schema", epilog=epilog("lllt protocol schema -o lllt-protocol.schema.json"))
@handle_errors
def schema(
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write to FILE instead of stdout."),
    ] = None,
) -> None:
    """Write the JSON Schema of protocol files (for editors that validate as you type)."""
    import json

    from lllt.errors import InvalidInput
    from lllt.protocol import json_schema

    text = json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"
    if output is None:
        print(text, end="")
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as error:
        raise InvalidInput(
            f"cannot write {output}: {error.strerror or error}",
            advice="Give a path in a writable directory with -o, or leave -o out for stdout.",
        ) from None

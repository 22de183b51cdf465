"""``lllt run``: one treatment session, watched, stoppable with Ctrl-C, logged."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import typer

from lllt.cli._app import app, err, handle_errors, print_json

if TYPE_CHECKING:
    from lllt import wire
    from lllt.plan import SessionPlan
    from lllt.safety import MonitorAction, PreflightResult
    from lllt.session import Observer, SessionOutcome


def _fmt_s(seconds: float) -> str:
    seconds = max(0.0, seconds)
    m, s = divmod(round(seconds), 60)
    return f"{m}:{s:02d}"


def _wl(values: dict[int, float]) -> str:
    return ", ".join(f"{wl} nm {v:.3g} J/cm²" for wl, v in sorted(values.items())) or "none"


def print_preflight(result: PreflightResult, out: Any = None) -> None:
    """The analysis a person reads before saying yes."""
    out = out or sys.stdout
    plan = result.plan
    proto = plan.protocol
    dev = plan.device
    w = out.write
    w(f"{proto.name} ({proto.id}) on {dev.model} [{dev.serial}]\n")
    for i, step in enumerate(plan.steps):
        wls: dict[int, float] = {}
        for sp in step.setpoints:
            wls[sp.wavelength_nm] = max(wls.get(sp.wavelength_nm, 0.0), sp.irradiance_mw_cm2)
        emit = ", ".join(f"{wl} nm {irr:g} mW/cm²" for wl, irr in sorted(wls.items()))
        pulse = f", pulsed {step.pulse_hz:g} Hz at {step.duty_pct:g} %" if step.pulse_hz else ""
        if step.kind.name == "FLUENCE":
            length = (
                f"until {_wl({wl: step.expected_fluence_j_cm2.get(wl, 0.0) for wl in wls})}"
                f" (about {_fmt_s(step.expected_duration_s)}, at most "
                f"{_fmt_s(step.max_duration_s)})"
            )
        else:
            length = _fmt_s(step.expected_duration_s)
        w(f"  phase {i + 1} {step.name}: {emit}{pulse}, {length}\n")
    w(f"  dose: {_wl(plan.fluence_by_wavelength())}; about {_fmt_s(plan.expected_duration_s)}\n")
    if result.prediction is not None:
        p = result.prediction
        peak = p.peak
        w(
            f"  predicted peak scalp temperature {peak.peak_c:.1f} °C "
            f"(derate at {p.thresholds.warn_c:g} °C, stop at {p.thresholds.abort_c:g} °C; "
            f"ambient {p.ambient_c:g} °C)\n"
        )
    for reason in result.reasons:
        if reason.action != "refuse":
            w(f"  {reason.action}: {reason}\n")


class ConsoleObserver:
    """Progress for a person: a live panel on a terminal, plain lines otherwise.

    It implements :class:`lllt.session.Observer` without importing it, so that
    ``lllt --help`` does not load the session machinery."""

    def __init__(self, *, live: bool, quiet: bool = False) -> None:
        self.live_enabled = live
        self.quiet = quiet
        self._live: Any = None
        self._next_draw = 0.0
        self._plan: SessionPlan | None = None
        self._last: wire.Telemetry | None = None
        self._step = -1
        self._notes: list[str] = []

    # the runner's callbacks
    def preflight(self, result: PreflightResult) -> None:
        if not self.quiet:
            print_preflight(result)

    def started(self, plan: SessionPlan, plan_id: int) -> None:
        self._plan = plan
        if self.live_enabled:
            from rich.live import Live

            self._live = Live(self._render(), refresh_per_second=4, transient=False)
            self._live.start()
        elif not self.quiet:
            print(f"started (plan {plan_id}); Ctrl-C stops the session", flush=True)

    def telemetry(self, t: wire.Telemetry) -> None:
        self._last = t
        if t.step != self._step and t.step != 0xFF and self._plan is not None:
            self._step = t.step
            if not self.live_enabled and not self.quiet and t.step < len(self._plan.steps):
                print(f"phase {t.step + 1}: {self._plan.steps[t.step].name}", flush=True)
        if self._live is not None:
            now = time.monotonic()  # screen refresh only: wall time is right here
            if now >= self._next_draw:
                self._next_draw = now + 0.25
                self._live.update(self._render())

    def event(self, e: wire.Event) -> None:
        from lllt import wire

        if e.kind in (wire.EventKind.INTERLOCK, wire.EventKind.LEASE_EXPIRED, wire.EventKind.HEAD):
            self.note(f"device: {e.kind.name.lower()} (a={e.a}, value={e.value})")

    def action(self, a: MonitorAction) -> None:
        self.note(f"monitor: {a.kind.value}: {a.reason}")

    def note(self, text: str) -> None:
        if self.quiet:
            return
        if self._live is not None:
            self._notes.append(text)
            self._live.console.print(text)
        else:
            print(text, flush=True)

    def finished(self, outcome: SessionOutcome) -> None:
        self.close()

    def close(self) -> None:
        if self._live is not None:
            self._live.update(self._render())
            self._live.stop()
            self._live = None

    def _render(self) -> Any:
        from rich.table import Table

        table = Table.grid(padding=(0, 2))
        table.add_column(justify="right", style="bold")
        table.add_column()
        plan, t = self._plan, self._last
        if plan is None or t is None:
            table.add_row("state", "starting")
            return table
        step = plan.steps[t.step] if t.step < len(plan.steps) else None
        table.add_row(
            "state", t.state.name.lower() + (" (derated)" if t.derate_permille < 1000 else "")
        )
        if step is not None:
            table.add_row("phase", f"{t.step + 1}/{len(plan.steps)} {step.name}")
        elapsed = t.elapsed_ms / 1000.0
        table.add_row(
            "time",
            f"{_fmt_s(elapsed)} elapsed, about {_fmt_s(plan.expected_duration_s - elapsed)} left",
        )
        target = plan.fluence_by_wavelength()
        got: dict[int, float] = {}
        for c, f in zip(plan.device.channels, t.fluence, strict=False):
            got[c.wavelength_nm] = max(got.get(c.wavelength_nm, 0.0), f)
        for wl in sorted(target):
            table.add_row(f"{wl} nm", f"{got.get(wl, 0.0):.3f} of {target[wl]:.3f} J/cm²")
        temps = ", ".join(
            f"{z.name} {v:.1f} °C" if v is not None else f"{z.name} –"
            for z, v in zip(plan.device.zones, t.temperature, strict=False)
        )
        table.add_row("scalp", temps)
        return table


@app.command()
@handle_errors
def run(
    protocol: str = typer.Argument(..., help="Protocol file (or the id of a shipped protocol)."),
    device: str = typer.Option(..., "--device", "-d", help="Device URL, e.g. sim://reference-cap"),
    db: str = typer.Option(
        None, "--db", help="Session log (default: $LLLT_DB or the user data dir)."
    ),
    limits: str = typer.Option(None, "--limits", help="Limits file that lowers the defaults."),
    research: bool = typer.Option(False, "--research", help="Allow a research-only protocol."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Start without asking."),
    policy: str = typer.Option(
        "finish", help="If this host vanishes mid-session the device will: finish | stop."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the outcome as one JSON object."),
) -> None:
    """Run one session of a protocol on a device, with every safety layer, and log it."""
    from lllt import wire
    from lllt.errors import InvalidInput, UserAborted
    from lllt.protocol import load_protocol, resolve
    from lllt.session import RunOptions, run_protocol

    path = resolve(protocol)
    model = load_protocol(path)
    lim = None
    if limits:
        from lllt.safety import load_limits

        lim = load_limits(limits)
    try:
        link_policy = wire.LinkPolicy[policy.upper()]
    except KeyError:
        raise InvalidInput(f"--policy must be finish or stop, not {policy!r}") from None
    interactive = sys.stdin.isatty() and sys.stdout.isatty() and not json_out
    observer = ConsoleObserver(live=interactive, quiet=json_out)

    def confirm(result: PreflightResult) -> bool:
        if yes or not sys.stdin.isatty():
            return True
        observer.close()
        return typer.confirm("Start the session?", default=False)

    options = RunOptions(limits=lim, research_ok=research, policy=link_policy, confirm=confirm)
    try:
        outcome = run_protocol(
            model,
            device,
            protocol_text=Path(path).read_text(encoding="utf-8", errors="replace"),
            db=db,
            options=options,
            observer=cast("Observer", observer),
        )
    except UserAborted as e:
        observer.close()
        if json_out:
            print_json({"status": "stopped", "exit_code": e.exit_code, "message": e.message})
        raise
    finally:
        observer.close()
    if json_out:
        print_json(outcome.to_dict())
    else:
        _print_summary(outcome)
    if outcome.error is not None:
        err(f"error: {outcome.error}")
    raise typer.Exit(outcome.exit_code)


def _print_summary(o: SessionOutcome) -> None:
    line = f"session {o.session_id}: {o.status}"
    if o.outcome not in ("completed", o.status):
        line += f" ({o.outcome})"
    print(line)
    delivered = {wl: f for wl, f in o.delivered_fluence.items() if f > 0 or wl in o.planned_fluence}
    print(f"  delivered {_wl(delivered)} (planned {_wl(o.planned_fluence)})")
    if o.derated:
        print(f"  derated to {o.min_derate_permille / 10:g} % to keep the scalp cool")
    if o.duration_s is not None:
        print(f"  emitting for {_fmt_s(o.duration_s)}")
    if not o.emitters_off_confirmed:
        print("  WARNING: the emitters could not be confirmed off; take the cap off")

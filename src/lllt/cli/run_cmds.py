"""``lllt run``: one treatment session, watched, stoppable with Ctrl-C, logged."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import typer

from lllt.cli._app import (
    DB_HELP,
    DEVICE_HELP,
    JSON_HELP,
    LIMITS_HELP,
    RESEARCH_HELP,
    app,
    epilog,
    err,
    handle_errors,
    print_json,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from lllt import wire
    from lllt.plan import SessionPlan
    from lllt.safety import MonitorAction, PreflightResult
    from lllt.session import Observer, RunOptions, SessionOutcome


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

    def __init__(self, *, live: bool, quiet: bool = False, show_preflight: bool = True) -> None:
        self.live_enabled = live
        self.quiet = quiet
        self.show_preflight = show_preflight
        self.on_started: Any = None
        self._live: Any = None
        self._next_draw = 0.0
        self._plan: SessionPlan | None = None
        self._last: wire.Telemetry | None = None
        self._step = -1
        self._notes: list[str] = []

    # the runner's callbacks
    def preflight(self, result: PreflightResult) -> None:
        """Print the preflight analysis, unless quiet or told not to show it."""
        if not self.quiet and self.show_preflight:
            print_preflight(result)

    def started(self, plan: SessionPlan, plan_id: int) -> None:
        """Call ``on_started`` with the plan id; then start the live panel, or (unless quiet)
        print that the session started and that Ctrl-C stops it."""
        self._plan = plan
        if self.on_started is not None:
            self.on_started(plan_id)
        if self.live_enabled:
            from rich.live import Live

            self._live = Live(self._render(), refresh_per_second=4, transient=False)
            self._live.start()
        elif not self.quiet:
            print(f"started (plan {plan_id}); Ctrl-C stops the session", flush=True)

    def telemetry(self, t: wire.Telemetry) -> None:
        """Keep the latest sample; print each new phase on plain output (unless quiet), or
        redraw the live panel at most four times a second."""
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
        """Note the device's interlock, lease-expired and head events; others are not shown."""
        from lllt import wire

        if e.kind in (wire.EventKind.INTERLOCK, wire.EventKind.LEASE_EXPIRED, wire.EventKind.HEAD):
            self.note(f"device: {e.kind.name.lower()} (a={e.a}, value={e.value})")

    def action(self, a: MonitorAction) -> None:
        """Note a runtime monitor action and its reason."""
        self.note(f"monitor: {a.kind.value}: {a.reason}")

    def note(self, text: str) -> None:
        """Print a line of progress (above the live panel if there is one); nothing when quiet."""
        if self.quiet:
            return
        if self._live is not None:
            self._notes.append(text)
            self._live.console.print(text)
        else:
            print(text, flush=True)

    def finished(self, outcome: SessionOutcome) -> None:
        """Stop the live panel (:meth:`close`)."""
        self.close()

    def close(self) -> None:
        """Draw the live panel a last time and stop it; nothing to do without one."""
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
        from lllt.dose import most_dosed

        ids = [c.id for c in plan.device.channels]
        got = most_dosed(zip(ids, t.fluence, strict=False), plan.device.channel_wavelength)
        for wl in sorted(target):
            table.add_row(f"{wl} nm", f"{got.get(wl, 0.0):.3f} of {target[wl]:.3f} J/cm²")
        temps = ", ".join(
            f"{z.name} {v:.1f} °C" if v is not None else f"{z.name} –"
            for z, v in zip(plan.device.zones, t.temperature, strict=False)
        )
        table.add_row("scalp", temps)
        return table


@app.command(
    epilog=epilog(
        'lllt run aga-red-eod-25min --device "sim://reference-cap?speed=max" --db ./demo.db',
        "lllt run my-protocol.toml --device serial:///dev/ttyACM0 --yes --json",
        codes=(
            "Exit codes: 0 completed; 1 refused or stopped by a safety limit or a "
            "device fault; 2 invalid input (also: no terminal to ask and no --yes); "
            "3 device, link or log problem; 130 declined or stopped by the user "
            "(emitters confirmed off)."
        ),
    )
)
@handle_errors
def run(
    protocol: str = typer.Argument(
        ..., metavar="PROTOCOL", help="Protocol FILE, or the ID of a shipped protocol."
    ),
    device: str = typer.Option(..., "--device", "-d", metavar="URL", help=DEVICE_HELP),
    db: str = typer.Option(
        None,
        "--db",
        metavar="FILE",
        help=DB_HELP,
    ),
    limits: str = typer.Option(None, "--limits", metavar="FILE", help=LIMITS_HELP),
    research: bool = typer.Option(False, "--research", help=RESEARCH_HELP),
    yes: bool = typer.Option(
        False, "--yes", "-y", help="Start without asking (needed when stdin is not a terminal)."
    ),
    policy: str = typer.Option(
        "finish",
        metavar="POLICY",
        help="What the device does if this host vanishes mid-session: finish or stop.",
    ),
    json_out: bool = typer.Option(False, "--json", help=JSON_HELP),
    dev_key: bool = typer.Option(
        False,
        "--dev-key",
        help="Sign with the published development key (development boards only).",
    ),
) -> None:
    """Run one session of a protocol on a device, with every safety layer, and log it.

    Shows the preflight analysis and asks before anything is sent to the device (the
    device is connected for the session only after yes). Every ending prints one summary:
    outcome, session id, dose delivered per wavelength against the plan, the log written
    and when the next session is allowed (with --json the same object, also on refusal or
    error). A missing log is created, and the run says so, only in an existing folder."""
    from lllt.errors import LlltError

    ctx = _RunContext(json_out=json_out, limits_file=limits)
    try:
        try:
            code = _run(ctx, protocol, device, db, limits, research, yes, policy, dev_key)
        except KeyboardInterrupt:  # anywhere outside the session itself: say so, exit 130
            from lllt.errors import UserAborted

            raise UserAborted("stopped by the user", advice="") from None
    except LlltError as e:
        ctx.emit(ctx.failure(e))
        raise
    raise typer.Exit(code)


class _RunContext:
    """What one `lllt run` learned on the way, for the summary of however it ends."""

    def __init__(self, *, json_out: bool, limits_file: str | None) -> None:
        self.json_out = json_out
        self.limits_file = limits_file
        self.log: Path | None = None
        self.log_created = False
        self.simulated: bool | None = None
        self.plan_id: int | None = None
        self.planned: dict[int, float] = {}
        self.started_at: float | None = None

    # --- the summary object ---------------------------------------------------------------
    def next_allowed(self) -> dict[str, Any] | None:
        """When the log allows the next session on this kind of device (real or simulated)."""
        if self.log is None or self.simulated is None or not self.log.exists():
            return None
        from lllt.cli.session_cmds import _outlook
        from lllt.clock import wall_time
        from lllt.safety import DEFAULT_LIMITS, load_limits
        from lllt.store import Store

        try:
            lim = DEFAULT_LIMITS if self.limits_file is None else load_limits(self.limits_file)
            with Store.open(self.log) as store:
                return _outlook(
                    store, wall_time(), simulated=self.simulated, limits=lim
                ).next_allowed()
        except Exception:  # the summary must never hide the real outcome
            return None

    def base(self) -> dict[str, Any]:
        return {
            "log": str(self.log) if self.log is not None else None,
            "log_created": self.log_created,
        }

    def from_outcome(self, o: SessionOutcome) -> dict[str, Any]:
        data = {**o.to_dict(), **self.base(), "next_allowed": self.next_allowed()}
        if o.error is not None:
            data["error"] = o.error.to_dict()
        return data

    def failure(self, e: Exception) -> dict[str, Any]:
        """The summary when `lllt run` ends by raising: a refusal, a decline, an error."""
        from lllt.errors import LlltError, PreflightRefused, UserAborted

        code = e.exit_code if isinstance(e, LlltError) else 1
        data: dict[str, Any] = {
            "session_id": None,
            "plan_id": self.plan_id,
            "status": "not_started",
            "outcome": "error",
            "reason": getattr(e, "message", str(e)),
            "exit_code": code,
            "planned_fluence_j_cm2": {str(k): v for k, v in sorted(self.planned.items())},
            "delivered_fluence_j_cm2": {},
            **self.base(),
            "next_allowed": None,
            "error": e.to_dict() if isinstance(e, LlltError) else {"message": str(e)},
        }
        if isinstance(e, PreflightRefused):
            from lllt.store import iso_utc

            data["outcome"] = "refused"
            data["reasons"] = [
                r.to_dict() for r in getattr(e, "reasons", []) if r.action == "refuse"
            ]
            at = getattr(e, "next_allowed_at", None)
            data["next_allowed"] = (
                {"now": False, "at": iso_utc(at), "basis": "preflight"} if at is not None else None
            )
            return data
        row = self._row()
        if row is not None:  # the session had begun: its row says what was delivered
            data.update(
                session_id=row.id,
                status=str(row.status.value),
                outcome=row.outcome or data["outcome"],
                planned_fluence_j_cm2={str(k): v for k, v in sorted(row.planned_fluence.items())},
                delivered_fluence_j_cm2={
                    str(k): v for k, v in sorted(row.delivered_fluence.items())
                },
                duration_s=row.actual_duration_s,
                emitters_off_confirmed=isinstance(e, UserAborted),
            )
        elif isinstance(e, UserAborted):
            data["outcome"] = "declined"
        data["next_allowed"] = self.next_allowed()
        return data

    def _row(self) -> Any:
        if self.started_at is None or self.log is None or not self.log.exists():
            return None
        from lllt.store import Store

        try:
            with Store.open(self.log) as store:
                for row in store.sessions(limit=5):
                    if row.created_at >= self.started_at - 1.0:
                        return row
        except Exception:
            return None
        return None

    # --- printing ---------------------------------------------------------------------------
    def emit(self, data: dict[str, Any]) -> None:
        if self.json_out:
            print_json(data)
        else:
            _print_summary(data)
        sys.stdout.flush()


def _prepare_log(db: str | None) -> tuple[Path, bool]:
    """The log `lllt run` writes: (path, exists). A new file only in an existing folder
    (the default location's folder is made), never over a file that is not a log."""
    from lllt.errors import InvalidInput
    from lllt.store import ENV_DB, Store, resolve_db_path

    path = resolve_db_path(db)
    explicit = bool(db) or bool(os.environ.get(ENV_DB))
    if path.is_dir():
        raise InvalidInput(
            f"the session log {path} is a folder", advice="Give a FILE path with --db."
        )
    if path.exists():
        Store.open(path).close()  # a foreign or damaged file is refused here, before connecting
        return path, True
    if explicit and not path.parent.is_dir():
        raise InvalidInput(
            f"cannot create the session log {path}: the folder {path.parent} does not exist",
            advice=f"Check the path for a typo, or create the folder first (mkdir -p "
            f"{path.parent}).",
        )
    return path, False


def _run(
    ctx: _RunContext,
    protocol: str,
    device: str,
    db: str | None,
    limits: str | None,
    research: bool,
    yes: bool,
    policy: str,
    dev_key: bool = False,
) -> int:
    from dataclasses import replace

    from lllt import clock
    from lllt.session import RunOptions, run_protocol

    path, model, lim, link_policy = _read_inputs(protocol, device, limits, policy)
    ask = not yes
    _require_terminal_to_ask(ask)
    log, exists = _prepare_log(db)
    ctx.log = log
    text = Path(path).read_text(encoding="utf-8", errors="replace")
    options = RunOptions(limits=lim, research_ok=research, policy=link_policy)

    confirmed: Any = None
    if ask:
        confirmed = _look_and_ask(ctx, model, device, log if exists else None, text, options)
    if dev_key:
        err(
            "warning: --dev-key signs with the published development key: anyone can sign "
            "for this device; never use it on a cap that is worn"
        )
    interactive = sys.stdin.isatty() and sys.stdout.isatty() and not ctx.json_out
    observer = ConsoleObserver(live=interactive, quiet=ctx.json_out, show_preflight=not ask)
    observer.on_started = lambda plan_id: _remember_start(ctx, plan_id)
    ctx.started_at = clock.wall_time()
    if not exists:
        _announce_new_log(ctx, log)
    try:
        outcome = run_protocol(
            model,
            device,
            protocol_text=text,
            db=log,
            options=replace(options, confirm=_confirm_unchanged(ctx, confirmed, observer)),
            observer=cast("Observer", observer),
            dev_key=dev_key,
        )
    finally:
        observer.close()
    ctx.emit(ctx.from_outcome(outcome))
    if outcome.error is not None:
        err(f"error: {outcome.error}")
    return outcome.exit_code


def _read_inputs(
    protocol: str, device: str, limits: str | None, policy: str
) -> tuple[Any, Any, Any, wire.LinkPolicy]:
    """Check `lllt run`'s arguments: (protocol path, model, limits or None, link policy)."""
    from lllt import wire
    from lllt.errors import InvalidInput
    from lllt.protocol import load_protocol, resolve
    from lllt.transport import parse_url

    path = resolve(protocol)
    model = load_protocol(path)
    parse_url(device)
    lim = None
    if limits:
        from lllt.safety import load_limits

        lim = load_limits(limits)
    try:
        link_policy = wire.LinkPolicy[policy.upper()]
    except KeyError:
        raise InvalidInput(f"--policy must be finish or stop, not {policy!r}") from None
    return path, model, lim, link_policy


def _require_terminal_to_ask(ask: bool) -> None:
    """Refuse to start when `lllt run` must ask and stdin is not a terminal."""
    from lllt.errors import InvalidInput

    if ask and not sys.stdin.isatty():
        raise InvalidInput(
            "not started: lllt run asks before it starts a session, and stdin is not a terminal",
            advice="Add --yes to start without asking (nothing was sent to the device).",
        )


def _look_and_ask(
    ctx: _RunContext, model: Any, device: str, log: Path | None, text: str, options: RunOptions
) -> Any:
    """Preflight with nothing kept connected, ask, and return the wire plan agreed to."""
    from lllt.errors import UserAborted

    # look first: connect, preflight, disconnect; then ask with nothing connected and
    # no simulated time running, and connect anew for the session after a yes
    result = _look(model, device, log, text, options)
    out = sys.stderr if ctx.json_out else sys.stdout
    ctx.simulated = result.plan.device.simulated
    ctx.planned = result.plan.fluence_by_wavelength()
    print_preflight(result, out=out)
    if not _ask("Start the session?", out):
        raise UserAborted(
            "not started: the session was declined; nothing was sent to the device",
            advice="",
        )
    return result.plan.to_wire(0)


def _confirm_unchanged(
    ctx: _RunContext, confirmed: Any, observer: ConsoleObserver
) -> Callable[[PreflightResult], bool]:
    """The session's confirm step: go on only if the plan is the one said yes to, if any."""

    def confirm(result: PreflightResult) -> bool:
        ctx.simulated = result.plan.device.simulated
        ctx.planned = result.plan.fluence_by_wavelength()
        if confirmed is not None and result.plan.to_wire(0) != confirmed:
            observer.note(
                "the preflight analysis changed since you said yes (new readings from the "
                "device); not started"
            )
            return False
        return True

    return confirm


def _announce_new_log(ctx: _RunContext, log: Path) -> None:
    """Say that this run creates the session log, and remember it for the summary."""
    msg = f"creating the session log {log}"
    print(msg, file=sys.stderr if ctx.json_out else sys.stdout, flush=True)
    ctx.log_created = True


def _remember_start(ctx: _RunContext, plan_id: int) -> None:
    ctx.plan_id = plan_id


def _ask(question: str, out: Any) -> bool:
    """y/N on the terminal, outside any event loop: one Ctrl-C ends it at once."""
    from lllt.errors import UserAborted

    try:
        out.write(f"{question} [y/N] ")
        out.flush()
        answer = _read_line(sys.stdin)
    except KeyboardInterrupt:
        out.write("\n")
        raise UserAborted(
            "not started: stopped by the user at the prompt; nothing was sent to the device",
            advice="",
        ) from None
    return answer.strip().lower() in ("y", "yes")


def _read_line(stream: Any) -> str:
    """``stream.readline()``, woken every 0.2 s so that Ctrl-C is seen while it waits.

    Python runs a signal's handler on the main thread between two steps of Python code;
    a blocking read is cut short for it only when the signal interrupts that very system
    call. A Ctrl-C that lands just before the read starts (right after the prompt is
    shown), or one the kernel hands to another thread, leaves the handler waiting behind
    the read: without this, for ever, or until the user presses Enter.
    """
    import select

    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return str(stream.readline())  # not a file (a test's StringIO): nothing to wait on
    while not select.select([fd], [], [], 0.2)[0]:
        pass  # back in Python: a pending SIGINT raises KeyboardInterrupt here
    return str(stream.readline())


def _look(
    model: Any, device: str, log: Path | None, text: str, options: RunOptions
) -> PreflightResult:
    """Connect, run the preflight `lllt run` would run, and disconnect; nothing is sent
    that emits, and no session row is written (a missing log is not created)."""
    from dataclasses import replace

    from lllt import clock
    from lllt.device import Cap
    from lllt.errors import UserAborted
    from lllt.session import SessionRunner
    from lllt.store import Store
    from lllt.transport import wants_virtual_clock

    seen: list[PreflightResult] = []

    def capture(result: PreflightResult) -> bool:
        seen.append(result)
        return False

    async def main() -> None:
        store = Store.open(log if log is not None else ":memory:")
        try:
            async with Cap.connect(device) as cap:
                runner = SessionRunner(
                    cap, store, model, protocol_text=text, options=replace(options, confirm=capture)
                )
                try:
                    await runner.run()
                except UserAborted:
                    if not seen:
                        raise
        finally:
            store.close()

    virtual, speed = wants_virtual_clock(device)
    try:
        clock.run(main(), virtual=virtual, speed=speed)
    except KeyboardInterrupt:
        raise UserAborted(
            "not started: stopped by the user; nothing was sent to the device", advice=""
        ) from None
    if not seen:  # pragma: no cover - run() either confirms or raises
        raise UserAborted("not started", advice="")
    return seen[0]


def _print_summary(d: dict[str, Any]) -> None:
    def wl(values: dict[str, float]) -> str:
        return _wl({int(k): v for k, v in values.items()})

    status = d["status"]
    if d.get("session_id") is None:
        line = f"not started ({d['outcome']})"
    else:
        line = f"session {d['session_id']}: {status}"
        if d["outcome"] not in ("completed", status):
            line += f" ({d['outcome']})"
    print(line)
    planned = d.get("planned_fluence_j_cm2") or {}
    if d.get("session_id") is not None:
        delivered = {
            k: v
            for k, v in (d.get("delivered_fluence_j_cm2") or {}).items()
            if v > 0 or k in planned
        }
        print(f"  delivered {wl(delivered)} (planned {wl(planned)})")
    if d.get("derated"):
        print(f"  derated to {d['min_derate_permille'] / 10:g} % to keep the scalp cool")
    if d.get("duration_s") is not None:
        print(f"  emitting for {_fmt_s(d['duration_s'])}")
    if d.get("session_id") is not None and d.get("emitters_off_confirmed") is False:
        print("  WARNING: the emitters could not be confirmed off; take the cap off")
    if d.get("log"):
        created = " (created by this run)" if d.get("log_created") else ""
        print(f"  log: {d['log']}{created}")
    nxt = d.get("next_allowed")
    if nxt is not None:
        if nxt["now"]:
            print("  next session: allowed now")
        else:
            basis = f" ({nxt['basis']})" if nxt.get("basis") else ""
            print(f"  next session: not before {nxt['at']}{basis}")

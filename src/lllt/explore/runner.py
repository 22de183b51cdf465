"""Run one scenario on the virtual clock: the cap, the host runs and their events, then the
final reconciliation; collect what the hosts saw and what the device really did.

Everything runs on one :class:`lllt.clock.VirtualClockLoop` whose epoch is fixed, so a
seed gives the same trace on every machine and at every speed. Each host run is the
host's real code (:class:`lllt.device.Cap`, :class:`lllt.session.SessionRunner`,
:class:`lllt.store.Store` on a SQLite file of its own connection), as a separate ``lllt
run`` process would use it; only the clock, the plan ids and the request sequence
numbers are made deterministic.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import sqlite3
import tempfile
import time
import traceback
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lllt import clock
from lllt import wire as W
from lllt.device import Cap
from lllt.errors import LlltError, UserAborted
from lllt.explore.adapter import DeviceAdapter, DeviceHandle, DeviceSpec, Truth
from lllt.explore.scenario import SIGNALS, HostEvent, HostRun, Scenario
from lllt.session import Observer, RunOptions, SessionRunner

if TYPE_CHECKING:
    from lllt.store import Store
    from lllt.transport.base import Transport

#: the host timeline's epoch (wall seconds at virtual time 0): fixed, for reproducible logs
EPOCH = 1_767_225_600.0  # 2026-01-01T00:00:00Z
#: how long the explorer waits, at most, for a session the hosts left running to end
IDLE_WAIT_S = 4 * 3600.0


@dataclass
class RunRecord:
    """One host run as the host saw it."""

    index: int
    log: int
    started_t: float = 0.0
    finished_t: float | None = None
    result: str = ""  # outcome status, or what was raised
    exit_code: int | None = None
    message: str = ""
    plan_id: int | None = None
    session_id: int | None = None
    start_sent: bool = False
    killed_t: float | None = None
    #: the row as this host left it (status, outcome, delivered), before anyone else
    claim: dict[str, Any] | None = None
    stop_decisions: list[tuple[float, str]] = field(default_factory=list)
    link_faults: list[float] = field(default_factory=list)  # when the monitor saw the link go
    died_of: str | None = None  # the signal whose default action ended the process
    crash: str | None = None
    protocol_rules: tuple[float | None, int | None] = (None, None)  # min interval, per week
    research_ok: bool = False
    options: RunOptions | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able summary of the run: times rounded to 1 ms, result, exit code, plan and
        session ids, the row this host left and its stop decisions."""
        return {
            "index": self.index,
            "log": self.log,
            "started_t": round(self.started_t, 3),
            "finished_t": None if self.finished_t is None else round(self.finished_t, 3),
            "result": self.result,
            "exit_code": self.exit_code,
            "message": self.message,
            "plan_id": self.plan_id,
            "session_id": self.session_id,
            "killed_t": self.killed_t,
            "claim": self.claim,
            "stop_decisions": [[round(t, 3), why] for t, why in self.stop_decisions],
            "crash": self.crash,
        }


@dataclass
class Result:
    """What one scenario did: the host runs as they saw it, the device's ground truth and
    final records, each log's rows after the final pass (by log index), the host's trace,
    the violations once checked, a failed final pass, and the wall time (s)."""

    scenario: Scenario
    scheme: str
    runs: list[RunRecord]
    truth: Truth
    logs: dict[int, list[Any]]  # log index -> SessionRow list after the final pass
    records: tuple[W.SessionRecord, ...]
    host_trace: list[dict[str, Any]]
    violations: list[Any] = field(default_factory=list)
    final_error: str | None = None
    wall_s: float = 0.0

    def trace(self) -> list[dict[str, Any]]:
        """Host-visible events and device snapshots, merged in time order (comparable)."""
        both = [{"src": "host", **e} for e in self.host_trace]
        both += [{"src": "device", **e} for e in self.truth.trace]
        return sorted(both, key=lambda e: e["t_ms"])

    def to_dict(self, *, trace: bool = True) -> dict[str, Any]:
        """The result as JSON-able data (what ``lllt explore --trace`` writes); ``trace``: with
        the merged trace of :meth:`trace`."""
        out: dict[str, Any] = {
            "seed": self.scenario.seed,
            "scheme": self.scheme,
            "scenario": self.scenario.to_dict(),
            "runs": [r.to_dict() for r in self.runs],
            "device_sessions": [s.to_dict() for s in self.truth.sessions],
            "device_records": [W.to_dict(r) for r in self.records],
            "logs": {
                str(k): [
                    {
                        "id": r.id,
                        "plan_id": r.plan_id,
                        "status": str(r.status),
                        "outcome": r.outcome,
                        "counts": r.counts,
                        "delivered_by_channel": {
                            str(c): v for c, v in r.delivered_by_channel.items()
                        },
                    }
                    for r in rows
                ]
                for k, rows in self.logs.items()
            },
            "violations": [v.to_dict() for v in self.violations],
            "final_error": self.final_error,
        }
        if trace:
            out["trace"] = self.trace()
        return out


class _Cap(Cap):
    """The host's client with deterministic plan ids and sequence numbers."""

    def __init__(self, transport: Any, rng: random.Random, on_start: Any) -> None:
        super().__init__(transport)
        self._rng = rng
        self._seq = rng.randrange(0x10000)
        self._on_start = on_start

    def new_plan_id(self) -> int:  # type: ignore[override]
        return 1 + self._rng.randrange(2**31 - 1)

    async def start(self, plan_id: int) -> W.Started:
        self._on_start(plan_id)
        return await super().start(plan_id)


class _Observer(Observer):
    def __init__(self, trace: Any, rec: RunRecord) -> None:
        self._trace = trace
        self._rec = rec

    def preflight(self, result: Any) -> None:
        refused = [r.constraint for r in result.refusals]
        self._trace("preflight", refused=refused)

    def started(self, plan: Any, plan_id: int) -> None:
        self._trace("started", plan_id=plan_id)

    def action(self, a: Any) -> None:
        kind = a.kind.value
        self._trace("monitor", action=kind, rule=a.rule, by_device=bool(a.by_device))
        t = asyncio.get_running_loop().time()
        if kind == "abort" and not a.by_device:
            self._rec.stop_decisions.append((t, f"{kind}:{a.rule}"))
        elif kind == "link_fault":
            self._rec.link_faults.append(t)

    def note(self, text: str) -> None:
        self._trace("note", text=text)

    def finished(self, outcome: Any) -> None:
        self._trace(
            "finished",
            status=outcome.status,
            outcome=outcome.outcome,
            exit_code=outcome.exit_code,
            off=outcome.emitters_off_confirmed,
        )


def _deterministic(store: Any, loop: asyncio.AbstractEventLoop) -> None:
    """Commit pacing on the loop clock instead of the process's monotonic clock."""
    store.begin_session = partial(store.begin_session, wall_clock=loop.time)
    store.recorder = partial(store.recorder, wall_clock=loop.time)


class ScenarioRun:
    """One scenario being run on the virtual clock: its cap, its host runs, and their session
    logs in ``workdir``."""

    def __init__(self, scenario: Scenario, adapter: DeviceAdapter, workdir: Path) -> None:
        self.sc = scenario
        self.adapter = adapter
        self.workdir = workdir
        self.handle: DeviceHandle | None = None
        self.runs: list[RunRecord] = []
        self.trace: list[dict[str, Any]] = []
        self._protocols: dict[str, Any] = {}
        self._zombies: list[asyncio.Task[Any]] = []
        self._signals: dict[asyncio.Task[Any], dict[int, tuple[Any, tuple[Any, ...]]]] = {}

    def db(self, log: int) -> Path:
        """The session log file of log index ``log``."""
        return self.workdir / f"log{log}.db"

    def _note(self, run: int | None, kind: str, **data: Any) -> None:
        t = asyncio.get_running_loop().time()
        entry: dict[str, Any] = {"t_ms": round(t * 1000), "kind": kind}
        if run is not None:
            entry["run"] = run
        where = str(self.workdir)
        entry.update(
            {k: v.replace(where, "WORKDIR") if isinstance(v, str) else v for k, v in data.items()}
        )
        self.trace.append(entry)

    def _protocol(self, text: str) -> Any:
        from lllt.protocol import loads_protocol

        if text not in self._protocols:
            self._protocols[text] = loads_protocol(text, source="explorer protocol")
        return self._protocols[text]

    # --- the whole scenario ---------------------------------------------------------------
    async def main(self) -> Result:
        """Run the whole scenario on the running virtual-clock loop and return what happened.

        Powers the cap on, starts each host run at its time (after a power cycle where asked),
        waits until all have ended and the cap is idle (at most 4 h), takes the reconcile path
        on every log (retried on a device or log error), reads the logs back and switches the
        cap off. Invariants are not checked.
        """
        loop = asyncio.get_running_loop()
        loop.epoch = EPOCH  # type: ignore[attr-defined]
        self._install_signal_table(loop)
        sc = self.sc
        spec = DeviceSpec(sc.profile, sc.seed, sc.faults, sc.ambient_c, sc.defects)
        handle = self.adapter.create(spec, self.workdir)
        self.handle = handle
        await handle.power_on()
        tasks: list[asyncio.Task[None]] = []
        logs = set()
        for i, run in enumerate(sc.runs):
            logs.add(run.log)
            if run.power_cycle:
                await self._settle(tasks)
                self._note(None, "power_off")
                await handle.power_off()
                await _sleep_until(run.at_s - 1.0)
                if run.wiped:
                    await handle.power_on(wiped=True)
                else:
                    await handle.power_on()
                self._note(None, "power_on", wiped=run.wiped)
            await _sleep_until(run.at_s)
            rec = RunRecord(i, run.log)
            self.runs.append(rec)
            tasks.append(loop.create_task(self._host_run(rec, run)))
        await self._settle(tasks)
        final_error = None
        for attempt in range(6):  # a user tries again later when a noisy link fails it
            try:
                await self._final_pass(sorted(logs))
                final_error = None
                break
            except LlltError as err:
                final_error = f"{type(err).__name__}: {err.message}"
                await asyncio.sleep(30.0 * (attempt + 1))
            except Exception as err:  # a host that cannot reconcile: a finding of its own
                final_error = f"{type(err).__name__}: {err}"
                break
        records = handle.final_records()
        truth = handle.truth
        rows = {}
        from lllt.store import Store

        for log in sorted(logs):
            if self.db(log).exists():
                with Store.open(self.db(log), create=False) as store:
                    rows[log] = store.sessions(newest_first=False)
            else:
                rows[log] = []
        for z in self._zombies:
            z.cancel()
        await asyncio.gather(*self._zombies, return_exceptions=True)
        await handle.power_off()
        return Result(
            sc,
            self.adapter.name,
            self.runs,
            truth,
            rows,
            records,
            self.trace,
            final_error=final_error,
        )

    async def _settle(self, tasks: list[asyncio.Task[None]]) -> None:
        """Every host run done, and no session left running on the cap."""
        await asyncio.gather(*tasks, return_exceptions=True)
        assert self.handle is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + IDLE_WAIT_S
        while self.handle.busy and loop.time() < deadline:
            await asyncio.sleep(5.0)

    async def _final_pass(self, logs: list[int]) -> None:
        """The reconcile path, for every log: what `lllt run` does before its preflight."""
        from lllt.session import adopt_device_records, reconcile_pending
        from lllt.store import Store

        assert self.handle is not None
        loop = asyncio.get_running_loop()
        for log in logs:
            store = Store.open(self.db(log))
            _deterministic(store, loop)
            cap = _Cap(self.handle.transport("", 0), random.Random(f"final:{log}"), lambda p: None)
            try:
                await cap.open()
                store.mark_interrupted(clock.wall_time())
                await reconcile_pending(cap, store)
                await adopt_device_records(cap, store)
                self._note(None, "final_pass", log=log)
            finally:
                await cap.close()
                store.close()

    # --- one host run -----------------------------------------------------------------------
    async def _host_run(self, rec: RunRecord, run: HostRun) -> None:
        """One ``lllt run`` process: its protocol and options, then its session to the end."""
        from lllt.store import Store

        assert self.handle is not None
        loop = asyncio.get_running_loop()
        rec.started_t = loop.time()
        self._note(rec.index, "run", describe=run.describe())
        try:
            protocol = self._protocol(run.protocol_text)
        except LlltError as err:
            rec.result, rec.message = "bad_protocol", err.message
            self._note(rec.index, "result", result=rec.result)
            return
        opts = _run_options(rec, run, protocol)
        store = Store.open(self.db(run.log))
        _deterministic(store, loop)
        transport = self.handle.transport(run.link, run.link_seed)
        await self._run_process(_HostProcess(self, rec, run, store, transport), protocol, opts)

    async def _run_process(self, p: _HostProcess, protocol: Any, opts: RunOptions) -> None:
        """Connect, run the session with the run's host events on their timers, then end."""
        loop = asyncio.get_running_loop()
        rec, run = p.rec, p.run
        cap = _Cap(p.transport, random.Random(f"{self.sc.seed}:{rec.index}:cap"), p.on_start)
        timers: list[asyncio.TimerHandle] = []
        try:
            try:
                await asyncio.wait_for(cap.open(), 60.0)
            except (LlltError, TimeoutError, OSError) as err:
                rec.result = "connect_failed"
                rec.message = getattr(err, "message", str(err))
                p.note("result", result=rec.result, message=rec.message)
                return
            p.runner = SessionRunner(
                cap,
                p.store,
                protocol,
                protocol_text=run.protocol_text,
                options=opts,
                observer=_Observer(p.note, rec),
            )
            p.task = loop.create_task(self._guarded(p.runner))
            for ev in run.events:
                timers.append(loop.call_at(rec.started_t + ev.at_s, self._fire, p, ev))
            await _await_outcome(p)
        finally:
            for h in timers:
                h.cancel()
            if not p.killed:
                await _exit_process(p, cap)

    def _kill(self, p: _HostProcess, t: float) -> None:
        """The process is gone: no more bytes, no more writes, its pid reused."""
        assert p.task is not None
        p.killed = True
        p.rec.killed_t = t
        p.transport.kill()  # type: ignore[attr-defined]
        runner = p.runner
        sid = runner.rec.session_id if runner is not None and runner.rec else None
        p.store.close()
        if sid is not None:  # its pid no longer runs this program
            with contextlib.closing(sqlite3.connect(self.db(p.run.log))) as c:
                c.execute("UPDATE sessions SET host_token = 'killed' WHERE id = ?", (sid,))
                c.commit()
        p.task.cancel()
        self._zombies.append(p.task)

    def _fire(self, p: _HostProcess, ev: HostEvent) -> None:
        """A host event at its time: a kill, a signal, an E-stop from another client, Ctrl-C."""
        if p.task is None or p.task.done() or p.killed:
            return
        t = asyncio.get_running_loop().time()
        p.note("host_event", event=str(ev))
        if ev.kind == "kill":
            self._kill(p, t)
        elif ev.kind in SIGNALS:
            self._signal(p, ev.kind, t)
        elif ev.kind == "estop":
            self._estop(ev.arg, p.note, p.rec, t)
        else:
            self._ctrl_c(p, ev.kind, t)

    def _signal(self, p: _HostProcess, kind: str, t: float) -> None:
        """A signal, delivered to the handler the run installed, as the kernel would; none
        installed: the default action ends the process."""
        assert p.task is not None
        p.rec.stop_decisions.append((t, kind))
        handler = self._signals.get(p.task, {}).get(int(getattr(signal, kind)))
        if handler is None:
            p.note("signal_default_action", signal=kind)
            p.rec.died_of = kind
            self._kill(p, t)
        else:
            handler[0](*handler[1])

    def _ctrl_c(self, p: _HostProcess, kind: str, t: float) -> None:
        """Ctrl-C: the run's SIGINT handler, else asyncio's runner (as in the CLI): the first
        cancels the main task, a second raises KeyboardInterrupt (the end)."""
        assert p.task is not None
        p.rec.stop_decisions.append((t, kind))
        handler = self._signals.get(p.task, {}).get(int(signal.SIGINT))
        if handler is not None:
            handler[0](*handler[1])
        elif sum(1 for _, why in p.rec.stop_decisions if why == "ctrl_c") > 1:
            p.note("keyboard_interrupt")
            p.rec.died_of = "SIGINT"
            self._kill(p, t)
        else:
            p.task.cancel()

    @staticmethod
    async def _guarded(runner: SessionRunner) -> Any:
        """The session as `lllt run` runs it: with its termination-signal handlers."""
        from lllt.session import _stop_signals

        with _stop_signals(runner, enabled=True):
            return await runner.run()

    def _install_signal_table(self, loop: asyncio.AbstractEventLoop) -> None:
        """Signal handlers per host run (each run is a process of its own), never real
        ones: delivery is a call at a virtual time, so a seed replays exactly."""
        table = self._signals

        def add(sig: int, callback: Any, *args: Any) -> None:
            task = asyncio.current_task()
            assert task is not None
            table.setdefault(task, {})[int(sig)] = (callback, args)

        def remove(sig: int) -> bool:
            handlers = table.get(asyncio.current_task())  # type: ignore[arg-type]
            return handlers is not None and handlers.pop(int(sig), None) is not None

        loop.add_signal_handler = add  # type: ignore[method-assign,assignment]
        loop.remove_signal_handler = remove  # type: ignore[method-assign,assignment]

    def _estop(self, length: int, note: Any, rec: RunRecord, t: float) -> None:
        """Another client: one ABORT of ``length`` payload bytes on a second wired port.

        A stop decision when it reaches the device's input while a session runs (a START
        at the same millisecond, after it, is a session this ABORT could not stop)."""
        assert self.handle is not None
        busy = self.handle.busy
        payload = bytes([int(W.AbortReason.USER)]) + b"\x00" * max(0, length - 1)
        frame = W.encode_frame(int(W.MsgType.ABORT), 0x7E00 + length, payload[:length])
        reached = self.handle.side_channel(frame) is not False  # None: a handle that cannot tell
        note("estop_sent", length=length, reached=reached)
        if reached and busy:
            rec.stop_decisions.append((t, f"estop:{length}"))


class _HostProcess:
    """One host run's process: its log, its link, its session, and whether it was killed."""

    def __init__(
        self, owner: ScenarioRun, rec: RunRecord, run: HostRun, store: Store, transport: Transport
    ) -> None:
        self.owner = owner
        self.rec = rec
        self.run = run
        self.store = store
        self.transport = transport
        self.runner: SessionRunner | None = None
        self.task: asyncio.Task[Any] | None = None
        self.killed = False

    def note(self, kind: str, **data: Any) -> None:
        """A trace entry of this run, unless the process is dead (it says nothing more)."""
        if not self.killed:
            self.owner._note(self.rec.index, kind, **data)

    def on_start(self, plan_id: int) -> None:
        """The host sends START for ``plan_id``."""
        self.rec.start_sent = True
        self.rec.plan_id = plan_id
        self.note("start_sent", plan_id=plan_id)


def _run_options(rec: RunRecord, run: HostRun, protocol: Any) -> RunOptions:
    """The run's options (as on ``lllt run``'s command line), noted in its record."""
    from lllt.safety import DEFAULT_LIMITS
    from lllt.safety.preflight import ScheduleRules

    rules = ScheduleRules.from_protocol(protocol)
    rec.protocol_rules = (rules.min_interval_s, rules.max_sessions_per_week)
    limits = None
    if run.abort_temp_c is not None:
        limits = replace(
            DEFAULT_LIMITS, abort_temp_c=run.abort_temp_c, warn_temp_c=run.abort_temp_c - 1.0
        )
    opts = RunOptions(
        limits=limits,
        research_ok=run.research_ok,
        policy=W.LinkPolicy[run.policy.upper()],
        lease_ms=run.lease_ms,
        telemetry_hz=run.telemetry_hz,
        reconnect_s=run.reconnect_s,
        stop_confirm_s=run.stop_confirm_s,
    )
    rec.options = opts
    rec.research_ok = run.research_ok
    return opts


async def _await_outcome(p: _HostProcess) -> None:
    """Wait for the session; its outcome, or what it raised, goes into the run's record."""
    rec = p.rec
    assert p.task is not None
    try:
        outcome = await p.task
        rec.result, rec.exit_code = outcome.status, outcome.exit_code
        rec.message = outcome.reason
    except UserAborted as err:
        rec.result, rec.exit_code, rec.message = "user_aborted", err.exit_code, err.message
    except LlltError as err:
        rec.result = type(err).__name__
        rec.exit_code, rec.message = err.exit_code, err.message
    except asyncio.CancelledError:
        if not p.killed:
            raise
        rec.result = "killed"
    except Exception as err:
        if p.killed:
            rec.result = "killed"
        else:
            rec.result = "crash"
            rec.crash = "".join(traceback.format_exception(err))[-4000:]


async def _exit_process(p: _HostProcess, cap: _Cap) -> None:
    """A process that ends on its own: its row as it left it (the claim), then it closes."""
    rec, runner, store = p.rec, p.runner, p.store
    rec.finished_t = asyncio.get_running_loop().time()
    if runner is not None:
        rec.plan_id = runner.plan_id if runner.plan_id is not None else rec.plan_id
        if runner.rec is not None:
            rec.session_id = runner.rec.session_id
            with contextlib.suppress(LlltError):
                row = store.session(runner.rec.session_id)
                rec.claim = {
                    "status": str(row.status),
                    "outcome": row.outcome,
                    "ended_at": row.ended_at,
                    "events": [e.kind for e in store.events(row.id)],
                }
    with contextlib.suppress(Exception):
        await asyncio.wait_for(cap.close(), 5.0)
    store.close()
    p.note("result", result=rec.result, exit_code=rec.exit_code, claim=rec.claim)


async def _sleep_until(t: float) -> None:
    loop = asyncio.get_running_loop()
    if t > loop.time():
        await asyncio.sleep(t - loop.time())


def run_scenario(
    scenario: Scenario, adapter: DeviceAdapter, *, workdir: Path | None = None
) -> Result:
    """Run one scenario to its end and return what happened (invariants not checked)."""
    t = time.perf_counter()
    with contextlib.ExitStack() as stack:
        if workdir is None:
            # memory-backed where there is one: the cap's state file is rewritten every second
            shm = Path("/dev/shm")
            where = str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None
            workdir = Path(
                stack.enter_context(tempfile.TemporaryDirectory(prefix="lllt-explore-", dir=where))
            )
        sr = ScenarioRun(scenario, adapter, workdir)
        result = clock.run(sr.main(), virtual=True, speed=None)
    result.wall_s = time.perf_counter() - t
    return result

"""The session runner: preflight → session row → upload → start → supervise → record.

::

    outcome = run_protocol("protocols/aga-655-eod-25min.toml", "sim://reference-cap?speed=max")
    print(outcome.status, outcome.delivered_fluence)

``SessionRunner`` does one session on an open :class:`lllt.device.Cap`, writing the
session log as it goes (the row exists before the first emitter command, DESIGN §8):

1. reconcile sessions of this device that an earlier host lost track of;
2. compile the protocol for the device and run the preflight pipeline (layer 1) with the
   session history and a thermal prediction from the device's current readings;
3. write the session row, upload the plan, start it (the client renews the lease);
4. feed every telemetry frame and event to the runtime monitor (layer 2): derate when it
   says so, abort and confirm the emitters off when it says so;
5. on a lost link, reconnect within a bounded time and carry on or reconcile from the
   device's own record; if that fails the row says ``interrupted``;
6. record the device's final account of the dose (its session record) and the outcome.

Cancelling the task (Ctrl-C in the CLI) aborts the session and waits for telemetry that
shows the emitters off before raising :class:`lllt.errors.UserAborted`. Nothing here
prints: progress goes to an :class:`Observer`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lllt import clock
from lllt import wire as W
from lllt.errors import (
    DeviceError,
    DeviceFault,
    DeviceTimeout,
    LinkLost,
    LlltError,
    RefusedByDevice,
    StoreError,
    UserAborted,
)

if TYPE_CHECKING:
    from lllt.device import Cap, Subscription
    from lllt.plan import SessionPlan
    from lllt.protocol import Protocol
    from lllt.safety import Limits, MonitorAction, PreflightResult
    from lllt.store import SessionRecorder, Store

DEFAULT_TELEMETRY_HZ = 10.0
_ACTIVE = (W.State.RUNNING, W.State.PAUSED)


@dataclass(frozen=True)
class RunOptions:
    limits: Limits | None = None  # None: the defaults of REFERENCE.md
    research_ok: bool = False  # research-only protocols need this
    policy: W.LinkPolicy = W.LinkPolicy.FINISH  # what the device does if the host vanishes
    lease_ms: int = 3000
    telemetry_hz: float = DEFAULT_TELEMETRY_HZ
    reconnect_s: float = 30.0  # how long to try to get a lost link back (host seconds)
    confirm_off_s: float = 2.0  # how long to wait for telemetry showing the emitters off
    #: called with the preflight result before anything is sent; False: do not start
    confirm: Callable[[PreflightResult], bool] | None = None


@dataclass
class SessionOutcome:
    """What happened, as the session log records it."""

    session_id: int | None
    plan_id: int | None
    status: str  # the store's status: completed, aborted, stopped, failed, interrupted
    outcome: str  # the device's outcome (completed, interlock, ...) or the host's reason
    reason: str
    exit_code: int
    planned_fluence: dict[int, float] = field(default_factory=dict)
    delivered_fluence: dict[int, float] = field(default_factory=dict)
    delivered_by_channel: dict[int, float] = field(default_factory=dict)
    derated: bool = False
    min_derate_permille: int = 1000
    duration_s: float | None = None
    emitters_off_confirmed: bool = True
    preflight: PreflightResult | None = None
    error: LlltError | None = None

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def raise_for_status(self) -> None:
        if self.error is not None:
            raise self.error

    def to_dict(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "plan_id": self.plan_id,
            "status": self.status,
            "outcome": self.outcome,
            "reason": self.reason,
            "exit_code": self.exit_code,
            "planned_fluence_j_cm2": {str(k): v for k, v in sorted(self.planned_fluence.items())},
            "delivered_fluence_j_cm2": {
                str(k): v for k, v in sorted(self.delivered_fluence.items())
            },
            "derated": self.derated,
            "min_derate_permille": self.min_derate_permille,
            "duration_s": self.duration_s,
            "emitters_off_confirmed": self.emitters_off_confirmed,
        }


class Observer:
    """Progress callbacks for a user interface; every method may be left as is."""

    def preflight(self, result: PreflightResult) -> None: ...

    def started(self, plan: SessionPlan, plan_id: int) -> None: ...

    def telemetry(self, t: W.Telemetry) -> None: ...

    def event(self, e: W.Event) -> None: ...

    def action(self, a: MonitorAction) -> None: ...

    def note(self, text: str) -> None: ...

    def finished(self, outcome: SessionOutcome) -> None: ...


class _Silence:
    """Pushed into the stream by the watchdog when telemetry stops."""

    def __init__(self, action: MonitorAction) -> None:
        self.action = action


# --- reconciliation ------------------------------------------------------------------------


async def reconcile_pending(cap: Cap, store: Store, observer: Observer | None = None) -> list[int]:
    """Settle this device's sessions that a host lost track of, from its session records."""
    rows = store.pending_reconciliation(cap.info.serial)
    if not rows:
        return []
    records = {r.plan_id: r for r in await cap.records()}
    status = await cap.status()
    now = clock.wall_time()
    done = []
    for row in rows:
        rec = records.get(row.plan_id) if row.plan_id is not None else None
        if rec is None or rec.outcome == W.Outcome.RUNNING:
            continue  # unknown to the device, or still running there: try again later
        started_at = ended_at = None
        if rec.boot_count == status.boot_count:
            # same boot: device times map onto the host timeline through "now"
            scale = 1000.0 * cap.clock_rate
            started_at = now - (status.time_ms - rec.start_ms) / scale
            ended_at = now - (status.time_ms - rec.end_ms) / scale
        store.reconcile_from_record(
            row.id,
            rec,
            reconciled_at=now,
            started_at=started_at if row.started_at is None else row.started_at,
            ended_at=ended_at,
            note=(
                "the host lost this session; delivered dose and outcome from the device's "
                f"session record ({rec.outcome.name.lower()})"
            ),
        )
        done.append(row.id)
        if observer is not None:
            observer.note(
                f"session {row.id} reconciled from the device's record: {rec.outcome.name.lower()}"
            )
    return done


# --- the runner ------------------------------------------------------------------------------


class SessionRunner:
    """One session of ``protocol`` on ``cap``, logged in ``store``."""

    def __init__(
        self,
        cap: Cap,
        store: Store,
        protocol: Protocol,
        *,
        protocol_text: str,
        options: RunOptions | None = None,
        observer: Observer | None = None,
    ) -> None:
        self.cap = cap
        self.store = store
        self.protocol = protocol
        self.protocol_text = protocol_text
        self.opts = options or RunOptions()
        self.obs = observer or Observer()
        self.rec: SessionRecorder | None = None
        self.plan: SessionPlan | None = None
        self.plan_id: int | None = None
        self._last: W.Telemetry | None = None
        self._end: W.Event | W.SessionRecord | None = None
        self._off = True  # emitters confirmed off at the end
        self._min_permille = 1000

    # --- public ---------------------------------------------------------------------------
    async def run(self) -> SessionOutcome:
        """Preflight and run; refusals before the session row exists raise, after it the
        outcome carries the error and the row records it."""
        from lllt.plan import compile as compile_plan
        from lllt.safety import StoreHistory, check
        from lllt.store import SessionStart

        cap, store, opts = self.cap, self.store, self.opts
        store.mark_interrupted(clock.wall_time())
        await reconcile_pending(cap, store, self.obs)

        plan = compile_plan(self.protocol, cap.info)
        status = await cap.status()
        if status.state == W.State.FAULT:
            raise DeviceFault(
                "the device has a latched fault and will not start a session",
                advice="Check the cap (sensors, supply, emitters); the fault clears once its "
                "cause is gone.",
            )
        if status.state in (W.State.RUNNING, W.State.PAUSED):
            raise DeviceError(
                f"the device is already running a session (plan {status.plan_id})",
                advice="Wait for it to end, or stop it, before starting another.",
            )
        now = clock.wall_time()
        history = StoreHistory(store, simulated=cap.info.simulated)
        result = check(
            plan,
            cap.info,
            opts.limits,
            history,
            now,
            ambient_c=status.ambient,
            scalp_c=status.temperature,
            research_ok=opts.research_ok,
        )
        self.obs.preflight(result)
        plan = result.raise_if_refused()
        if opts.confirm is not None and not opts.confirm(result):
            raise UserAborted("not started: the session was declined", advice="")
        self.plan = plan
        self.plan_id = plan_id = cap.new_plan_id()
        start = SessionStart.from_plan(
            plan,
            protocol_text=self.protocol_text,
            device_url=cap.url,
            plan_id=plan_id,
            limits=opts.limits.to_dict() if opts.limits is not None else None,
            research=bool(getattr(self.protocol, "research", False)),
        )
        self.rec = store.begin_session(start, created_at=clock.wall_time())
        outcome = await self._run_recorded(plan, plan_id)
        outcome.preflight = result
        self.obs.finished(outcome)
        return outcome

    # --- the recorded part --------------------------------------------------------------------
    async def _run_recorded(self, plan: SessionPlan, plan_id: int) -> SessionOutcome:
        from lllt.safety import RuntimeMonitor

        cap, opts, rec = self.cap, self.opts, self.rec
        assert rec is not None
        started = False
        stream: Subscription | None = None
        try:
            await cap.upload(plan.to_wire(plan_id, policy=opts.policy, lease_ms=opts.lease_ms))
            await cap.set_telemetry_rate(opts.telemetry_hz)
            monitor = RuntimeMonitor(
                plan,
                cap.info,
                opts.limits or _default_limits(),
                plan_id=plan_id,
                telemetry_period_s=cap.host_seconds(1000.0 / opts.telemetry_hz),
            )
            stream = cap.stream()
            await cap.start(plan_id)
            started = True
            rec.started(clock.wall_time(), plan_id=plan_id)
            self.obs.started(plan, plan_id)
            return await self._supervise(monitor, stream)
        except asyncio.CancelledError:
            # Ctrl-C: stop emitting first, record second, then tell the caller. ABORT goes
            # out even if START's reply never came: the device may have started anyway.
            off = await self._abort_and_confirm(W.AbortReason.USER)
            outcome = await self._finish(
                "stopped",
                "user",
                "stopped by the user",
                130 if off else 3,
                off=off,
            )
            if off:
                outcome.error = UserAborted(
                    "stopped by the user; the emitters are confirmed off", advice=""
                )
            else:
                outcome.error = LinkLost(
                    "stopped by the user, but the emitters could NOT be confirmed off",
                    advice="Take the cap off and switch it off; the device ends the session "
                    "by itself when its lease runs out.",
                )
            raise outcome.error from None
        except RefusedByDevice as err:
            return await self._finish(
                "failed" if not started else "aborted",
                "refused",
                str(err.message),
                1,
                error=err,
            )
        except LlltError as err:
            # whatever failed (even a START whose reply was lost), make sure nothing emits
            off = await self._abort_and_confirm(W.AbortReason.HOST_ERROR)
            return await self._finish(
                "failed", type(err).__name__, err.message, err.exit_code, error=err, off=off
            )
        finally:
            if stream is not None:
                stream.close()

    async def _supervise(self, monitor: Any, stream: Subscription) -> SessionOutcome:
        from lllt.safety import ActionKind, MonitorAction

        cap, rec, obs = self.cap, self.rec, self.obs
        assert rec is not None
        loop = asyncio.get_running_loop()
        plan_id = self.plan_id
        watchdog = loop.create_task(self._watchdog(monitor, stream))
        stop: MonitorAction | None = None  # the first reason the session had to stop
        running = False  # telemetry has shown our plan running
        idle_frames = 0
        self._end = None
        try:
            while self._end is None:
                try:
                    msg = await stream.get()
                except LinkLost as err:
                    msg = _Silence(MonitorAction(ActionKind.LINK_FAULT, "link_lost", err.message))
                if type(msg) is W.Telemetry:
                    self._last = msg
                    if msg.derate_permille < self._min_permille:
                        self._min_permille = msg.derate_permille
                    action = monitor.on_telemetry(msg, loop.time())
                    rec.sample(clock.wall_time(), msg)
                    obs.telemetry(msg)
                    if msg.state in _ACTIVE and msg.plan_id == plan_id:
                        running = True
                        idle_frames = 0
                    elif running:
                        # no longer running our plan: its SESSION_END may have been lost on
                        # a noisy link, so a few such frames end the wait; the device's
                        # record then says how the session ended
                        idle_frames += 1
                        if idle_frames >= 3:
                            break
                elif isinstance(msg, W.Event):
                    rec.device_event(clock.wall_time(), msg)
                    obs.event(msg)
                    action = monitor.on_event(msg)
                    if msg.kind == W.EventKind.SESSION_END and msg.limit == plan_id:
                        self._end = msg
                    elif msg.kind == W.EventKind.BOOT:
                        stop = stop or action
                        self._end = await self._after_reboot()
                        break
                else:  # the watchdog (telemetry went silent) or a lost link
                    action = msg.action
                if action.kind is ActionKind.CONTINUE:
                    continue
                obs.action(action)
                rec.event(clock.wall_time(), f"monitor_{action.kind.value}", action.to_dict())
                if action.kind is ActionKind.DERATE:
                    if stop is None and action.permille is not None:
                        await cap.derate(action.permille)
                elif action.kind is ActionKind.ABORT:
                    if stop is None:
                        stop = action
                        if not action.by_device:
                            self._off = await self._abort_and_confirm(
                                W.AbortReason.SAFETY_MONITOR, stream
                            )
                        # an interlock already stopped the device: its SESSION_END follows
                elif action.kind is ActionKind.LINK_FAULT:
                    result = await self._link_lost(action)
                    if isinstance(result, SessionOutcome):
                        return result
                    if result is None:  # back in touch and the session goes on
                        watchdog.cancel()
                        stream.close()
                        stream = cap.stream()
                        monitor.resync()
                        watchdog = loop.create_task(self._watchdog(monitor, stream))
                        continue
                    self._end = result  # it ended while we were away: the device's account
            if stop is None:
                # the device ended the session itself: see the emitters off in telemetry
                self._off = await self._confirm_off(stream)
        finally:
            watchdog.cancel()
            stream.close()
        if stop is not None and stop.by_device:
            # the device stopped itself; make sure, and log that the emitters are off
            self._off = await self._abort_and_confirm(W.AbortReason.SAFETY_MONITOR)
        return await self._conclude(self._end, stop)

    async def _confirm_off(self, stream: Subscription) -> bool:
        """Wait for telemetry showing the emitters off, and log it; False if none comes."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.opts.confirm_off_s
        while (left := deadline - loop.time()) > 0:
            try:
                msg = await stream.get(left)
            except (DeviceTimeout, LinkLost, StopAsyncIteration):
                return False
            if isinstance(msg, W.Telemetry):
                self._last = msg
                if self.rec is not None:
                    self.rec.sample(clock.wall_time(), msg)
                if not msg.emitting and msg.state not in (W.State.RUNNING, W.State.PAUSED):
                    if self.rec is not None:
                        self.rec.event(
                            clock.wall_time(), "emitters_off_confirmed", {"device_ms": msg.time_ms}
                        )
                    return True
            elif isinstance(msg, W.Event):
                if self.rec is not None:
                    self.rec.device_event(clock.wall_time(), msg)
                if msg.kind == W.EventKind.SESSION_END and msg.limit == self.plan_id:
                    self._end = msg
        return False

    async def _watchdog(self, monitor: Any, stream: Subscription) -> None:
        from lllt.safety import ActionKind

        loop = asyncio.get_running_loop()
        while True:
            delay = monitor.deadline(loop.time()) - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
                continue
            action = monitor.check_silence(loop.time())
            if action.kind is ActionKind.LINK_FAULT:
                stream._push(_Silence(action))
                return
            await asyncio.sleep(monitor.silence_timeout_s)

    # --- ending ---------------------------------------------------------------------------------
    async def _conclude(
        self, end: W.Event | W.SessionRecord | None, stop: MonitorAction | None
    ) -> SessionOutcome:
        """Record the session from the device's own account of it."""
        record = await self._device_record()
        outcome_code: W.Outcome | None = None
        reason_code = 0
        if record is not None and record.outcome != W.Outcome.RUNNING:
            outcome_code, reason_code = record.outcome, record.reason
        elif isinstance(end, W.Event):
            outcome_code, reason_code = W.Outcome(end.a), end.b
        delivered = dict(zip(self._channel_ids(), record.fluence, strict=False)) if record else None
        duration = record.emitting_ms / 1000.0 if record is not None else None

        if stop is not None:
            error = stop.to_error()
            status = "aborted" if stop.kind.value != "link_fault" else "failed"
            return await self._finish(
                status,
                stop.rule,
                stop.reason,
                error.exit_code,
                error=error,
                delivered=delivered,
                duration=duration,
            )
        if outcome_code == W.Outcome.COMPLETED:
            return await self._finish(
                "completed", "completed", "", 0, delivered=delivered, duration=duration
            )
        if outcome_code == W.Outcome.MAX_DURATION:
            from lllt.errors import SafetyError

            msg = "a fluence target was not reached within the phase's maximum duration"
            return await self._finish(
                "completed",
                "max_duration",
                msg,
                1,
                error=SafetyError(msg),
                delivered=delivered,
                duration=duration,
            )
        name = outcome_code.name.lower() if outcome_code is not None else "unknown"
        if outcome_code == W.Outcome.INTERLOCK:
            why = _enum_name(W.Interlock, reason_code)
            err: LlltError = DeviceFault(f"the device's {why} interlock stopped the session")
        elif outcome_code == W.Outcome.LEASE_STOP:
            err = LinkLost("the device stopped the session when its lease ran out")
        elif outcome_code == W.Outcome.ABORTED:
            err = DeviceFault(f"the session was aborted ({_enum_name(W.AbortReason, reason_code)})")
        else:
            err = DeviceFault(f"the session ended with outcome {name}")
        return await self._finish(
            "aborted",
            name,
            err.message,
            err.exit_code,
            error=err,
            delivered=delivered,
            duration=duration,
        )

    async def _finish(
        self,
        status: str,
        outcome: str,
        reason: str,
        exit_code: int,
        *,
        error: LlltError | None = None,
        delivered: dict[int, float] | None = None,
        duration: float | None = None,
        off: bool | None = None,
    ) -> SessionOutcome:
        rec = self.rec
        assert rec is not None and self.plan is not None
        if delivered is None and self._last is not None:
            delivered = dict(zip(self._channel_ids(), self._last.fluence, strict=False))
        row = None
        try:
            row = rec.finish(
                clock.wall_time(),
                status=status,
                outcome=outcome,
                exit_code=exit_code,
                reason=reason,
                delivered_by_channel=delivered,
                actual_duration_s=duration,
            )
        except StoreError as err:
            self.obs.note(f"the session log could not be written: {err.message}")
            if error is None:
                error, exit_code = err, err.exit_code
        planned = self.plan.fluence_by_wavelength()
        return SessionOutcome(
            session_id=row.id if row is not None else None,
            plan_id=self.plan_id,
            status=status,
            outcome=outcome,
            reason=reason,
            exit_code=exit_code,
            planned_fluence=planned,
            delivered_fluence=dict(row.delivered_fluence) if row is not None else {},
            delivered_by_channel=dict(delivered or {}),
            derated=self._min_permille < 1000,
            min_derate_permille=self._min_permille,
            duration_s=duration,
            emitters_off_confirmed=self._off if off is None else off,
            error=error,
        )

    def _channel_ids(self) -> list[int]:
        return [c.id for c in self.cap.info.channels]

    async def _device_record(self) -> W.SessionRecord | None:
        try:
            records = await self.cap.records()
        except LlltError:
            return None
        return next((r for r in records if r.plan_id == self.plan_id), None)

    # --- stopping -------------------------------------------------------------------------------
    async def _abort_and_confirm(
        self, reason: W.AbortReason, stream: Subscription | None = None
    ) -> bool:
        """ABORT, then wait for telemetry showing the emitters off; True when confirmed."""
        cap = self.cap
        own = stream is None
        if own:
            try:
                stream = cap.stream()
            except LlltError:
                return False
        assert stream is not None
        try:
            try:
                await cap.abort(reason)
            except LlltError:
                return False
            return await self._confirm_off(stream)
        finally:
            if own:
                stream.close()

    async def _after_reboot(self) -> W.SessionRecord | None:
        """The device restarted mid-session: HELLO again and read its record."""
        self.obs.note("the device rebooted; reading its session record")
        with contextlib.suppress(LlltError):
            await self.cap.handshake()
            return await self._device_record()
        return None

    async def _link_lost(self, action: MonitorAction) -> SessionOutcome | W.SessionRecord | None:
        """Try to get the link back within ``reconnect_s``.

        None: reconnected, the session runs on (supervise again). A SessionRecord: the
        session ended while we were away, here is the device's account. A SessionOutcome:
        the link stayed lost; the row is left ``interrupted`` for later reconciliation.
        """
        rec, cap = self.rec, self.cap
        assert rec is not None
        self.obs.note(f"{action.reason}; reconnecting for up to {self.opts.reconnect_s:g} s")
        rec.event(clock.wall_time(), "link_lost", action.to_dict())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.opts.reconnect_s
        while loop.time() < deadline:
            try:
                await asyncio.wait_for(cap.reconnect(), max(0.1, deadline - loop.time()))
                record = await self._device_record()
            except (LlltError, TimeoutError, OSError):
                await asyncio.sleep(min(1.0, max(0.0, deadline - loop.time())))
                continue
            rec.event(clock.wall_time(), "link_restored", {})
            if record is not None and record.outcome == W.Outcome.RUNNING:
                await cap.start(self.plan_id or 0)  # idempotent: renews the lease heartbeat
                self.obs.note("link restored; the session continues")
                return None
            return record
        outcome = await self._finish(
            "interrupted",
            "link_lost",
            f"{action.reason}; the link did not come back within {self.opts.reconnect_s:g} s",
            3,
            error=LinkLost(
                f"the link to {cap.url} was lost mid-session and did not come back",
                advice="The device runs the plan to its end on its own (or stops, by policy); "
                "the session will be reconciled from its record at the next connection.",
            ),
            off=False,
        )
        return outcome


def _enum_name(enum: Any, value: int) -> str:
    try:
        return str(enum(value).name.lower())
    except ValueError:
        return str(value)


def _default_limits() -> Limits:
    from lllt.safety import DEFAULT_LIMITS

    return DEFAULT_LIMITS


# --- one call for scripts --------------------------------------------------------------------


def run_protocol(
    protocol: str | Path | Protocol,
    device: str,
    *,
    protocol_text: str | None = None,
    db: str | Path | None = None,
    options: RunOptions | None = None,
    observer: Observer | None = None,
    timeout: float | None = None,
) -> SessionOutcome:
    """Run one session from a protocol file (or model) on a device URL; blocking.

    Preflight refusals and connection problems raise :class:`lllt.errors.LlltError`;
    once the session is logged, the outcome is returned (``outcome.raise_for_status()``).
    """
    from lllt.device import Cap
    from lllt.protocol import Protocol as ProtocolModel
    from lllt.protocol import load_protocol
    from lllt.store import Store
    from lllt.transport import wants_virtual_clock

    if isinstance(protocol, ProtocolModel):
        model = protocol
        text = protocol_text if protocol_text is not None else protocol.model_dump_json(indent=1)
    else:
        path = Path(protocol)
        model = load_protocol(path)
        text = path.read_text(encoding="utf-8", errors="replace")

    async def main() -> SessionOutcome:
        store = Store.open(db)
        try:
            async with Cap.connect(device) as cap:
                runner = SessionRunner(
                    cap, store, model, protocol_text=text, options=options, observer=observer
                )
                if timeout is None:
                    return await runner.run()
                return await asyncio.wait_for(runner.run(), timeout)
        finally:
            store.close()

    virtual, speed = wants_virtual_clock(device)
    return clock.run(main(), virtual=virtual, speed=speed)

"""The session runner: preflight → session row → upload → start → supervise → record.

::

    outcome = run_protocol("protocols/aga-655-eod-25min.toml", "sim://reference-cap?speed=max")
    print(outcome.status, outcome.delivered_fluence)

``SessionRunner`` does one session on an open :class:`lllt.device.Cap`, writing the
session log as it goes (the row exists before the first emitter command):

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
    from lllt.safety import Limits, MonitorAction, PreflightResult, RuntimeMonitor
    from lllt.store import SessionRecorder, Store

DEFAULT_TELEMETRY_HZ = 10.0
_ACTIVE = (W.State.RUNNING, W.State.PAUSED)
_STOP_FIRST_RETRY_S = 0.05  # stop until confirmed: first pause between ABORTs ...
_STOP_MAX_RETRY_S = 1.0  # ... doubling up to this
_LINK_STOP_S = 10.0  # after the reconnect window: how long to keep trying ABORT
#: a device checkpoints a running session at least this often (wire spec, POWER_LOSS)
CHECKPOINT_S = 1.0


def accounted_fluence(
    rec: W.SessionRecord, channels: Any, planned: Any = None
) -> tuple[float, ...]:
    """The fluence per channel the host counts for a device record.

    Counted unless proven otherwise: a POWER_LOSS record holds the fluence of the last
    checkpoint, up to ``CHECKPOINT_S`` old, so the host adds what each channel could have
    delivered since: a second at 1.2 x its maximum irradiance + 0.05 mW/cm² (the
    over-output trip level). ``planned``: channel ids the plan drove (None: all of them,
    for a record of a plan this host never saw). Any other outcome: the record as it is.
    """
    if rec.outcome != W.Outcome.POWER_LOSS:
        return tuple(rec.fluence)
    out = []
    for ch, f in zip(channels, rec.fluence, strict=False):
        if planned is None or ch.id in planned or f > 0:
            f += CHECKPOINT_S * (1.2 * ch.max_irradiance_mw_cm2 + 0.05) / 1000.0
        out.append(f)
    return tuple(out)


def _planned_channels(row: Any) -> set[int]:
    return {int(c) for c, f in row.planned_by_channel.items() if f > 0}


@dataclass(frozen=True)
class RunOptions:
    """How a session runs, besides its protocol and device; every field has a default.

    ``limits`` are the limits in force (None: the defaults; :func:`lllt.load_limits` reads
    a tighter set from a file); ``research_ok`` allows a research-only protocol; ``policy``
    is what the device does when its lease runs out (the host vanished); ``lease_ms`` the
    lease in device ms; ``telemetry_hz`` samples per second of device time.
    ``reconnect_s``, ``confirm_off_s`` and ``stop_confirm_s`` bound, in host seconds, the
    wait for a lost link, for telemetry showing the emitters off, and the resending of
    ABORT. ``confirm`` sees the preflight result before anything is sent; False declines
    the session (UserAborted).
    """

    limits: Limits | None = None  # None: the defaults of docs/clinical-basis.md
    research_ok: bool = False  # research-only protocols need this
    policy: W.LinkPolicy = W.LinkPolicy.FINISH  # what the device does if the host vanishes
    lease_ms: int = 3000
    telemetry_hz: float = DEFAULT_TELEMETRY_HZ
    reconnect_s: float = 30.0  # how long to try to get a lost link back (host seconds)
    confirm_off_s: float = 2.0  # how long to wait for telemetry showing the emitters off
    #: stop until confirmed: how long (host seconds) the host keeps resending ABORT, with
    #: back-off and across reconnects, before it records "stop not confirmed"
    stop_confirm_s: float = 30.0
    #: called with the preflight result before anything is sent; False: do not start
    confirm: Callable[[PreflightResult], bool] | None = None


@dataclass
class SessionOutcome:
    """What happened, as the session log records it.

    ``planned_fluence`` and ``delivered_fluence`` are J/cm² per wavelength (nm),
    ``delivered_by_channel`` J/cm² per channel id; ``duration_s`` is the device's emitting
    time in seconds, when its record says; ``min_derate_permille`` the lowest output factor
    telemetry showed (1000: never derated).
    """

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
        """True when the session completed as planned (``exit_code`` 0)."""
        return self.exit_code == 0

    def raise_for_status(self) -> None:
        """Raise ``error``, the error the session ended with, if there is one."""
        if self.error is not None:
            raise self.error

    def to_dict(self) -> dict[str, Any]:
        """JSON form: ids, status, outcome, reason, exit code, planned and delivered fluence per
        wavelength (J/cm², keys as strings), derating, duration (s) and whether the emitters
        were confirmed off."""
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

    def preflight(self, result: PreflightResult) -> None:
        """The preflight result, before anything is sent (a refusal included)."""

    def started(self, plan: SessionPlan, plan_id: int) -> None:
        """The device confirmed START of ``plan`` under ``plan_id``."""

    def telemetry(self, t: W.Telemetry) -> None:
        """Each new telemetry sample while the session runs (not stale, overtaken ones)."""

    def event(self, e: W.Event) -> None:
        """Each device event while the session runs."""

    def action(self, a: MonitorAction) -> None:
        """Each action of the runtime monitor other than continue (derate, abort, link fault)."""

    def note(self, text: str) -> None:
        """A line of progress for the person: a reconciliation, a reconnect, a failed log write."""

    def finished(self, outcome: SessionOutcome) -> None:
        """The outcome, once the session is logged; not called when the run raises."""


class _Silence:
    """Pushed into the stream by the watchdog when telemetry stops."""

    def __init__(self, action: MonitorAction) -> None:
        self.action = action


class _Taken:
    """A frame the supervision loop took as it arrived, with the monitor's verdict on it
    (None: nothing to act on, but the loop's wait is over)."""

    __slots__ = ("action",)

    def __init__(self, action: MonitorAction | None) -> None:
        self.action = action


# --- reconciliation ------------------------------------------------------------------------


@dataclass
class _Watch:
    """The state of one supervision loop (``SessionRunner._supervise``)."""

    stream: Subscription
    watchdog: asyncio.Task[None]
    stop: MonitorAction | None = None  # the first reason the session had to stop
    stopped: bool = False  # the host's stop path already ran
    running: bool = False  # telemetry has shown our plan running
    idle_frames: int = 0  # frames since, not running our plan
    done: bool = False  # the loop ends: the session is over, or being stopped
    outcome: SessionOutcome | None = None  # the link stayed lost: the outcome, as is


async def reconcile_pending(cap: Cap, store: Store, observer: Observer | None = None) -> list[int]:
    """Settle this device's sessions that a host lost track of, from its session records."""
    rows = store.pending_reconciliation(cap.info.serial)
    if not rows:
        return []
    # by record access where the device has it (sequence-numbered, resumable)
    records = {r.plan_id: r for r in await cap.session_records()}
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
        if started_at is None and row.started_at is None:
            # a record proves the device started the plan: it counts for spacing. From
            # another boot its device times say nothing on our timeline: the row's own
            # creation is the earliest it can have started (its end then counts as the
            # start plus the plan's longest duration)
            started_at = row.created_at
        planned = _planned_channels(row) or None
        store.reconcile_from_record(
            row.id,
            rec,
            reconciled_at=now,
            started_at=started_at if row.started_at is None else row.started_at,
            ended_at=ended_at,
            delivered_by_channel=accounted_fluence(rec, cap.info.channels, planned),
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


async def adopt_device_records(
    cap: Cap, store: Store, observer: Observer | None = None
) -> list[int]:
    """Merge the device's own records into the log (by device serial and plan id).

    A session the device ran that this log has never seen (a new ``--db``, another host)
    is logged from the device's record, so spacing and cumulative limits start from what
    the cap knows. Times come from the device clock when the record is from this boot;
    from an earlier boot its end is taken as now (the most cautious choice; the row then
    keeps that time).
    """
    from lllt.store import ChannelRef

    records = await cap.records()
    known = store.known_plan_ids(cap.info.serial)
    fresh = [
        r
        for r in records
        if r.plan_id not in known
        and r.outcome != W.Outcome.RUNNING
        and (
            r.emitting_ms > 0
            or any(f > 0 for f in r.fluence)
            # a power loss before the first checkpoint: it may have emitted for a second
            or r.outcome == W.Outcome.POWER_LOSS
        )
    ]
    if not fresh:
        return []
    status = await cap.status()
    now = clock.wall_time()
    info = cap.info
    channels = [ChannelRef(c.id, c.wavelength_nm, info.zone_name(c.zone)) for c in info.channels]
    zones = [z.name for z in info.zones]
    done = []
    for rec in reversed(fresh):  # oldest first
        if rec.boot_count == status.boot_count:
            scale = 1000.0 * cap.clock_rate
            started = now - (status.time_ms - rec.start_ms) / scale
            ended = now - (status.time_ms - rec.end_ms) / scale
        else:
            ended = now
            started = now - rec.emitting_ms / 1000.0
        row = store.adopt_device_record(
            rec,
            device_serial=info.serial,
            device_model=info.model,
            device_url=cap.url,
            simulated=info.simulated,
            channels=channels,
            zones=zones,
            started_at=started,
            ended_at=ended,
            now=now,
            delivered_by_channel=accounted_fluence(rec, info.channels),
        )
        done.append(row.id)
        if observer is not None:
            observer.note(
                f"session {row.id}: adopted from the device's records (plan {rec.plan_id}, "
                f"{rec.outcome.name.lower()})"
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
        #: the newest device time seen in a sample, (boot, ms): older ones are stale
        self._newest: tuple[int, int] = (-1, -1)
        self._start_sent = False  # START went out: from then on the device may emit
        self._started = False  # START's reply came
        self._ran = False  # the device confirmed (or its record showed) the START
        self._end: W.Event | W.SessionRecord | None = None
        self._off = True  # emitters confirmed off at the end
        #: the signal that ended the run (SIGTERM, ...), set by whoever handles signals
        self.signal_name: str | None = None
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
        await adopt_device_records(cap, store, self.obs)

        compiled = compile_plan(self.protocol, cap.info)
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
            compiled,
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

        def recheck(locked: Store) -> None:
            # check and write together: the same checks again, inside the write
            # transaction of the insert, over every row (pending ones of another run too)
            again = check(
                compiled,
                cap.info,
                opts.limits,
                StoreHistory(locked, simulated=cap.info.simulated),
                clock.wall_time(),
                ambient_c=status.ambient,
                scalp_c=status.temperature,
                research_ok=opts.research_ok,
            )
            again.raise_if_refused()

        self.rec = store.begin_session(start, created_at=clock.wall_time(), check=recheck)
        outcome = await self._run_recorded(plan, plan_id)
        outcome.preflight = result
        self.obs.finished(outcome)
        return outcome

    # --- the recorded part --------------------------------------------------------------------
    async def _run_recorded(self, plan: SessionPlan, plan_id: int) -> SessionOutcome:
        """Upload, start and supervise the session whose row exists; every way out of it
        (the end, Ctrl-C, a refusal, any lllt error) goes through a stop path."""
        from lllt.safety import RuntimeMonitor

        cap, opts, rec = self.cap, self.opts, self.rec
        assert rec is not None
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
            self._start_sent = True
            await cap.start(plan_id)
            self._started = True
            self._ran = True
            rec.started(clock.wall_time(), plan_id=plan_id)
            self.obs.started(plan, plan_id)
            return await self._supervise(monitor, stream)
        except asyncio.CancelledError:
            # Ctrl-C or a termination signal: stop emitting first, record second, then
            # tell the caller. ABORT goes out even if START's reply never came: the device
            # may have started anyway.
            if stream is not None:
                stream.close()
                stream = None
            # one way out, once: a second Ctrl-C or signal while stopping must not cut
            # the stop path short (the ABORTs and the record would be lost)
            return await _unstoppable(self._on_cancel())  # type: ignore[no-any-return]
        except RefusedByDevice as err:
            return await self._finish(
                "failed" if not self._started else "aborted",
                "refused",
                str(err.message),
                1,
                error=err,
            )
        except LlltError as err:
            # whatever failed (even a START whose reply was lost), make sure nothing emits
            if stream is not None:
                stream.close()
                stream = None
            return await _unstoppable(self._on_error(err))  # type: ignore[no-any-return]
        finally:
            if stream is not None:
                stream.close()

    async def _on_cancel(self) -> SessionOutcome:
        """The stop path of a cancelled session (Ctrl-C, a signal); raises UserAborted when
        the emitters are confirmed off, LinkLost when they are not."""
        rec, plan_id = self.rec, self.plan_id
        assert rec is not None and plan_id is not None
        off = await self._stop(W.AbortReason.USER)
        who = self.signal_name or "the user"
        delivered = duration = None
        if self._start_sent and not self._started:
            # START's reply never came: if the device knows the plan, it ran
            record = await self._device_record()
            if record is not None:
                self._ran = True
                with contextlib.suppress(StoreError):
                    rec.started(clock.wall_time(), plan_id=plan_id)
                delivered = self._record_delivered(record)
                duration = record.emitting_ms / 1000.0
        if off:
            outcome = await self._finish(
                "stopped",
                "user",
                f"stopped by {who}",
                130,
                off=True,
                delivered=delivered,
                duration=duration,
            )
            outcome.error = UserAborted(
                f"stopped by {who}; the emitters are confirmed off", advice=""
            )
        else:
            outcome = await self._finish(
                "interrupted",
                "stop_not_confirmed",
                f"stop not confirmed: stopped by {who}, but no reply showed the emitters off",
                3,
                off=False,
                delivered=delivered,
                duration=duration,
            )
            outcome.error = LinkLost(
                f"stopped by {who}, but the emitters could NOT be confirmed off",
                advice="Take the cap off and switch it off; the device ends the session "
                "by itself when its lease runs out.",
            )
        raise outcome.error from None

    async def _on_error(self, err: LlltError) -> SessionOutcome:
        """The stop path after an lllt error during the session (even a START whose reply
        was lost): stop until confirmed, then record how it ended."""
        off = await self._stop(W.AbortReason.HOST_ERROR)
        if self._start_sent and not self._started:
            return await self._start_unknown(err, off)
        if not off:
            return await self._finish(
                "interrupted",
                "stop_not_confirmed",
                f"stop not confirmed after {err.message}",
                3,
                error=err,
                off=False,
            )
        return await self._finish(
            "failed", type(err).__name__, err.message, err.exit_code, error=err, off=off
        )

    async def _supervise(self, monitor: RuntimeMonitor, stream: Subscription) -> SessionOutcome:
        """Feed every frame to the monitor and act on what it says, until the session ends
        (the device's SESSION_END or record, a reboot, the host's own stop, a lost link)."""
        from lllt.safety import ActionKind, MonitorAction

        loop = asyncio.get_running_loop()
        watch = _Watch(stream, loop.create_task(self._watchdog(monitor, stream)))
        self._end = None
        taker = self._inline_taker(monitor, watch, loop)
        try:
            while not watch.done:
                stream = watch.stream  # _act may replace it (a link won back)
                stream.take_inline(taker)
                try:
                    msg = await stream.get()
                except LinkLost as err:
                    msg = _Silence(MonitorAction(ActionKind.LINK_FAULT, "link_lost", err.message))
                finally:
                    stream.take_inline(None)
                action = await self._take(msg, monitor, watch, loop.time())
                if action is None or action.kind is ActionKind.CONTINUE:
                    continue
                await self._act(action, monitor, watch)
                if watch.outcome is not None:
                    return watch.outcome
            if watch.stop is None and not watch.stopped:
                # the device ended the session itself: see the emitters off in telemetry
                self._off = await self._confirm_off(watch.stream)
        finally:
            watch.watchdog.cancel()
            watch.stream.close()
        if watch.stop is not None and not watch.stopped:
            # the device stopped itself; make sure, and log that the emitters are off
            self._off = await self._stop(W.AbortReason.SAFETY_MONITOR)
        return await self._conclude(self._end, watch.stop)

    async def _take(
        self, msg: Any, monitor: RuntimeMonitor, watch: _Watch, now: float
    ) -> MonitorAction | None:
        """Log one message of the stream and ask the monitor about it: its action, or None
        when there is nothing to act on (a STATUS, a stale or closing frame, a reboot)."""
        rec = self.rec
        assert rec is not None
        if type(msg) is W.Status:
            # pushed by a 1.1 device after ABORT or the end of a session: a sample
            rec.sample(clock.wall_time(), msg)
            return None
        if type(msg) is W.Telemetry:
            return self._take_telemetry(msg, monitor, watch, now)
        if isinstance(msg, W.Event):
            rec.device_event(clock.wall_time(), msg)
            self.obs.event(msg)
            action = monitor.on_event(msg)
            if msg.kind == W.EventKind.SESSION_END and msg.limit == self.plan_id:
                self._end = msg
                watch.done = True
            elif msg.kind == W.EventKind.BOOT:
                watch.stop = watch.stop or action
                self._end = await self._after_reboot()
                watch.done = True
                return None
            return action
        # the watchdog (telemetry went silent), a lost link, or a frame already taken
        return msg.action  # type: ignore[no-any-return]

    def _take_telemetry(
        self, msg: W.Telemetry, monitor: RuntimeMonitor, watch: _Watch, now: float
    ) -> MonitorAction | None:
        """:meth:`_take` for a telemetry frame: synchronous, so that it can also run as the
        frame arrives (:meth:`_inline_taker`)."""
        if self._stale(msg):
            return None  # overtaken on the link by a newer one: no evidence now
        self._last = msg
        if msg.derate_permille < self._min_permille:
            self._min_permille = msg.derate_permille
        action = monitor.on_telemetry(msg, now)
        self.rec.sample(clock.wall_time(), msg)  # type: ignore[union-attr]
        self.obs.telemetry(msg)
        if msg.state in _ACTIVE and msg.plan_id == self.plan_id:
            watch.running = True
            watch.idle_frames = 0
        elif watch.running:
            # no longer running our plan: its SESSION_END may have been lost on a noisy
            # link, so a few such frames end the wait; the device's record then says
            # how the session ended
            watch.idle_frames += 1
            if watch.idle_frames >= 3:
                watch.done = True
                return None
        return action

    def _inline_taker(
        self, monitor: RuntimeMonitor, watch: _Watch, loop: asyncio.AbstractEventLoop
    ) -> Callable[[Any], Any]:
        """What takes a telemetry frame as it arrives while :meth:`_supervise` waits for the
        next message: the same steps as :meth:`_take`, at the same instant, without waking
        the loop's task for every frame. Only a verdict to act on (or the end of the wait)
        goes to the task, as a :class:`_Taken`; any other message goes to it as is."""
        from lllt.safety import ActionKind

        def take(msg: Any) -> Any:
            if type(msg) is not W.Telemetry:
                return msg
            action = self._take_telemetry(msg, monitor, watch, loop.time())
            if watch.done or (action is not None and action.kind is not ActionKind.CONTINUE):
                return _Taken(action)
            return None

        return take

    async def _act(self, action: MonitorAction, monitor: RuntimeMonitor, watch: _Watch) -> None:
        """Do what the monitor asked: derate, stop until confirmed, or win the link back."""
        from lllt.safety import ActionKind

        cap, rec = self.cap, self.rec
        assert rec is not None
        self.obs.action(action)
        rec.event(clock.wall_time(), f"monitor_{action.kind.value}", action.to_dict())
        if action.kind is ActionKind.DERATE:
            if watch.stop is None and action.permille is not None:
                await cap.derate(action.permille)
        elif action.kind is ActionKind.ABORT:
            if watch.stop is None:
                watch.stop = action
            if not action.by_device:
                # stop until confirmed; the device's record then tells the rest
                watch.stream.close()
                self._off = await self._stop(W.AbortReason.SAFETY_MONITOR)
                watch.stopped = True
                watch.done = True
            # else an interlock already stopped the device: its SESSION_END follows
        elif action.kind is ActionKind.LINK_FAULT:
            result = await self._link_lost(action)
            if isinstance(result, SessionOutcome):
                watch.outcome = result
            elif result is None:  # back in touch and the session goes on
                watch.watchdog.cancel()
                watch.stream.close()
                watch.stream = cap.stream()
                monitor.resync()
                loop = asyncio.get_running_loop()
                watch.watchdog = loop.create_task(self._watchdog(monitor, watch.stream))
            else:
                self._end = result  # it ended while we were away: the device's account
                watch.done = True
                if cap.connected:
                    # a link that really dropped (BLE, TCP, USB) failed the old stream; the
                    # emitters-off confirmation reads the new connection's
                    watch.stream.close()
                    watch.stream = cap.stream()

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
                if self._stale(msg):
                    continue
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

    async def _watchdog(self, monitor: RuntimeMonitor, stream: Subscription) -> None:
        """Tell the supervision loop, in order with the frames, when telemetry went silent."""
        from lllt.safety import ActionKind

        loop = asyncio.get_running_loop()
        while True:
            delay = monitor.deadline(loop.time()) - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
                await clock.settle()  # a frame of this very instant still counts
                continue
            action = monitor.check_silence(loop.time())
            if action.kind is ActionKind.LINK_FAULT:
                stream.put(_Silence(action))
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
        delivered = self._record_delivered(record) if record else None
        duration = record.emitting_ms / 1000.0 if record is not None else None

        if stop is not None and not self._off:
            error = stop.to_error()
            return await self._finish(
                "interrupted",
                "stop_not_confirmed",
                f"stop not confirmed: {stop.reason}; no reply showed the emitters off",
                3,
                error=error,
                delivered=delivered,
                duration=duration,
                off=False,
            )
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
        if delivered is None and status != "interrupted" and self.plan_id is not None:
            # the device's own account when it can be read: the last sample may be a
            # second or more behind it (and a reset's record is an upper bound)
            record = await self._device_record()
            if record is not None and record.outcome != W.Outcome.RUNNING:
                delivered = self._record_delivered(record)
                if duration is None:
                    duration = record.emitting_ms / 1000.0
        last = self._last
        if delivered is None and status != "interrupted" and self._ran:
            ended = (
                last is not None
                and last.plan_id == self.plan_id
                and not last.emitting
                and last.state not in _ACTIVE
            )
            if not ended:
                # counted unless proven otherwise: neither the record nor a sample taken
                # after the end says what the session delivered; the row stays open to
                # reconciliation (counted at its planned dose until then)
                status = "interrupted"
                reason = (
                    f"{reason}; " if reason else ""
                ) + "the device's account of the dose could not be read"
        if delivered is None and last is not None:
            delivered = dict(zip(self._channel_ids(), last.fluence, strict=False))
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

    def _record_delivered(self, record: W.SessionRecord) -> dict[int, float]:
        """The device's account of this session's dose (a power loss: its upper bound)."""
        assert self.plan is not None
        planned = {c for c, f in self.plan.fluence_by_channel().items() if f > 0} or None
        counted = accounted_fluence(record, self.cap.info.channels, planned)
        return dict(zip(self._channel_ids(), counted, strict=False))

    def _channel_ids(self) -> list[int]:
        return [c.id for c in self.cap.info.channels]

    async def _device_record(self) -> W.SessionRecord | None:
        try:
            records = await self.cap.records()
        except LlltError:
            return None
        return next((r for r in records if r.plan_id == self.plan_id), None)

    # --- stopping -------------------------------------------------------------------------------
    async def _stop(self, reason: W.AbortReason, *, within_s: float | None = None) -> bool:
        """Stop until confirmed: send ABORT and keep sending it, with bounded back-off and
        across reconnects, until a STATUS or telemetry frame shows the emitters off.

        True once confirmed (and logged). After ``within_s`` (default
        ``RunOptions.stop_confirm_s``) of trying, the host gives up: the log gets
        ``stop_not_confirmed`` and False comes back; the caller records the session as
        "stop not confirmed", never as aborted.
        """
        cap = self.cap
        loop = asyncio.get_running_loop()
        bound = self.opts.stop_confirm_s if within_s is None else within_s
        deadline = loop.time() + bound
        delay = _STOP_FIRST_RETRY_S
        attempts = 0
        while True:
            attempts += 1
            with contextlib.suppress(LlltError, TimeoutError, OSError):
                if not cap.connected:
                    await asyncio.wait_for(cap.reconnect(), max(0.05, deadline - loop.time()))
                if await self._abort_once(reason):
                    if attempts > 1 and self.rec is not None:
                        self.rec.event(clock.wall_time(), "abort_resent", {"attempts": attempts})
                    return True
            left = deadline - loop.time()
            if left <= 0:
                break
            await asyncio.sleep(min(delay, left))
            delay = min(delay * 2.0, _STOP_MAX_RETRY_S)
        if self.rec is not None:
            with contextlib.suppress(StoreError):
                self.rec.event(
                    clock.wall_time(),
                    "stop_not_confirmed",
                    {"attempts": attempts, "reason": int(reason), "within_s": bound},
                )
        self.obs.note(f"the stop could not be confirmed after {attempts} ABORTs in {bound:g} s")
        return False

    async def _abort_once(self, reason: W.AbortReason) -> bool:
        """One ABORT (with the client's own retries), then proof that the emitters are off:
        the STATUS a 1.1 device sends right after it, telemetry, or a GET_STATUS reply."""
        cap = self.cap
        with cap.stream() as stream:
            await cap.abort(reason)
            while (msg := stream.get_nowait()) is not None:
                if self._note_end(msg) and self._emitters_off(msg):
                    self._drain(stream)
                    return True
            off = self._emitters_off(await cap.status())
            self._drain(stream)  # the SESSION_END that came with the reply, for the log
            return off

    def _drain(self, stream: Subscription) -> None:
        while (msg := stream.get_nowait()) is not None:
            self._note_end(msg)

    def _note_end(self, msg: Any) -> bool:
        """Log a frame seen while stopping; True for telemetry or STATUS."""
        if isinstance(msg, W.Event):
            if self.rec is not None:
                self.rec.device_event(clock.wall_time(), msg)
            if msg.kind == W.EventKind.SESSION_END and msg.limit == self.plan_id:
                self._end = msg
            return False
        return isinstance(msg, W.Telemetry)

    def _stale(self, t: W.Telemetry) -> bool:
        """A sample older (by boot, then device time) than one already seen: a delayed
        frame, never proof of the device's state now. Newer ones move the mark."""
        key = (t.boot_count, t.time_ms)
        if key < self._newest:
            return True
        self._newest = key
        return False

    def _emitters_off(self, t: W.Telemetry) -> bool:
        if self._stale(t) or t.emitting or t.state in _ACTIVE:
            return False
        self._last = t if self._last is None or t.plan_id == self.plan_id else self._last
        if self.rec is not None:
            self.rec.sample(clock.wall_time(), t)  # the proof, in the log
            self.rec.event(clock.wall_time(), "emitters_off_confirmed", {"device_ms": t.time_ms})
        return True

    async def _start_unknown(self, err: LlltError, off: bool) -> SessionOutcome:
        """START went out but its reply never came: the device may have run the plan.

        Counted unless proven otherwise: the row stays ``interrupted`` (it counts at its
        planned dose) until the device's records say what happened. When the device can
        be asked now, it is: no record of the plan proves it never started.
        """
        record: W.SessionRecord | None = None
        known = False
        with contextlib.suppress(LlltError, TimeoutError, OSError):
            records = await self.cap.records()
            known = True
            record = next((r for r in records if r.plan_id == self.plan_id), None)
        if known and record is None:
            return await self._finish(
                "failed",
                type(err).__name__,
                f"{err.message}; the device's records show the plan never started",
                err.exit_code,
                error=err,
                off=off,
            )
        note = (
            "START's reply was lost and the device may have run the plan; it counts at "
            "its planned dose until the device's records are read"
        )
        outcome = await self._finish(
            "interrupted", "start_unknown", f"{err.message}; {note}", 3, error=err, off=off
        )
        if record is not None and record.outcome != W.Outcome.RUNNING:
            # the device can tell us now: take its account
            with contextlib.suppress(LlltError, StoreError):
                await reconcile_pending(self.cap, self.store, self.obs)
                if outcome.session_id is not None:
                    row = self.store.session(outcome.session_id)
                    outcome.status = str(row.status)
                    outcome.delivered_fluence = dict(row.delivered_fluence)
        return outcome

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
        # one way out: the end of the window goes through the stop path too (a noisy link
        # that cannot carry a handshake may still carry an ABORT)
        self._off = await self._stop(W.AbortReason.LINK, within_s=_LINK_STOP_S)
        if self._off:
            return await self._conclude(self._end, action)
        outcome = await self._finish(
            "interrupted",
            "stop_not_confirmed",
            f"stop not confirmed: {action.reason}; the link did not come back within "
            f"{self.opts.reconnect_s:g} s",
            3,
            error=LinkLost(
                f"the link to {cap.url} was lost mid-session and did not come back",
                advice="The device runs the plan to its end on its own (or stops, by policy); "
                "the session will be reconciled from its record at the next connection.",
            ),
            off=False,
        )
        return outcome


async def _unstoppable(coro: Any) -> Any:
    """Run the stop path to its end: a cancel that arrives meanwhile (a second Ctrl-C, a
    SIGHUP after a SIGTERM) is absorbed, since the stop path is what it asks for."""
    task = asyncio.ensure_future(coro)
    while True:
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done():
                raise
            continue


def _enum_name(enum: Any, value: int) -> str:
    try:
        return str(enum(value).name.lower())
    except ValueError:
        return str(value)


def _default_limits() -> Limits:
    from lllt.safety import DEFAULT_LIMITS

    return DEFAULT_LIMITS


# --- signals ---------------------------------------------------------------------------------

#: signals that end ``lllt run`` the way Ctrl-C does (closing the terminal, ``kill PID``)
STOP_SIGNALS = ("SIGTERM", "SIGHUP", "SIGQUIT")


@contextlib.contextmanager
def _stop_signals(runner: SessionRunner, *, enabled: bool) -> Any:
    """While the session runs, turn Ctrl-C and termination signals into one cancel of its
    task, which takes the one stop path (ABORT until confirmed off, then the record).
    Repeated signals while it stops are ignored: a second Ctrl-C would otherwise raise
    KeyboardInterrupt in the middle of the ABORTs (asyncio's own SIGINT handling)."""
    import signal
    import threading

    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    installed: list[signal.Signals] = []
    if enabled and task is not None and threading.current_thread() is threading.main_thread():
        fired: list[str] = []

        def stop(name: str) -> None:
            if fired:
                return  # once: the stop path is already under way (a second Ctrl-C too)
            fired.append(name)
            if name != "SIGINT":
                runner.signal_name = name
            task.cancel()

        for name in ("SIGINT", *STOP_SIGNALS):
            sig = getattr(signal, name, None)
            if sig is None:
                continue
            try:
                loop.add_signal_handler(sig, stop, name)
            except (NotImplementedError, RuntimeError, ValueError):
                continue  # an event loop without signal support (Windows): Ctrl-C only
            installed.append(sig)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


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
    handle_signals: bool = True,
    dev_key: bool = False,
) -> SessionOutcome:
    """Run one session from a protocol file (or model) on a device URL; blocking.

    Preflight refusals and connection problems raise :class:`lllt.errors.LlltError`;
    once the session is logged, the outcome is returned (``outcome.raise_for_status()``).

    One way out: Ctrl-C (SIGINT) and, with ``handle_signals`` (the default, on the main
    thread of a POSIX process), SIGTERM, SIGHUP and SIGQUIT all stop the session through
    the same path: ABORT until the emitters are confirmed off, then the record, then
    :class:`lllt.errors.UserAborted`.

    ``dev_key`` lets a device that is not a simulator be signed with the published
    development key (a development board); a warning is logged.
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
            async with Cap.connect(device, dev_key=dev_key) as cap:
                runner = SessionRunner(
                    cap, store, model, protocol_text=text, options=options, observer=observer
                )
                with _stop_signals(runner, enabled=handle_signals):
                    if timeout is None:
                        return await runner.run()
                    return await asyncio.wait_for(runner.run(), timeout)
        finally:
            store.close()

    virtual, speed = wants_virtual_clock(device)
    return clock.run(main(), virtual=virtual, speed=speed)

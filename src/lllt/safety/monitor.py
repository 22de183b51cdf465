"""Runtime monitor: the host's check of every telemetry frame and event (layer 2).

A :class:`RuntimeMonitor` is a plain synchronous object: the session runner feeds it
every ``wire.Telemetry`` (:meth:`~RuntimeMonitor.on_telemetry`) and ``wire.Event``
(:meth:`~RuntimeMonitor.on_event`) and acts on the :class:`MonitorAction` it returns
(``continue``, ``derate`` to a permille, ``abort``, ``link_fault``). It never does I/O and
never reads a clock: frame rules run on the device's own time (``time_ms``), the silence
rule on the host time the runner passes to :meth:`~RuntimeMonitor.deadline` and
:meth:`~RuntimeMonitor.check_silence` (the runner owns the timers).

Rules (layer 2 of ``docs/safety.md``):

- contact temperature ≥ warning (41 °C − sensor uncertainty): derate by the shared
  :class:`~lllt.safety.limits.DeratePolicy` (−10 % every 10 s while at or above, never
  below its floor, never raised again); ≥ abort (43 °C − uncertainty): abort;
- no temperature reading (None) while emitting: abort;
- measured irradiance off the device's own setpoint by more than 20 % for longer than a
  short grace (ramp starts, step changes), setpoints near zero skipped: abort;
- the device commanding more than the plan allows (plan irradiance × requested derate):
  abort; a running plan id other than the one uploaded: abort;
- measured output while commanded off (setpoint 0, or not RUNNING) in two consecutive
  frames (``stuck_on``): abort;
- the device's fluence counters and the host's own trapezoid integration of telemetry
  (irradiance × duty × dt on device time) differing by more than 5 % (and an absolute
  floor, so rounding at tiny fluences cannot trip it): abort;
- fault flags, interlock and fault events, a reboot: abort (the device has stopped; the
  action carries what it reported);
- no telemetry before the deadline: link fault.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from lllt import wire
from lllt.dose import IRRADIANCE_STEP
from lllt.errors import DeviceFault, LinkLost, SafetyAbort, SafetyError
from lllt.safety.limits import (
    DEFAULT_DERATE,
    DEFAULT_LIMITS,
    DeratePolicy,
    Limits,
    temperature_thresholds,
)

if TYPE_CHECKING:
    from lllt.info import DeviceInfo
    from lllt.plan import SessionPlan


#: how long the cap may be off the head before the session ends (the device's own limit
#: when it reports one)
HEAD_OFF_ABORT_S = 300.0
_HEAD_PRESENT = int(wire.TelemetryFlag.HEAD_PRESENT)


class ActionKind(StrEnum):
    """What the runner must do after a frame or event."""

    CONTINUE = "continue"
    DERATE = "derate"
    ABORT = "abort"
    LINK_FAULT = "link_fault"


@dataclass(frozen=True, slots=True)
class MonitorAction:
    """What the runner must do after a frame or event."""

    kind: ActionKind
    rule: str = ""  # which rule fired, e.g. "overtemp", "irradiance_deviation"
    reason: str = ""  # one sentence for the log and the user
    permille: int | None = None  # DERATE: the new output factor
    limit: float | None = None
    observed: float | None = None
    unit: str = ""
    channel: int | None = None  # channel id
    zone: int | None = None  # zone id
    time_ms: int | None = None  # device time of the frame or event

    @property
    def is_continue(self) -> bool:
        """True when there is nothing to do."""
        return self.kind is ActionKind.CONTINUE

    @property
    def by_device(self) -> bool:
        """The device itself stopped (interlock, fault, reboot): the host records it."""
        return self.rule.startswith("device_")

    def to_error(self) -> SafetyError | LinkLost:
        """The error the runner raises when it ends the session on this action."""
        fields: dict[str, Any] = {
            "rule": self.rule,
            "limit": self.limit,
            "observed": self.observed,
            "unit": self.unit,
            "channel": self.channel,
            "zone": self.zone,
        }
        if self.kind is ActionKind.LINK_FAULT:
            return LinkLost(self.reason, **fields)
        if self.by_device:
            return DeviceFault(
                self.reason,
                advice="The device stopped the session; see `lllt history` for the record.",
                **fields,
            )
        return SafetyAbort(
            self.reason,
            advice="The session was stopped by the host's safety monitor; nothing more "
            "will be emitted in it.",
            **fields,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form (every field; ``kind`` by its value), for the session log."""
        return {
            "kind": self.kind.value,
            "rule": self.rule,
            "reason": self.reason,
            "permille": self.permille,
            "limit": self.limit,
            "observed": self.observed,
            "unit": self.unit,
            "channel": self.channel,
            "zone": self.zone,
            "time_ms": self.time_ms,
        }


CONTINUE = MonitorAction(ActionKind.CONTINUE)

_RUNNING = wire.State.RUNNING
_PAUSED = wire.State.PAUSED
_FAULT_FLAGS = int(
    wire.TelemetryFlag.FAULT_THERMAL
    | wire.TelemetryFlag.FAULT_SENSOR
    | wire.TelemetryFlag.FAULT_OUTPUT
    | wire.TelemetryFlag.FAULT_SUPPLY
)
_EMITTING = int(wire.TelemetryFlag.EMITTING)

#: Interlock event value/limit units: (scale to engineering units, unit).
_INTERLOCK_UNITS: dict[int, tuple[float, str]] = {
    wire.Interlock.THERMAL_CUTOFF: (0.01, "°C"),
    wire.Interlock.IRRADIANCE_CAP: (0.01, "mW/cm²"),
    wire.Interlock.MAX_DURATION: (0.001, "s"),
    wire.Interlock.MAX_FLUENCE: (1e-6, "J/cm²"),
    wire.Interlock.HEAD_OFF_TIMEOUT: (0.001, "s"),
    wire.Interlock.LEASE_STOP: (0.001, "s"),
    wire.Interlock.BROWNOUT: (0.001, "V"),
    wire.Interlock.SENSOR_FAULT: (0.01, "°C"),
    wire.Interlock.OVER_OUTPUT: (0.01, "mW/cm²"),
}
_ZONE_INTERLOCKS = {wire.Interlock.THERMAL_CUTOFF, wire.Interlock.SENSOR_FAULT}
_CHANNEL_INTERLOCKS = {
    wire.Interlock.IRRADIANCE_CAP,
    wire.Interlock.MAX_FLUENCE,
    wire.Interlock.OVER_OUTPUT,
}


def _step_limits(
    plan: SessionPlan, device: DeviceInfo
) -> tuple[tuple[tuple[float, ...], ...], tuple[float, ...]]:
    """Per step of ``plan``: the most each channel may be commanded (in HELLO order, as the
    wire carries it, in mW/cm²), and the duty as a fraction."""
    n = len(device.channels)
    pos = device.channel_index
    allowed: list[tuple[float, ...]] = []
    duty: list[float] = []
    for step in plan.steps:
        row = [0.0] * n
        for sp in step.setpoints:
            i = pos.get(sp.channel)
            if i is not None:
                row[i] = round(sp.irradiance_mw_cm2 * 100) / 100
        allowed.append(tuple(row))
        duty.append(step.duty_pct / 100.0)
    return tuple(allowed), tuple(duty)


class RuntimeMonitor:
    """Checks one session's telemetry and events against the plan and the limits."""

    #: one wire step of irradiance (and a tenth for rounding), allowed on every comparison
    QUANTUM = IRRADIANCE_STEP * 1.1

    def __init__(
        self,
        plan: SessionPlan,
        device: DeviceInfo | None = None,
        limits: Limits = DEFAULT_LIMITS,
        *,
        plan_id: int | None = None,
        derate: DeratePolicy = DEFAULT_DERATE,
        telemetry_period_s: float = 0.1,
        silence_timeout_s: float | None = None,
        deviation_fraction: float = 0.20,
        deviation_grace_s: float = 0.5,
        near_zero_mw_cm2: float = 0.05,
        emit_threshold_mw_cm2: float = 0.05,
        off_grace_s: float = 0.02,
        fluence_tolerance: float = 0.05,
        fluence_floor_j_cm2: float = 0.02,
        derate_grace_s: float = 1.0,
        gap_s: float = 2.0,
    ) -> None:
        """``telemetry_period_s`` is the telemetry period in *host* seconds (the runner
        scales the device period by the clock rate); the silence timeout defaults to the
        longer of 5 periods and 1 s."""
        self.plan = plan
        self.device = device = device or plan.device
        self.limits = limits
        self.plan_id = plan_id
        self.policy = derate
        self.thresholds = th = temperature_thresholds(limits, device.limits)
        self._warn, self._abort = th.warn_c, th.abort_c
        self.silence_timeout_s = (
            silence_timeout_s
            if silence_timeout_s is not None
            else max(1.0, 5.0 * telemetry_period_s)
        )
        self._dev_frac = deviation_fraction
        self._dev_grace = deviation_grace_s
        self._near_zero = near_zero_mw_cm2
        self._emit_eps = emit_threshold_mw_cm2
        self._off_grace = off_grace_s
        self._fl_tol = fluence_tolerance
        self._fl_floor = fluence_floor_j_cm2
        self._derate_grace = derate_grace_s
        self._gap = gap_s
        # head-present rule: the host's own copy of the device's head-off pause and abort
        self._head_sensor = bool(device.hello.capabilities & wire.Capability.HEAD_SENSOR)
        self._head_off_limit_s = device.limits.head_off_abort_s or HEAD_OFF_ABORT_S
        self._head_off_since: float | None = None
        self._head_off_emitting = 0

        self._channel_ids = tuple(c.id for c in device.channels)
        self._zone_ids = tuple(z.id for z in device.zones)
        n = len(self._channel_ids)
        self._allowed, self._duty = _step_limits(plan, device)
        self._n = n
        self._init_state(n)

    def _init_state(self, n: int) -> None:
        """What the monitor keeps from frame to frame, for a session about to start."""
        self.permille = 1000  # the output factor the host asked for (only ever lowered)
        self._prev_permille = 1000
        self._derate_until = -1.0  # device s: until then the previous factor is tolerated
        self._last_derate: float | None = None
        self.device_permille: int | None = None
        self._dev_since: list[float | None] = [None] * n
        #: what the last output check that passed saw: (the step's allowed, permille,
        #: setpoints, measured, channels off their setpoint); a frame showing the same
        #: outputs only needs those channels' timers checked
        self._output_seen: (
            tuple[tuple[float, ...], int, tuple[float, ...], tuple[float, ...], list[int]] | None
        ) = None
        self._off_since: float | None = None
        #: (setpoints, measured, the channel emitting while commanded off or -1) of the
        #: last running frame
        self._stuck_seen: tuple[tuple[float, ...], tuple[float, ...], int] = ((), (), -1)
        self._step = -1
        self._last_rx: float | None = None
        # fluence integration
        self._host: list[float] = [0.0] * n  # host's estimate of each device counter
        self._base: list[float] = [0.0] * n  # device counters when integration (re)started
        self._prev_t: float | None = None
        self._prev_rate: list[float] = [0.0] * n  # irradiance x duty at the previous frame
        self._prev_elapsed = -1
        self._prev_plan_id: int | None = None
        self.rebases = 0  # times the integration restarted after a gap
        self.frames = 0
        self.first_abort: MonitorAction | None = None

    # --- public ---------------------------------------------------------------------------

    @property
    def host_fluence(self) -> tuple[float, ...]:
        """The host's integrated estimate of each channel's session fluence (J/cm²)."""
        return tuple(self._host)

    def resync(self) -> None:
        """After a reconnect: restart the fluence integration at the next frame, and the
        silence deadline at the next call of :meth:`deadline` (the link is new)."""
        self._prev_t = None
        self._last_rx = None

    def deadline(self, now: float) -> float:
        """Host time by which the next telemetry must arrive; the first call arms it."""
        if self._last_rx is None:
            self._last_rx = now
        return self._last_rx + self.silence_timeout_s

    def check_silence(self, now: float) -> MonitorAction:
        """LINK_FAULT once ``now`` reaches the deadline with no frame since (a runner may
        sleep until :meth:`deadline` and call this right then)."""
        deadline = self.deadline(now)
        if now < deadline:
            return CONTINUE
        silent = now - (deadline - self.silence_timeout_s)
        return self._abort_action(
            MonitorAction(
                ActionKind.LINK_FAULT,
                "telemetry_silent",
                f"no telemetry for {silent:.2f} s (deadline {self.silence_timeout_s:g} s): "
                "the link is treated as lost",
                limit=self.silence_timeout_s,
                observed=silent,
                unit="s",
            )
        )

    def on_telemetry(self, t: wire.Telemetry, now: float | None = None) -> MonitorAction:
        """Check one frame; ``now`` (host time) feeds the silence deadline."""
        if now is not None:
            self._last_rx = now
        self.frames += 1
        tm = t.time_ms / 1000.0
        state = t.state
        running = state == _RUNNING
        active = running or state == _PAUSED
        flags = int(t.flags)
        sp = t.setpoint
        irr = t.irradiance
        n = self._n
        if len(sp) != n or len(irr) != n or len(t.fluence) != n:
            return self._abort_action(
                self._frame_abort(
                    t,
                    "telemetry_shape",
                    f"telemetry has {len(sp)} channels but the device announced {n}",
                )
            )

        if flags & _FAULT_FLAGS and active:
            return self._abort_action(
                self._frame_abort(
                    t,
                    "device_fault",
                    f"the device reports a fault ({_flag_names(flags & _FAULT_FLAGS)})",
                )
            )

        if active and self._head_sensor:
            action = self._head_rule(t, tm, running, flags, irr)
            if action is not None:
                return self._abort_action(action)

        action = self._stuck_rule(t, tm, running, flags, sp, irr)
        if action is not None:
            return self._abort_action(action)

        # temperatures
        hot = self._temperature_rule(t, running or bool(flags & _EMITTING), active)
        if isinstance(hot, MonitorAction):
            return self._abort_action(hot)
        hottest, hot_zone = hot

        if running and self.plan_id is not None and t.plan_id != self.plan_id:
            return self._abort_action(
                self._frame_abort(
                    t,
                    "plan_mismatch",
                    f"the device runs plan {t.plan_id}, not the uploaded plan {self.plan_id}",
                    limit=float(self.plan_id),
                    observed=float(t.plan_id),
                )
            )

        step = t.step
        if step != self._step:
            # a new step ramps from zero: its deviation timers start afresh
            self._step = step
            self._dev_since = [None] * n
        if running and 0 <= step < len(self._allowed):
            action = self._check_output(t, tm, self._allowed[step], sp, irr)
            if action is not None:
                return self._abort_action(action)
        elif not running:
            for i in range(n):
                self._dev_since[i] = None

        action = self._integrate(t, tm, active)
        if action is not None:
            return self._abort_action(action)

        # derating last: an abort always wins
        if running and hottest >= self._warn:
            return self._derate_rule(t, tm, hottest, hot_zone)
        return CONTINUE

    def _stuck_rule(
        self,
        t: wire.Telemetry,
        tm: float,
        running: bool,
        flags: int,
        sp: tuple[float, ...],
        irr: tuple[float, ...],
    ) -> MonitorAction | None:
        """Emitting while commanded off (stuck on): in two consecutive frames, so the tick
        in which the device switches off is not mistaken for it."""
        n = self._n
        stuck = -1
        eps = self._emit_eps
        if running:
            seen = self._stuck_seen
            if seen[0] == sp and seen[1] == irr:
                stuck = seen[2]  # the outputs of the frame before: the same answer
            else:
                for i in range(n):
                    if irr[i] > eps and sp[i] < 0.005:
                        stuck = i
                        break
                self._stuck_seen = (sp, irr, stuck)
        else:
            for i in range(n):
                if irr[i] > eps:
                    stuck = i
                    break
            if stuck < 0 and flags & _EMITTING:
                stuck = n  # flagged as emitting, no channel shows it
        if stuck < 0:
            self._off_since = None
            return None
        if self._off_since is None:
            self._off_since = tm
            return None
        if tm - self._off_since < self._off_grace:
            return None
        ch = self._channel_ids[stuck] if stuck < n else None
        observed = irr[stuck] if stuck < n else None
        return self._frame_abort(
            t,
            "emitting_while_off",
            "the cap emits while commanded off"
            + (f": channel {ch} measures {observed:g} mW/cm²" if ch is not None else "")
            + f" (state {t.state.name})",
            limit=0.0,
            observed=observed,
            unit="mW/cm²",
            channel=ch,
        )

    def _temperature_rule(
        self, t: wire.Telemetry, emitting: bool, active: bool
    ) -> MonitorAction | tuple[float, int]:
        """The hottest zone (reading, index), or the abort for a zone without a reading
        while the cap emits, or for one at or above the abort threshold in a session."""
        hottest = -1e9
        hot_zone = -1
        for zi, temp in enumerate(t.temperature):
            if temp is None:
                if emitting:
                    return self._frame_abort(
                        t,
                        "sensor_missing",
                        f"zone {self._zone_name(zi)} has no temperature reading while "
                        "the cap emits",
                        zone=self._zone_id(zi),
                    )
                continue
            if temp > hottest:
                hottest, hot_zone = temp, zi
        if active and hottest >= self._abort:
            return self._frame_abort(
                t,
                "overtemp",
                f"zone {self._zone_name(hot_zone)} reads {hottest:.2f} °C, at or above the "
                f"abort threshold {self._abort:g} °C",
                limit=self._abort,
                observed=hottest,
                unit="°C",
                zone=self._zone_id(hot_zone),
            )
        return hottest, hot_zone

    def _derate_rule(
        self, t: wire.Telemetry, tm: float, hottest: float, hot_zone: int
    ) -> MonitorAction:
        """A running session at or above the warning threshold: the next derate step when
        one is due (``DeratePolicy.step_at``), else carry on."""
        pm = self.permille
        new = self.policy.step_at(pm, self._last_derate, tm)
        if new is None:
            return CONTINUE
        self._prev_permille = pm
        self._derate_until = tm + self._derate_grace
        self.permille = new
        self._last_derate = tm
        return MonitorAction(
            ActionKind.DERATE,
            "overtemp_derate",
            f"zone {self._zone_name(hot_zone)} reads {hottest:.2f} °C, at or above the "
            f"warning threshold {self._warn:g} °C: output lowered to {new / 10:g} %",
            permille=new,
            limit=self._warn,
            observed=hottest,
            unit="°C",
            zone=self._zone_id(hot_zone),
            time_ms=t.time_ms,
        )

    def _head_rule(
        self, t: wire.Telemetry, tm: float, running: bool, flags: int, irr: tuple[float, ...]
    ) -> MonitorAction | None:
        """Off the head: the device must pause (no output), and the session ends after
        ``head_off_abort_s`` (5 minutes) off the head, whatever the device does."""
        if flags & _HEAD_PRESENT:
            self._head_off_since = None
            self._head_off_emitting = 0
            return None
        if self._head_off_since is None:
            self._head_off_since = tm
        if running and any(v > self._emit_eps for v in irr):
            # one frame of lag is allowed (the tick in which the device pauses)
            self._head_off_emitting += 1
            if self._head_off_emitting >= 2:
                return self._frame_abort(
                    t,
                    "head_off_emitting",
                    "the cap is off the head but still emits: the device did not pause",
                )
        else:
            self._head_off_emitting = 0
        off_s = tm - self._head_off_since
        if off_s >= self._head_off_limit_s:
            return self._frame_abort(
                t,
                "head_off_timeout",
                f"the cap has been off the head for {off_s:.0f} s (limit "
                f"{self._head_off_limit_s:g} s)",
                limit=self._head_off_limit_s,
                observed=off_s,
                unit="s",
            )
        return None

    def on_event(self, e: wire.Event) -> MonitorAction:
        """Check one device event. STEP and DERATE events update what the monitor expects; an
        interlock, a latched fault or a reboot gives an abort with a ``device_...`` rule (the
        device has stopped); anything else continues."""
        kind = e.kind
        if kind == wire.EventKind.STEP:
            self._step = e.a
            self._dev_since = [None] * self._n
            return CONTINUE
        if kind == wire.EventKind.DERATE:
            self.device_permille = e.value
            return CONTINUE
        if kind == wire.EventKind.INTERLOCK or (kind == wire.EventKind.FAULT and e.value == 1):
            return self._abort_action(self._interlock(e))
        if kind == wire.EventKind.BOOT:
            return self._abort_action(
                MonitorAction(
                    ActionKind.ABORT,
                    "device_reboot",
                    f"the device rebooted (cause {_name(wire.BootCause, e.a)}); emission ended "
                    "and the session record will be reconciled",
                    time_ms=e.time_ms,
                )
            )
        return CONTINUE

    # --- rules ------------------------------------------------------------------------------

    def _check_output(
        self,
        t: wire.Telemetry,
        tm: float,
        allowed: tuple[float, ...],
        sp: tuple[float, ...],
        irr: tuple[float, ...],
    ) -> MonitorAction | None:
        pm = self._prev_permille if tm < self._derate_until else self.permille
        since = self._dev_since
        seen = self._output_seen
        if (
            seen is not None
            and seen[0] is allowed
            and seen[1] == pm
            and seen[2] == sp
            and seen[3] == irr
        ):
            # the commanded and measured outputs of the frame before, which passed every
            # ceiling: only the channels then off their setpoint have a timer to check
            # (the others' timers are off, and a reset one is caught below)
            for i in seen[4]:
                started = since[i]
                if started is None:
                    break  # its timer was reset since: the whole check, as for a new frame
                if tm - started > self._dev_grace:
                    return self._deviation_abort(t, i, sp[i], irr[i], tm - started)
            else:
                return None
        factor = pm / 1000.0
        q = self.QUANTUM
        frac = self._dev_frac
        near_zero = self._near_zero
        off: list[int] = []
        for i in range(self._n):
            s = sp[i]
            ceiling = allowed[i] * factor * 1.001 + q
            if s > ceiling:
                return self._frame_abort(
                    t,
                    "setpoint_above_plan",
                    f"channel {self._channel_ids[i]} is commanded {s:g} mW/cm², more than the "
                    f"plan allows ({allowed[i]:g} mW/cm² × {pm / 10:g} %)",
                    limit=allowed[i] * factor,
                    observed=s,
                    unit="mW/cm²",
                    channel=self._channel_ids[i],
                )
            if s < near_zero:
                since[i] = None
                continue
            if abs(irr[i] - s) > frac * s + q:
                started = since[i]
                if started is None:
                    since[i] = tm
                elif tm - started > self._dev_grace:
                    return self._deviation_abort(t, i, s, irr[i], tm - started)
                off.append(i)
            else:
                since[i] = None
        self._output_seen = (allowed, pm, sp, irr, off)
        return None

    def _deviation_abort(
        self, t: wire.Telemetry, i: int, s: float, measured: float, for_s: float
    ) -> MonitorAction:
        frac = self._dev_frac
        return self._frame_abort(
            t,
            "irradiance_deviation",
            f"channel {self._channel_ids[i]} measures {measured:g} mW/cm² against a "
            f"setpoint of {s:g} mW/cm² (more than {frac * 100:g} % off for "
            f"{for_s:.1f} s)",
            limit=s * frac,
            observed=abs(measured - s),
            unit="mW/cm²",
            channel=self._channel_ids[i],
        )

    def _integrate(self, t: wire.Telemetry, tm: float, active: bool) -> MonitorAction | None:
        """Trapezoid of irradiance × duty over device time, compared with the counters."""
        n = self._n
        step = t.step
        duty = self._duty[step] if 0 <= step < len(self._duty) else 0.0
        irr = t.irradiance
        fl = t.fluence
        prev_t = self._prev_t
        new_session = (
            t.elapsed_ms < self._prev_elapsed or t.plan_id != self._prev_plan_id
        ) and prev_t is not None
        self._prev_elapsed = t.elapsed_ms
        self._prev_plan_id = t.plan_id
        if not active:
            # between sessions the counters mean nothing to this session: restart later
            self._prev_t = None
            return None
        rate = [irr[i] * duty for i in range(n)]
        if prev_t is None or new_session or tm - prev_t > self._gap or tm < prev_t:
            if prev_t is not None and not new_session:
                self.rebases += 1  # frames were lost: the integral cannot bridge the gap
            self._base = list(fl)
            self._host = list(fl)
            self._prev_t = tm
            self._prev_rate = rate
            return None
        dt = tm - prev_t
        host = self._host
        prev_rate = self._prev_rate
        base = self._base
        floor = self._fl_floor
        tol = self._fl_tol
        worst = -1
        for i in range(n):
            h = host[i] + (prev_rate[i] + rate[i]) * dt / 2000.0
            host[i] = h
            d = fl[i]
            diff = d - h if d > h else h - d
            if diff > floor:
                inc = max(d - base[i], h - base[i])
                if diff > tol * inc:
                    worst = i
                    break
        self._prev_t = tm
        self._prev_rate = rate
        if worst < 0:
            return None
        i = worst
        inc = max(fl[i] - base[i], host[i] - base[i])
        return self._frame_abort(
            t,
            "fluence_mismatch",
            f"channel {self._channel_ids[i]}: the device counts {fl[i]:.4f} J/cm² but the host "
            f"integrated {host[i]:.4f} J/cm² from telemetry (more than {tol * 100:g} % apart)",
            limit=tol * inc,
            observed=abs(fl[i] - host[i]),
            unit="J/cm²",
            channel=self._channel_ids[i],
        )

    def _interlock(self, e: wire.Event) -> MonitorAction:
        try:
            kind = wire.Interlock(e.a)
        except ValueError:
            kind = None
        scale, unit = _INTERLOCK_UNITS.get(e.a, (1.0, ""))
        name = kind.name if kind is not None else f"interlock {e.a}"
        what = "interlock" if e.kind == wire.EventKind.INTERLOCK else "fault"
        zone = channel = None
        if kind in _ZONE_INTERLOCKS and e.b < len(self._zone_ids):
            zone = self._zone_ids[e.b]
        if kind in _CHANNEL_INTERLOCKS and e.b < len(self._channel_ids):
            channel = self._channel_ids[e.b]
        observed = e.value * scale if e.kind == wire.EventKind.INTERLOCK else None
        limit = e.limit * scale if e.kind == wire.EventKind.INTERLOCK else None
        detail = ""
        if observed is not None and unit:
            detail = f": {observed:g} {unit} (limit {limit:g} {unit})"
        return MonitorAction(
            ActionKind.ABORT,
            "device_interlock" if what == "interlock" else "device_fault",
            f"the device's {name} {what} stopped the session{detail}",
            limit=limit,
            observed=observed,
            unit=unit,
            channel=channel,
            zone=zone,
            time_ms=e.time_ms,
        )

    # --- helpers ----------------------------------------------------------------------------

    def _frame_abort(self, t: wire.Telemetry, rule: str, reason: str, **kw: Any) -> MonitorAction:
        return MonitorAction(ActionKind.ABORT, rule, reason, time_ms=t.time_ms, **kw)

    def _abort_action(self, action: MonitorAction) -> MonitorAction:
        if self.first_abort is None:
            self.first_abort = action
        return action

    def _zone_id(self, zi: int) -> int | None:
        return self._zone_ids[zi] if 0 <= zi < len(self._zone_ids) else None

    def _zone_name(self, zi: int) -> str:
        if 0 <= zi < len(self._zone_ids):
            return self.device.zones[zi].name
        return str(zi)


def _flag_names(flags: int) -> str:
    return ", ".join(f.name or "" for f in wire.TelemetryFlag if f & flags)


def _name(enum: Any, value: int) -> str:
    try:
        return str(enum(value).name)
    except ValueError:
        return str(value)

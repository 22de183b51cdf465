"""Thermal prediction: the device's two-node zone model, solved on the host (docs/safety.md).

Each zone of a cap is an emitter board (node b) pressed on a scalp contact layer (node s),
the board coupled to ambient air and the scalp to perfused tissue at ``t_core``
(``docs/wire-protocol.md`` §5; constants from HELLO_INFO)::

    C_b dTb/dt = Q_b + G_c (Ts − Tb) + G_a (Ta − Tb)
    C_s dTs/dt = Q_s + G_c (Tb − Ts) + G_t (Tcore − Ts)

with ``Q_b``, ``Q_s`` the sums over the zone's channels of ``heat_board`` and
``heat_scalp`` × *average* irradiance (on-state irradiance × duty × ramp × derate). This
is an independent implementation: it shares the equations, not the code, with the
simulator and the firmware.

The model is linear, so over an interval ``h`` with constant heat it has the exact
solution ``x(t+h) = x* + Φ(h)(x(t) − x*)``, ``Φ = expm(A h)`` in closed form for 2×2 and
``x*`` the steady state: no integration error, a few multiplications per second of plan.
Zones with the same constants and the same load are simulated once.

The prediction runs the plan as the runtime monitor would supervise it: the monitor's
:class:`~lllt.safety.limits.DeratePolicy` steps the output down whenever the hottest
zone is at or above the warning threshold. The acceptance rule (``docs/safety.md``):

- a duration step must stay below the warning threshold, since derating it would
  under-dose (and a derating inherited from an earlier step counts as under-dosing too);
- a fluence-target step may be derated: its derated trajectory must stay below the abort
  threshold less ``abort_margin_c``, and it must reach every target within its maximum
  duration.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lllt import wire
from lllt.safety.limits import (
    DEFAULT_DERATE,
    DEFAULT_LIMITS,
    DeratePolicy,
    Limits,
    Thresholds,
    format_duration,
    temperature_thresholds,
)

if TYPE_CHECKING:
    from lllt.info import DeviceInfo
    from lllt.plan import SessionPlan, Step

#: Offline analysis (no device connected) assumes this ambient temperature.
OFFLINE_AMBIENT_C = 25.0
#: Readings outside this range (°C) are sensor faults, not temperatures to predict from.
_PLAUSIBLE_C = (-20.0, 60.0)


# --- the zone model ------------------------------------------------------------------------


class ZoneModel:
    """Closed-form solution of one zone's two-node model at a fixed ambient."""

    __slots__ = ("_phi_cache", "a", "ambient_c", "lam1", "lam2", "ss", "zone")

    def __init__(self, zone: wire.ZoneInfo, ambient_c: float) -> None:
        self.zone = zone
        self.ambient_c = ambient_c
        cb, cs = zone.c_board_j_k, zone.c_scalp_j_k
        ga, gc, gt = zone.g_ambient_w_k, zone.g_contact_w_k, zone.g_tissue_w_k
        if min(cb, cs) <= 0 or min(ga, gc, gt) < 0 or ga + gt <= 0 or gc <= 0:
            raise ValueError(f"zone {zone.name!r}: thermal constants are not physical")
        a11, a12 = -(gc + ga) / cb, gc / cb
        a21, a22 = gc / cs, -(gc + gt) / cs
        self.a = (a11, a12, a21, a22)
        half_tr = (a11 + a22) / 2.0
        disc = math.sqrt(((a11 - a22) / 2.0) ** 2 + a12 * a21)  # > 0: a12 * a21 > 0
        self.lam1, self.lam2 = half_tr + disc, half_tr - disc
        # steady state: Tb* = b0 + bb*Qb + bs*Qs, Ts* = s0 + sb*Qb + ss*Qs (conductance network)
        d = ga * gc + ga * gt + gc * gt
        b_amb, s_core = ga * ambient_c, gt * zone.t_core_c
        self.ss = (
            (b_amb * (gc + gt) + gc * s_core) / d,
            (gc + gt) / d,
            gc / d,
            (s_core * (gc + ga) + gc * b_amb) / d,
            gc / d,
            (gc + ga) / d,
        )
        self._phi_cache: dict[float, tuple[float, float, float, float]] = {}

    def steady_state(self, q_board_w: float = 0.0, q_scalp_w: float = 0.0) -> tuple[float, float]:
        """(board, scalp) °C the zone settles at under constant heat."""
        b0, bb, bs, s0, sb, ss = self.ss
        return b0 + bb * q_board_w + bs * q_scalp_w, s0 + sb * q_board_w + ss * q_scalp_w

    def phi(self, h: float) -> tuple[float, float, float, float]:
        """expm(A h) as (p11, p12, p21, p22), by the two-eigenvalue formula."""
        cached = self._phi_cache.get(h)
        if cached is not None:
            return cached
        l1, l2 = self.lam1, self.lam2
        e1, e2 = math.exp(l1 * h), math.exp(l2 * h)
        c0 = (l1 * e2 - l2 * e1) / (l1 - l2)
        c1 = (e1 - e2) / (l1 - l2)
        a11, a12, a21, a22 = self.a
        out = (c0 + c1 * a11, c1 * a12, c1 * a21, c0 + c1 * a22)
        if len(self._phi_cache) < 64:
            self._phi_cache[h] = out
        return out

    def board_for_scalp(self, scalp_c: float) -> float:
        """Board temperature consistent with a scalp reading when nothing emits.

        From the scalp equation at rest, ``Tb = Ts − G_t (Tcore − Ts) / G_c``: a scalp
        warmer than the core implies a board warmer still, which is the conservative
        reading of a zone that has just been heated.
        """
        z = self.zone
        return scalp_c - z.g_tissue_w_k * (z.t_core_c - scalp_c) / z.g_contact_w_k


# --- results ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ZonePeak:
    """One zone's predicted scalp temperature (°C): at the start, and its peak and when it
    comes (seconds from the start of the session)."""

    zone_id: int
    name: str
    start_c: float
    peak_c: float
    peak_at_s: float


@dataclass(frozen=True, slots=True)
class StepPrediction:
    """The prediction for one step: times in seconds from the start of the session, the
    hottest scalp temperature (°C) and where, derating, and fluence per wavelength (J/cm²)
    delivered and planned."""

    index: int
    name: str
    kind: str  # "duration" or "fluence"
    start_s: float
    end_s: float  # predicted end (fluence steps: when the last target is reached)
    nominal_s: float  # the plan's expected duration at full output
    max_duration_s: float
    peak_c: float
    peak_at_s: float
    peak_zone: int  # zone id
    warn_crossed_at_s: float | None  # first time the hottest zone reached the warning
    min_permille: int  # lowest output factor in the step (1000 = no derating)
    reached_target: bool  # duration steps: always True
    fluence_j_cm2: dict[int, float]  # per wavelength delivered in this step
    target_j_cm2: dict[int, float]  # per wavelength planned for this step

    @property
    def derated(self) -> bool:
        """True when the step runs derated at some point (in it, or since an earlier step)."""
        return self.min_permille < 1000

    @property
    def duration_s(self) -> float:
        """Predicted length of the step, in seconds."""
        return self.end_s - self.start_s

    def to_dict(self) -> dict[str, Any]:
        """JSON form, rounded (0.1 s, 0.01 °C, 0.0001 J/cm²)."""
        return {
            "index": self.index,
            "name": self.name,
            "kind": self.kind,
            "start_s": round(self.start_s, 1),
            "end_s": round(self.end_s, 1),
            "nominal_s": round(self.nominal_s, 1),
            "max_duration_s": round(self.max_duration_s, 1),
            "peak_c": round(self.peak_c, 2),
            "peak_at_s": round(self.peak_at_s, 1),
            "warn_crossed_at_s": None
            if self.warn_crossed_at_s is None
            else round(self.warn_crossed_at_s, 1),
            "derated": self.derated,
            "min_permille": self.min_permille,
            "reached_target": self.reached_target,
            "fluence_j_cm2": {str(k): round(v, 4) for k, v in sorted(self.fluence_j_cm2.items())},
            "target_j_cm2": {str(k): round(v, 4) for k, v in sorted(self.target_j_cm2.items())},
        }


@dataclass(frozen=True, slots=True)
class ThermalProblem:
    """Why a prediction does not pass (preflight turns each into a refusal)."""

    step: int | None
    constraint: str  # thermal_warning, thermal_abort, derated_duration_step, fluence_max_duration
    message: str
    limit: float
    observed: float
    unit: str


@dataclass(frozen=True)
class ThermalPrediction:
    """The predicted run of a whole plan, derating included: the scalp temperature of each
    zone over time (°C; times in seconds from the start), the output factor in force, each
    step and zone, and the problems that make preflight refuse."""

    ambient_c: float
    start_source: str  # where the starting temperatures come from
    thresholds: Thresholds
    abort_margin_c: float
    zones: tuple[ZonePeak, ...]
    steps: tuple[StepPrediction, ...]
    times_s: tuple[float, ...]
    scalp_c: tuple[tuple[float, ...], ...]  # per zone (HELLO order), one value per time
    permille: tuple[int, ...]  # output factor in force from each time on
    problems: tuple[ThermalProblem, ...]

    @property
    def ok(self) -> bool:
        """True when nothing in the prediction refuses the session."""
        return not self.problems

    @property
    def peak(self) -> ZonePeak:
        """The zone that gets hottest."""
        return max(self.zones, key=lambda z: z.peak_c)

    @property
    def peak_c(self) -> float:
        """The hottest predicted scalp temperature, °C."""
        return self.peak.peak_c

    @property
    def duration_s(self) -> float:
        """Predicted length of the session in seconds, derating included."""
        return self.steps[-1].end_s if self.steps else 0.0

    def to_dict(self, every_s: float = 10.0) -> dict[str, Any]:
        """JSON-friendly form; the trajectory is thinned to one sample per ``every_s``."""
        keep: list[int] = []
        next_t = 0.0
        for i, t in enumerate(self.times_s):
            if t + 1e-9 >= next_t or i == len(self.times_s) - 1:
                keep.append(i)
                next_t = t + every_s
        peak = self.peak
        return {
            "ambient_c": self.ambient_c,
            "start": self.start_source,
            "warn_c": self.thresholds.warn_c,
            "abort_c": self.thresholds.abort_c,
            "abort_margin_c": self.abort_margin_c,
            "peak_c": round(peak.peak_c, 2),
            "peak_zone": peak.name,
            "peak_at_s": round(peak.peak_at_s, 1),
            "duration_s": round(self.duration_s, 1),
            "ok": self.ok,
            "problems": [p.message for p in self.problems],
            "zones": [
                {
                    "zone": z.name,
                    "start_c": round(z.start_c, 2),
                    "peak_c": round(z.peak_c, 2),
                    "peak_at_s": round(z.peak_at_s, 1),
                }
                for z in self.zones
            ],
            "steps": [s.to_dict() for s in self.steps],
            "trajectory": {
                "t_s": [round(self.times_s[i], 1) for i in keep],
                "scalp_c": {
                    z.name: [round(self.scalp_c[zi][i], 2) for i in keep]
                    for zi, z in enumerate(self.zones)
                },
                "permille": [self.permille[i] for i in keep],
            },
        }


# --- prediction ------------------------------------------------------------------------------


@dataclass(slots=True)
class _Chan:
    index: int  # telemetry position
    wavelength_nm: int
    irradiance: float  # on-state mW/cm²
    heat_b: float  # W per mW/cm² of average output
    heat_s: float
    target: float  # J/cm², 0 in duration steps
    delivered: float = 0.0
    done: bool = False


@dataclass(slots=True)
class _Run:
    """The integrator's state across the plan: per zone group, its temperatures and their
    record; the clock; the output factor the monitor would have set, and when it last did."""

    models: list[ZoneModel]  # the group's representative zone
    tb: list[float]  # board °C now
    ts: list[float]  # scalp °C now
    peak: list[float]  # hottest scalp °C so far
    peak_at: list[float]
    traj: list[list[float]]  # scalp °C, one value per entry of times
    times: list[float]
    permille_traj: list[int]  # output factor in force from each time on
    permille: int = 1000
    last_derate: float | None = None
    t: float = 0.0

    @classmethod
    def start(cls, models: list[ZoneModel], starts: list[tuple[float, float]]) -> _Run:
        """At time 0, each group at its (board, scalp) start, at full output."""
        ts = [s for _, s in starts]
        return cls(
            models=models,
            tb=[b for b, _ in starts],
            ts=ts,
            peak=list(ts),
            peak_at=[0.0] * len(ts),
            traj=[[v] for v in ts],
            times=[0.0],
            permille_traj=[1000],
        )

    def record(self, t: float) -> tuple[float, int]:
        """Log the scalp temperatures at ``t``; the hottest and its group (0 if none)."""
        self.t = t
        self.times.append(t)
        hottest, hot_gi = -math.inf, 0
        for gi, v in enumerate(self.ts):
            self.traj[gi].append(v)
            if v > self.peak[gi]:
                self.peak[gi], self.peak_at[gi] = v, t
            if v > hottest:
                hottest, hot_gi = v, gi
        return hottest, hot_gi


@dataclass(frozen=True, slots=True)
class _Layout:
    """Where the plan's channels sit: their zone, and which zone groups are simulated."""

    members: list[list[int]]  # zone indices (HELLO order) of each group
    reps: list[int]  # the simulated zone of each group (its first member)
    zone_of_channel: dict[int, int]  # channel id -> zone index, -1 for none

    @property
    def group_of_zone(self) -> dict[int, int]:
        """Representative zone index -> its group."""
        return {zi: gi for gi, zi in enumerate(self.reps)}


def predict(
    plan: SessionPlan,
    *,
    ambient_c: float | None = None,
    scalp_c: Sequence[float | None] | None = None,
    limits: Limits = DEFAULT_LIMITS,
    thresholds: Thresholds | None = None,
    derate: DeratePolicy = DEFAULT_DERATE,
    abort_margin_c: float = 0.5,
    dt_s: float = 1.0,
) -> ThermalPrediction:
    """Predict every zone's scalp temperature over ``plan``, derating as the monitor would.

    ``ambient_c`` and ``scalp_c`` (per zone, HELLO order; None for a zone without a
    reading) come from a STATUS sample when a device is connected; without them the
    prediction starts from the model's idle steady state at 25 °C ambient and says so in
    ``start_source``.
    """
    device = plan.device
    if thresholds is None:
        thresholds = temperature_thresholds(limits, device.limits)
    ambient_c, ambient_note = _checked_ambient(ambient_c, scalp_c)
    zones = device.zones
    models = [ZoneModel(z, ambient_c) for z in zones]
    starts, start_note = _starting_states(models, scalp_c)
    layout = _group_zones(plan, starts)
    run = _Run.start([models[zi] for zi in layout.reps], [starts[zi] for zi in layout.reps])

    warn, abort_line = thresholds.warn_c, thresholds.abort_c - abort_margin_c
    step_results: list[StepPrediction] = []
    problems: list[ThermalProblem] = []
    group_of_zone = layout.group_of_zone
    for si, step in enumerate(plan.steps):
        channels = _step_channels(step, device, layout.zone_of_channel, group_of_zone)
        result = _run_step(run, si, step, device, channels, layout.reps, derate, warn, dt_s)
        step_results.append(result)
        problems.extend(_judge(result, thresholds, abort_line, device))

    zone_peaks, zone_traj = _per_zone(zones, layout.members, starts, run)
    return ThermalPrediction(
        ambient_c=ambient_c,
        start_source=f"{ambient_note}; {start_note}",
        thresholds=thresholds,
        abort_margin_c=abort_margin_c,
        zones=zone_peaks,
        steps=tuple(step_results),
        times_s=tuple(run.times),
        scalp_c=zone_traj,
        permille=tuple(run.permille_traj),
        problems=tuple(problems),
    )


def _checked_ambient(
    ambient_c: float | None, scalp_c: Sequence[float | None] | None
) -> tuple[float, str]:
    """The ambient to predict at (the offline default without a reading) and its note.

    Raises ValueError for any reading that is not a plausible temperature: a NaN would
    pass every comparison of the prediction.
    """
    if ambient_c is None:
        ambient_c = OFFLINE_AMBIENT_C
        note = f"ambient {OFFLINE_AMBIENT_C:g} °C assumed (no reading)"
    else:
        note = f"ambient {ambient_c:g} °C"
    readings = [ambient_c, *(v for v in (scalp_c or ()) if v is not None)]
    for value in readings:
        if not (math.isfinite(value) and _PLAUSIBLE_C[0] <= value <= _PLAUSIBLE_C[1]):
            raise ValueError(f"{value!r} °C is not a usable temperature reading")
    return ambient_c, note


def _starting_states(
    models: list[ZoneModel], scalp_c: Sequence[float | None] | None
) -> tuple[list[tuple[float, float]], str]:
    """Each zone's (board, scalp) °C at time 0, and a note on where they come from.

    A zone with a scalp reading starts there (its board inferred from it); one without
    starts at the model's idle steady state.
    """
    starts: list[tuple[float, float]] = []
    idle_zones = 0
    for zi, m in enumerate(models):
        reading = scalp_c[zi] if scalp_c is not None and zi < len(scalp_c) else None
        if reading is None:
            starts.append(m.steady_state())
            idle_zones += 1
        else:
            starts.append((m.board_for_scalp(reading), reading))
    if idle_zones == len(models):
        note = "starting from the model's idle steady state"
    elif idle_zones:
        note = "starting from the scalp readings (idle steady state where none)"
    else:
        note = "starting from the scalp readings"
    return starts, note


def _group_zones(plan: SessionPlan, starts: list[tuple[float, float]]) -> _Layout:
    """Group the zones with identical constants, start and load in every step.

    The zones of a group follow the same trajectory, so only its first zone is simulated.
    """
    device = plan.device
    zones = device.zones
    zone_of_channel = {c.id: device.zone_index.get(c.zone, -1) for c in device.channels}
    loads: list[list[tuple[Any, ...]]] = [[] for _ in zones]
    for step in plan.steps:
        per_zone: list[list[tuple[Any, ...]]] = [[] for _ in zones]
        for sp in step.setpoints:
            zi = zone_of_channel.get(sp.channel, -1)
            if zi >= 0:
                ch = device.channel(sp.channel)
                per_zone[zi].append(
                    (
                        ch.heat_board_w_per_mw_cm2,
                        ch.heat_scalp_w_per_mw_cm2,
                        sp.irradiance_mw_cm2,
                        sp.fluence_target_j_cm2,
                        ch.wavelength_nm,
                    )
                )
        for zi in range(len(zones)):
            loads[zi].append(tuple(sorted(per_zone[zi])))
    groups: dict[tuple[Any, ...], list[int]] = {}
    for zi, z in enumerate(zones):
        key = (z.thermal_constants, starts[zi], tuple(loads[zi]))
        groups.setdefault(key, []).append(zi)
    members = list(groups.values())
    return _Layout(members, [m[0] for m in members], zone_of_channel)


def _step_channels(
    step: Step, device: DeviceInfo, zone_of_channel: dict[int, int], group_of_zone: dict[int, int]
) -> list[list[_Chan]]:
    """The step's channels per zone group (only the representative zone's are simulated)."""
    is_fluence = step.kind == wire.StepKind.FLUENCE
    channel_pos = device.channel_index
    channels: list[list[_Chan]] = [[] for _ in group_of_zone]
    for sp in step.setpoints:
        gi = group_of_zone.get(zone_of_channel.get(sp.channel, -1))
        if gi is None:
            continue
        ch = device.channel(sp.channel)
        channels[gi].append(
            _Chan(
                channel_pos[sp.channel],
                ch.wavelength_nm,
                sp.irradiance_mw_cm2,
                ch.heat_board_w_per_mw_cm2,
                ch.heat_scalp_w_per_mw_cm2,
                sp.fluence_target_j_cm2 if is_fluence else 0.0,
            )
        )
    return channels


def _run_step(
    run: _Run,
    index: int,
    step: Step,
    device: DeviceInfo,
    channels: list[list[_Chan]],
    reps: list[int],
    derate: DeratePolicy,
    warn: float,
    dt_s: float,
) -> StepPrediction:
    """Run one step on the integrator in intervals of ``dt_s``, derating as the monitor would.

    A duration step runs its expected duration; a fluence step until its last target is
    reached (within the interval, by linear interpolation) or its maximum duration.
    """
    is_fluence = step.kind == wire.StepKind.FLUENCE
    limit_s = step.max_duration_s if is_fluence else step.expected_duration_s
    duty = step.duty_pct / 100.0
    ramp = step.ramp_s
    step_start = run.t
    step_peak, step_peak_at, step_peak_zone = -math.inf, step_start, reps[0] if reps else 0
    warn_at: float | None = None
    min_pm = run.permille
    elapsed = 0.0
    remaining = sum(1 for chans in channels for c in chans if c.target > 0)
    finished = is_fluence and remaining == 0
    while elapsed < limit_s - 1e-9 and not finished:
        h = min(dt_s, limit_s - elapsed)
        mid = elapsed + h / 2.0
        ramp_k = min(1.0, mid / ramp) if ramp > 0 else 1.0
        reached, last_frac = _advance(run, channels, ramp_k * duty * run.permille / 1000.0, h)
        remaining -= reached
        if is_fluence and remaining == 0:
            finished = True
            elapsed += h * last_frac
        else:
            elapsed += h
        t = step_start + elapsed
        hottest, hot_gi = run.record(t)
        if hottest > step_peak:
            step_peak, step_peak_at, step_peak_zone = hottest, t, reps[hot_gi]
        if hottest >= warn:
            if warn_at is None:
                warn_at = t
            new = derate.step_at(run.permille, run.last_derate, t)  # the monitor's own rule
            if new is not None:
                run.permille, run.last_derate = new, t
                min_pm = min(min_pm, new)
        run.permille_traj.append(run.permille)  # the factor in force from t on
    if step_peak == -math.inf:  # an empty step
        step_peak = max(run.ts) if run.ts else 0.0
    delivered, target = _step_fluence(step, device, channels)
    return StepPrediction(
        index=index,
        name=step.name,
        kind="fluence" if is_fluence else "duration",
        start_s=step_start,
        end_s=run.t,
        nominal_s=step.expected_duration_s,
        max_duration_s=step.max_duration_s,
        peak_c=step_peak,
        peak_at_s=step_peak_at,
        peak_zone=device.zones[step_peak_zone].id if device.zones else 0,
        warn_crossed_at_s=warn_at,
        min_permille=min_pm,
        reached_target=finished or not is_fluence,
        fluence_j_cm2=delivered,
        target_j_cm2=target,
    )


def _advance(run: _Run, channels: list[list[_Chan]], k: float, h: float) -> tuple[int, float]:
    """Advance every group by ``h`` seconds of the exact solution at output factor ``k``
    (ramp × duty × derate), and count each channel's dose.

    Returns how many channels reached their target in the interval and how far into it
    (as a fraction of ``h``) the last of them did.
    """
    tb, ts, models = run.tb, run.ts, run.models
    reached = 0
    last_frac = 0.0  # when, within h, the last target reached in it was reached
    for gi, chans in enumerate(channels):
        qb = qs = 0.0
        for c in chans:
            if c.done:
                continue
            avg = c.irradiance * k
            qb += c.heat_b * avg
            qs += c.heat_s * avg
            dose = avg * h / 1000.0
            if c.target > 0 and c.delivered + dose >= c.target:
                # the device switches the channel off at its target; its heat is still
                # counted for the whole interval (conservative)
                frac = (c.target - c.delivered) / dose if dose > 0 else 0.0
                last_frac = max(last_frac, frac)
                c.delivered = c.target
                c.done = True
                reached += 1
            else:
                c.delivered += dose
        m = models[gi]
        b0, bb, bs, s0, sb, ss_ = m.ss
        xb = b0 + bb * qb + bs * qs
        xs = s0 + sb * qb + ss_ * qs
        p11, p12, p21, p22 = m.phi(h)
        db, ds = tb[gi] - xb, ts[gi] - xs
        tb[gi] = xb + p11 * db + p12 * ds
        ts[gi] = xs + p21 * db + p22 * ds
    return reached, last_frac


def _step_fluence(
    step: Step, device: DeviceInfo, channels: list[list[_Chan]]
) -> tuple[dict[int, float], dict[int, float]]:
    """Per wavelength, the fluence delivered and planned in the step (most over channels)."""
    delivered: dict[int, float] = {}
    target: dict[int, float] = {}
    planned = step.channel_fluence()
    for chans in channels:
        for c in chans:
            delivered[c.wavelength_nm] = max(delivered.get(c.wavelength_nm, 0.0), c.delivered)
    for sp in step.setpoints:
        wl = device.channel(sp.channel).wavelength_nm
        target[wl] = max(target.get(wl, 0.0), planned.get(sp.channel, 0.0))
    return delivered, target


def _per_zone(
    zones: Sequence[wire.ZoneInfo],
    members: list[list[int]],
    starts: list[tuple[float, float]],
    run: _Run,
) -> tuple[tuple[ZonePeak, ...], tuple[tuple[float, ...], ...]]:
    """Expand the groups back to zones: each zone's peak and scalp trajectory."""
    zone_traj: list[tuple[float, ...]] = [()] * len(zones)
    zone_peaks: list[ZonePeak] = [None] * len(zones)  # type: ignore[list-item]
    for gi, group in enumerate(members):
        tr = tuple(run.traj[gi])
        for zi in group:
            zone_traj[zi] = tr
            z = zones[zi]
            zone_peaks[zi] = ZonePeak(z.id, z.name, starts[zi][1], run.peak[gi], run.peak_at[gi])
    return tuple(zone_peaks), tuple(zone_traj)


def _judge(
    s: StepPrediction,
    th: Thresholds,
    abort_line: float,
    device: Any,
) -> list[ThermalProblem]:
    """The acceptance rule for one predicted step (see the module docstring)."""
    out: list[ThermalProblem] = []
    where = f"phase {s.index + 1} ({s.name!r})"
    zone = device.zone_name(s.peak_zone)
    if not s.peak_c < abort_line:  # NaN included
        out.append(
            ThermalProblem(
                s.index,
                "thermal_abort",
                f"{where}: predicted scalp temperature {s.peak_c:.1f} °C in zone {zone}, "
                f"{format_duration(s.peak_at_s - s.start_s)} into the phase, at or above "
                f"{abort_line:.1f} °C (the abort threshold {th.abort_c:g} °C less a "
                f"{th.abort_c - abort_line:g} °C margin) even with derating",
                abort_line,
                s.peak_c,
                "°C",
            )
        )
    if s.kind == "duration":
        if s.warn_crossed_at_s is not None:
            out.append(
                ThermalProblem(
                    s.index,
                    "thermal_warning",
                    f"{where}: predicted to reach the warning threshold {th.warn_c:g} °C in zone "
                    f"{zone} after {format_duration(s.warn_crossed_at_s - s.start_s)} "
                    f"(peak {s.peak_c:.1f} °C); a duration phase must stay below it because "
                    "derating would under-dose it",
                    th.warn_c,
                    s.peak_c,
                    "°C",
                )
            )
        elif s.derated:
            out.append(
                ThermalProblem(
                    s.index,
                    "derated_duration_step",
                    f"{where}: would run derated to {s.min_permille / 10:g} % by an earlier "
                    "phase's derating and so deliver less than planned",
                    1000,
                    s.min_permille,
                    "permille",
                )
            )
    elif not s.reached_target:
        got = min(s.fluence_j_cm2.values(), default=0.0)
        want = max(s.target_j_cm2.values(), default=0.0)
        out.append(
            ThermalProblem(
                s.index,
                "fluence_max_duration",
                f"{where}: derated to {s.min_permille / 10:g} % it is predicted not to reach its "
                f"target within its maximum duration {format_duration(s.max_duration_s)} "
                f"({got:.2f} of {want:.2f} J/cm²)",
                s.max_duration_s,
                s.end_s - s.start_s,
                "s",
            )
        )
    return out

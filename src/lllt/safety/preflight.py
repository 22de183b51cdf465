"""Preflight: the constraint pipeline every session passes before anything is sent (layer 1).

In the manner of AndroidAPS, each constraint sees the :class:`~lllt.plan.SessionPlan` and
may only *tighten* it (a new plan via ``plan.with_steps(..., reason)``: lower irradiance)
or *refuse*; each records a :class:`Reason` with its source. Sources run in this order:

``default``      the default limits (:data:`~lllt.safety.limits.DEFAULT_LIMITS`)
``device``       the device's hard limits and capabilities from HELLO_INFO
``limits-file``  a user's or clinician's limits file (may only tighten the defaults)
``schedule``     the protocol's own schedule (minimum interval, sessions per week)
``history``      the session log: spacing, sessions this week, rolling 24 h / 7 day fluence
``thermal``      the thermal prediction (:mod:`lllt.safety.thermal`)

The pipeline does not stop at the first refusal: a person fixing a protocol wants every
reason at once. :func:`check` returns a :class:`PreflightResult`;
``result.raise_if_refused()`` raises :class:`~lllt.errors.PreflightRefused` carrying every
reason. :func:`analyze` gives the same analysis as a JSON-friendly dict for
``lllt protocol check`` and ``lllt run``. Nothing here reads a clock: ``now`` (epoch
seconds) is an argument.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any

from lllt import wire
from lllt.dose import floor_to_step, most_dosed
from lllt.errors import PlanError, PreflightRefused
from lllt.safety.history import History
from lllt.safety.limits import (
    DAY,
    DEFAULT_DERATE,
    DEFAULT_LIMITS,
    LASER_LIMIT_NM,
    SPEC_BY_ATTR,
    WEEK,
    DeratePolicy,
    Limits,
    format_duration,
    laser_emitter_limit_mw,
    temperature_thresholds,
)
from lllt.safety.thermal import ThermalPrediction, predict

if TYPE_CHECKING:
    from lllt.info import DeviceInfo
    from lllt.plan import SessionPlan, Setpoint, Step

SOURCES = ("default", "device", "limits-file", "schedule", "history", "thermal")
ACTIONS = ("refuse", "tighten", "note")

#: Fluence comparisons allow this much for float rounding (J/cm²; the wire unit is µJ/cm²).
_FLUENCE_EPS = 1e-6


@dataclass(frozen=True, slots=True)
class Reason:
    """One constraint's finding: what it did to the plan and why."""

    source: str  # one of SOURCES
    constraint: str  # short id, e.g. "irradiance_cap", "session_spacing"
    message: str  # one sentence a person can act on
    limit: float | None = None
    observed: float | None = None
    action: str = "refuse"  # one of ACTIONS
    unit: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON form: every field."""
        return {
            "source": self.source,
            "constraint": self.constraint,
            "action": self.action,
            "message": self.message,
            "limit": self.limit,
            "observed": self.observed,
            "unit": self.unit,
        }

    def __str__(self) -> str:
        return f"[{self.source}] {self.message}"


@dataclass(frozen=True, slots=True)
class ScheduleRules:
    """What the protocol file says about scheduling and research use.

    Read from the protocol with :meth:`from_protocol`; a protocol can only make these
    stricter than the limits (its interval applies when longer, its weekly count when
    smaller), never looser.
    """

    protocol_id: str = ""
    min_interval_s: float | None = None
    max_sessions_per_week: int | None = None
    research: bool = False

    @classmethod
    def from_protocol(cls, protocol: Any) -> ScheduleRules:
        """The rules ``protocol`` states (its schedule's minimum interval in seconds and sessions
        per week, its research flag); what it does not state is None (False for research)."""
        schedule = getattr(protocol, "schedule", None)
        interval = _seconds(_first_attr(schedule, "min_interval_s", "min_interval"))
        per_week = _first_attr(schedule, "max_sessions_per_week")
        research = _first_attr(protocol, "research", "research_only")
        return cls(
            protocol_id=str(getattr(protocol, "id", "") or ""),
            min_interval_s=interval,
            max_sessions_per_week=int(per_week) if per_week is not None else None,
            research=bool(research),
        )


def _first_attr(obj: Any, *names: str) -> Any:
    if obj is None:
        return None
    for name in names:
        value = getattr(obj, name, None)
        if value is not None:
            return value
    return None


def _seconds(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, timedelta):
        return value.total_seconds()
    if hasattr(value, "to") and hasattr(value, "magnitude"):  # a pint quantity
        return float(value.to("s").magnitude)
    return float(value)


@dataclass(frozen=True)
class PreflightResult:
    """What preflight decided: the plan to run (possibly tightened), whether it may run, every
    reason, the thermal prediction, and when refused for timing, the time the next session
    is allowed (``next_allowed_at``, epoch seconds)."""

    plan: SessionPlan  # possibly tightened
    accepted: bool
    reasons: tuple[Reason, ...]
    prediction: ThermalPrediction | None
    next_allowed_at: float | None  # epoch seconds; set when refused for timing reasons
    limits: Limits = DEFAULT_LIMITS
    now: float = 0.0
    tz: tzinfo | None = field(default=None, compare=False)

    @property
    def refusals(self) -> tuple[Reason, ...]:
        """The reasons that refuse the session."""
        return tuple(r for r in self.reasons if r.action == "refuse")

    @property
    def tightenings(self) -> tuple[Reason, ...]:
        """The reasons that lowered the plan."""
        return tuple(r for r in self.reasons if r.action == "tighten")

    def raise_if_refused(self) -> SessionPlan:
        """The plan to run, or PreflightRefused carrying every reason."""
        if self.accepted:
            return self.plan
        refusals = self.refusals
        lines = "\n".join(f"  {r}" for r in refusals)
        count = "1 reason" if len(refusals) == 1 else f"{len(refusals)} reasons"
        message = f"preflight refused the session ({count}):\n{lines}"
        advice = "Nothing was sent to the device."
        if self.next_allowed_at is not None:
            advice += f" The next session is allowed {self.when(self.next_allowed_at)}."
        raise PreflightRefused(
            message,
            advice=advice,
            reasons=list(self.reasons),
            next_allowed_at=self.next_allowed_at,
        )

    def when(self, t: float) -> str:
        """Epoch seconds ``t`` for a person, in the result's time zone (local by default):
        ``"at 2025-11-26 01:58 CET (in 11 h 58 min)"``."""
        return format_when(t, self.now, self.tz)

    def to_dict(self) -> dict[str, Any]:
        """JSON form for ``lllt protocol check`` and ``lllt run``: acceptance, reasons, plan
        summary, limits, the next allowed time (ISO 8601 and in words) and the thermal
        prediction."""
        out: dict[str, Any] = {
            "accepted": self.accepted,
            "reasons": [r.to_dict() for r in self.reasons],
            "plan": self.plan.summary(),
            "limits": self.limits.to_dict(),
            "next_allowed_at": None,
            "next_allowed": None,
        }
        if self.next_allowed_at is not None:
            out["next_allowed_at"] = _iso(self.next_allowed_at, self.tz)
            out["next_allowed"] = self.when(self.next_allowed_at)
        out["thermal"] = None if self.prediction is None else self.prediction.to_dict()
        return out


# --- time formatting ---------------------------------------------------------------------


def format_when(t: float, now: float, tz: tzinfo | None = None) -> str:
    """ "at 2025-11-26 01:58 CET (in 11 h 58 min)"; rounded up to the minute."""
    shown = math.ceil(t / 60.0) * 60.0  # never name a minute at which it is still refused
    local = datetime.fromtimestamp(shown, tz) if tz is not None else _local(shown)
    wait = shown - now
    relative = "now" if wait <= 0 else f"in {format_duration(wait)}"
    return f"at {local.strftime('%Y-%m-%d %H:%M %Z').strip()} ({relative})"


def _local(t: float) -> datetime:
    return datetime.fromtimestamp(t).astimezone()


def _iso(t: float, tz: tzinfo | None) -> str:
    dt = datetime.fromtimestamp(t, tz) if tz is not None else _local(t)
    return dt.isoformat(timespec="seconds")


# --- the pipeline ----------------------------------------------------------------------------


@dataclass
class _Ctx:
    device: DeviceInfo
    limits: Limits
    history: History | None
    now: float
    rules: ScheduleRules
    research_ok: bool
    tz: tzinfo | None
    reasons: list[Reason] = field(default_factory=list)
    next_allowed: list[float] = field(default_factory=list)

    def add(self, source: str, constraint: str, message: str, **kw: Any) -> None:
        self.reasons.append(Reason(source, constraint, message, **kw))


def check(
    plan: SessionPlan,
    device: DeviceInfo | None,
    limits: Limits | None,
    history: History | None,
    now: float,
    *,
    ambient_c: float | None = None,
    scalp_c: Sequence[float | None] | None = None,
    research_ok: bool = False,
    rules: ScheduleRules | None = None,
    derate: DeratePolicy = DEFAULT_DERATE,
    tz: tzinfo | None = None,
) -> PreflightResult:
    """Run every constraint over ``plan``; the result says whether it may run, and why.

    ``device`` defaults to the plan's device (a connected cap's DeviceInfo, or a profile
    offline); ``limits`` to the defaults; ``history`` None skips the history checks (and
    says so). ``ambient_c`` and ``scalp_c`` come from a STATUS sample when a device is
    connected; without them the thermal prediction assumes 25 °C ambient and the model's
    idle steady state. ``rules`` defaults to what the plan's protocol says.
    """
    if device is None:
        device = plan.device
    elif device.hello.channels != plan.device.hello.channels:
        raise PlanError(
            f"the plan was compiled for {plan.device.model} ({plan.device.serial}) but the "
            f"device is {device.model} ({device.serial}) with other channels"
        )
    if limits is None:
        limits = DEFAULT_LIMITS
    if rules is None:
        rules = ScheduleRules.from_protocol(plan.protocol)
    ctx = _Ctx(device, limits, history, now, rules, research_ok, tz)

    prediction = None
    if _known_channels(ctx, plan):  # every later check looks channels up
        for stage in _STAGES:
            plan = stage(ctx, plan)
        try:
            prediction = _thermal(ctx, plan, ambient_c, scalp_c, derate)
        except ValueError as err:  # unphysical constants, or readings that are not temperatures
            ctx.add(
                "thermal",
                "thermal_model",
                f"no thermal prediction is possible, so the session is refused: {err}",
            )

    accepted = not any(r.action == "refuse" for r in ctx.reasons)
    order = {s: i for i, s in enumerate(SOURCES)}
    reasons = tuple(sorted(ctx.reasons, key=lambda r: order.get(r.source, len(SOURCES))))
    next_allowed = None if accepted or not ctx.next_allowed else max(ctx.next_allowed)
    return PreflightResult(
        plan=plan,
        accepted=accepted,
        reasons=reasons,
        prediction=prediction,
        next_allowed_at=next_allowed,
        limits=limits,
        now=now,
        tz=tz,
    )


def analyze(
    plan: SessionPlan,
    device: DeviceInfo | None,
    limits: Limits | None,
    history: History | None,
    now: float,
    **kwargs: Any,
) -> dict[str, Any]:
    """:func:`check` as a JSON-friendly dict, with what the analysis assumed and saw."""
    result = check(plan, device, limits, history, now, **kwargs)
    out = result.to_dict()
    dev = device or plan.device
    out["device"] = {"model": dev.model, "serial": dev.serial, "simulated": dev.simulated}
    out["assumptions"] = []
    if kwargs.get("ambient_c") is None:
        out["assumptions"].append(
            "no device reading: ambient 25 °C and the model's idle steady state are assumed "
            "for the thermal prediction"
        )
    if history is None:
        out["assumptions"].append(
            "no session history: spacing, sessions per week and rolling fluence not checked"
        )
    else:
        out["history"] = history_summary(history, result.limits, now, dev, result.tz)
    return out


def history_summary(
    history: History,
    limits: Limits,
    now: float,
    device: DeviceInfo,
    tz: tzinfo | None = None,
    rules: ScheduleRules | None = None,
) -> dict[str, Any]:
    """Totals the history checks use: fluence per wavelength in 24 h and 7 days, spacing."""
    week = history.sessions_since(now - WEEK)
    wavelengths = sorted(set(device.wavelengths) | {wl for s in week for wl in s.fluence_j_cm2})
    nxt = next_session_allowed_at(history, limits, now, rules)
    return {
        "sessions_7d": len(week),
        "last_session_end": None
        if history.last_session_end() is None
        else _iso(history.last_session_end() or 0.0, tz),
        "fluence_24h_j_cm2": {str(w): history.fluence_since(now - DAY, w) for w in wavelengths},
        "fluence_7d_j_cm2": {str(w): history.fluence_since(now - WEEK, w) for w in wavelengths},
        "next_session_allowed": format_when(nxt, now, tz) if nxt > now else "now",
    }


@dataclass(frozen=True)
class NextSession:
    """When the history next allows a session, and which rule says so.

    ``at`` is epoch seconds (``now`` when a session is allowed now). ``bound_by`` names the
    rule that holds it back: ``"interval"`` (the minimum interval after the last session),
    ``"per_week"`` (the weekly count), or ``""`` when nothing does.
    """

    at: float
    bound_by: str
    interval_s: float  # the applicable minimum interval (the longest of its sources)
    last_end: float | None  # epoch s: when the last counted session ended
    per_week: int  # the applicable weekly count (the smallest of its sources)
    sessions_7d: int  # sessions counted in the 7 days before ``now``


def next_session(
    history: History, limits: Limits, now: float, rules: ScheduleRules | None = None
) -> NextSession:
    """When spacing and the weekly count next allow a session, and which one decides.

    Fluence caps are not included: they depend on the next session's plan. The rules are
    preflight's own, so what this says is what ``check`` would do.
    """
    rules = rules or ScheduleRules()
    interval, _ = _effective_interval(history, limits, rules)
    per_week, _ = _effective_per_week(limits, rules)
    last_end = history.last_session_end()
    ends = sorted(s.end for s in history.sessions_since(now - WEEK))
    after_interval = now if last_end is None else max(now, last_end + interval)
    after_week = ends[len(ends) - per_week] + WEEK if len(ends) >= per_week else now
    at = max(now, after_interval, after_week)
    if at <= now:
        bound_by = ""
    elif after_interval >= after_week:
        bound_by = "interval"
    else:
        bound_by = "per_week"
    return NextSession(at, bound_by, interval, last_end, per_week, len(ends))


def next_session_allowed_at(
    history: History, limits: Limits, now: float, rules: ScheduleRules | None = None
) -> float:
    """When spacing and the weekly count next allow a session (``now`` if already); see
    :func:`next_session` for which rule decides."""
    return next_session(history, limits, now, rules).at


# --- stage: defaults and limits file (the same checks, two sources) ------------------------


#: the band of wavelengths with clinical evidence for scalp treatment (red light from 630
#: to 680 nm: the LED helmets at 630-660 nm and the laser caps and combs at 650-678 nm);
#: a session with any channel outside it is research, whatever its file says
EVIDENCED_BAND_NM = (630, 680)


def _outside_band(plan: SessionPlan) -> list[int]:
    lo, hi = EVIDENCED_BAND_NM
    return sorted(
        {
            sp.wavelength_nm
            for step in plan.steps
            for sp in step.setpoints
            if sp.irradiance_mw_cm2 > 0 and not lo <= sp.wavelength_nm <= hi
        }
    )


def _defaults(ctx: _Ctx, plan: SessionPlan) -> SessionPlan:
    outside = _outside_band(plan)
    if outside and not ctx.rules.research:
        lo, hi = EVIDENCED_BAND_NM
        nm = ", ".join(f"{wl} nm" for wl in outside)
        if ctx.research_ok:
            ctx.add(
                "default",
                "research_wavelength",
                f"{nm} lies outside the clinically evidenced band ({lo}-{hi} nm); accepted "
                "as research because the research flag was given",
                action="note",
            )
        else:
            ctx.add(
                "default",
                "research_wavelength",
                f"{nm} lies outside the clinically evidenced band ({lo}-{hi} nm), so this is "
                "research use even though the file does not say so; run it with --research "
                "(research_ok=True) only if you mean to",
            )
    if ctx.rules.research:
        if ctx.research_ok:
            ctx.add(
                "default",
                "research_flag",
                "research-only protocol accepted because the research flag was given",
                action="note",
            )
        else:
            name = ctx.rules.protocol_id or "this protocol"
            ctx.add(
                "default",
                "research_flag",
                f"{name} is a research protocol (research use needs an explicit flag); run "
                "it with --research (research_ok=True) only if you mean to",
            )
    return _limit_checks(ctx, plan, DEFAULT_LIMITS, "default", None)


def _limits_file(ctx: _Ctx, plan: SessionPlan) -> SessionPlan:
    if not ctx.limits.from_file:
        return plan
    return _limit_checks(ctx, plan, ctx.limits, "limits-file", ctx.limits.from_file)


def _limit_checks(
    ctx: _Ctx, plan: SessionPlan, lim: Limits, source: str, keys: frozenset[str] | None
) -> SessionPlan:
    def wanted(attr: str) -> bool:
        return keys is None or attr in keys

    origin = _origin(source, ctx.limits)
    if wanted("min_pulse_hz") or wanted("max_pulse_hz"):
        _pulse_range(ctx, plan, lim.min_pulse_hz, lim.max_pulse_hz, source, origin)
    if wanted("max_irradiance_mw_cm2"):
        cap = lim.max_irradiance_mw_cm2
        plan = _clamp(
            ctx,
            plan,
            source,
            "irradiance_cap",
            lambda sp: cap,
            lambda sp, old, new: (
                f"above the {cap:g} mW/cm² irradiance cap ({origin('max_irradiance_mw_cm2')})"
            ),
            unit="mW/cm²",
        )
    if wanted("max_laser_emitter_mw"):
        plan = _laser_cap(ctx, plan, lim.max_laser_emitter_mw, source, origin)
    if wanted("max_session_s"):
        total = plan.max_duration_s
        if total > lim.max_session_s + 1e-9:
            ctx.add(
                source,
                "session_duration",
                f"the session may run {format_duration(total)} (fluence-target maxima "
                f"included), longer than the {format_duration(lim.max_session_s)} maximum "
                f"session ({origin('max_session_s')})",
                limit=lim.max_session_s,
                observed=total,
                unit="s",
            )
    if wanted("max_fluence_session_j_cm2"):
        cap = lim.max_fluence_session_j_cm2
        for wl, f in sorted(plan.fluence_by_wavelength().items()):
            if f > cap + _FLUENCE_EPS:
                ctx.add(
                    source,
                    "session_fluence",
                    f"{wl} nm: the session delivers {f:.2f} J/cm² (most-dosed channel), above "
                    f"the {cap:g} J/cm² per-session limit ({origin('max_fluence_session_j_cm2')})",
                    limit=cap,
                    observed=f,
                    unit="J/cm²",
                )
    if wanted("max_total_fluence_session_j_cm2"):
        _total_fluence(ctx, plan, lim, source, origin)
    return plan


def _total_fluence(
    ctx: _Ctx, plan: SessionPlan, lim: Limits, source: str, origin: Callable[[str], str]
) -> None:
    """The fluence a zone receives over all wavelengths together, against its own limit.

    The per-wavelength limit alone would let a three-colour helmet give three times the
    top of the 1-10 J/cm² range in one session; this limit bounds the sum per zone.
    """
    device = ctx.device
    cap = lim.max_total_fluence_session_j_cm2
    per = lim.max_fluence_session_j_cm2
    fluence = plan.fluence_by_channel()
    zone_of = {ch_id: device.channel(ch_id).zone for ch_id in fluence}
    by_zone = {
        zone: most_dosed(
            {ch: f for ch, f in fluence.items() if zone_of[ch] == zone}, device.channel_wavelength
        )
        for zone in dict.fromkeys(zone_of.values())
    }
    worst = max(by_zone.items(), key=lambda kv: sum(kv[1].values()), default=None)
    if worst is None:
        return
    zone, waves = worst
    total = sum(waves.values())
    if total <= cap + _FLUENCE_EPS:
        return
    parts = " + ".join(f"{wl} nm {f:.2f}" for wl, f in sorted(waves.items()))
    over = [wl for wl, f in sorted(waves.items()) if f > per + _FLUENCE_EPS]
    each = (
        f"({', '.join(f'{wl} nm' for wl in over)} also above the {per:g} J/cm² "
        "per-wavelength limit)"
        if over
        else f"(each wavelength is within the {per:g} J/cm² per-wavelength limit)"
    )
    ctx.add(
        source,
        "session_total_fluence",
        f"zone {device.zone_name(zone)}: the session delivers {parts} = {total:.2f} J/cm² "
        f"over all wavelengths, above the {cap:g} J/cm² total per-session limit "
        f"({origin('max_total_fluence_session_j_cm2')}) {each}",
        limit=cap,
        observed=total,
        unit="J/cm²",
    )


def _origin(source: str, limits: Limits) -> Callable[[str], str]:
    """Describes where a limit of this stage comes from, for messages."""

    def describe(attr: str) -> str:
        if source == "limits-file":
            return f"limits file {limits.path}"
        return f"default: {SPEC_BY_ATTR[attr].source}"

    return describe


def _pulse_range(
    ctx: _Ctx,
    plan: SessionPlan,
    lo: float,
    hi: float,
    source: str,
    origin: Callable[[str], str],
) -> None:
    for i, step in enumerate(plan.steps):
        where = _where(i, step)
        if step.pulse_hz == 0:
            if abs(step.duty_pct - 100.0) > 1e-9:
                ctx.add(
                    source,
                    "pulse_range",
                    f"{where}: continuous wave must have 100 % duty, found {step.duty_pct:g} %",
                    limit=100.0,
                    observed=step.duty_pct,
                    unit="%",
                )
            continue
        if not lo - 1e-9 <= step.pulse_hz <= hi + 1e-9:
            ctx.add(
                source,
                "pulse_range",
                f"{where}: pulse frequency {step.pulse_hz:g} Hz is outside {lo:g}-{hi:g} Hz "
                f"({origin('max_pulse_hz')})",
                limit=hi if step.pulse_hz > hi else lo,
                observed=step.pulse_hz,
                unit="Hz",
            )
        if not 0 < step.duty_pct <= 100:
            ctx.add(
                source,
                "pulse_range",
                f"{where}: duty {step.duty_pct:g} % is outside 0-100 %",
                limit=100.0,
                observed=step.duty_pct,
                unit="%",
            )


def _laser_cap(
    ctx: _Ctx, plan: SessionPlan, cap_mw: float, source: str, origin: Callable[[str], str]
) -> SessionPlan:
    """Each laser emitter within the IEC 60825-1 Class 3R limit of its wavelength.

    LEDs are not lasers (IEC 62471 applies to them) and get no per-emitter limit here.
    """
    device = ctx.device
    lo, hi = LASER_LIMIT_NM
    refused: set[int] = set()
    for step in plan.steps:
        for sp in step.setpoints:
            ch = device.channel(sp.channel)
            if ch.kind != "laser" or sp.irradiance_mw_cm2 <= 0 or ch.id in refused:
                continue
            if laser_emitter_limit_mw(ch.wavelength_nm, cap_mw) is None:
                refused.add(ch.id)
                ctx.add(
                    source,
                    "laser_emitter_power",
                    f"channel {ch.id} is a laser at {ch.wavelength_nm} nm, outside the "
                    f"{lo:g}-{hi:g} nm for which lllt knows the IEC 60825-1 accessible "
                    "emission limit, so the session is refused",
                    observed=float(ch.wavelength_nm),
                    unit="nm",
                )

    def limit(sp: Setpoint) -> float:
        ch = device.channel(sp.channel)
        if ch.kind != "laser" or ch.emitter_max_mw <= 0:
            return math.inf
        cap = laser_emitter_limit_mw(ch.wavelength_nm, cap_mw)
        if cap is None:
            return math.inf  # refused above
        # emitter power scales with irradiance: full calibrated output = emitter_max_mw
        return cap / ch.emitter_max_mw * ch.max_irradiance_mw_cm2

    def why(sp: Setpoint, old: float, new: float) -> str:
        ch = device.channel(sp.channel)
        power = old / ch.max_irradiance_mw_cm2 * ch.emitter_max_mw
        cap = laser_emitter_limit_mw(ch.wavelength_nm, cap_mw) or 0.0
        if ch.wavelength_nm <= 700:
            rule = f"the {cap:g} mW limit for lasers at 400-700 nm"
        else:
            rule = (
                f"the {cap:.2f} mW limit for lasers at {ch.wavelength_nm} nm "
                f"({cap_mw:g} mW x 0.39 x C4, C4 = 10^(0.002 x ({ch.wavelength_nm} - 700)))"
            )
        return (
            f"each {ch.wavelength_nm} nm laser emitter would emit {power:.2f} mW, above "
            f"{rule}, IEC 60825-1 Class 3R ({origin('max_laser_emitter_mw')})"
        )

    return _clamp(ctx, plan, source, "laser_emitter_power", limit, why, unit="mW/cm²")


def _clamp(
    ctx: _Ctx,
    plan: SessionPlan,
    source: str,
    constraint: str,
    limit_of: Callable[[Setpoint], float],
    why: Callable[[Setpoint, float, float], str],
    *,
    unit: str,
) -> SessionPlan:
    """Lower every setpoint above its limit; one reason per phase and (old, new) value."""
    new_steps: list[Step] = []
    changed_any = False
    for i, step in enumerate(plan.steps):
        groups: dict[tuple[float, float], list[Setpoint]] = {}
        sps: list[Setpoint] = []
        for sp in step.setpoints:
            lim = limit_of(sp)
            if sp.irradiance_mw_cm2 > lim + 1e-9:
                new = floor_to_step(lim)
                groups.setdefault((sp.irradiance_mw_cm2, new), []).append(sp)
                sps.append(replace(sp, irradiance_mw_cm2=new))
            else:
                sps.append(sp)
        if not groups:
            new_steps.append(step)
            continue
        changed_any = True
        new_step = step.with_setpoints(tuple(sps))
        for (old, new), members in groups.items():
            wls = sorted({m.wavelength_nm for m in members})
            chans = ", ".join(str(m.channel) for m in members)
            message = (
                f"{_where(i, step)}: {'/'.join(map(str, wls))} nm channel"
                f"{'s' if len(members) > 1 else ''} {chans} lowered from {old:g} to {new:g} "
                f"mW/cm²: {why(members[0], old, new)}"
            )
            message += _dose_effect(ctx.device, step, new_step)
            ctx.add(
                source, constraint, message, limit=new, observed=old, unit=unit, action="tighten"
            )
        if step.kind == wire.StepKind.FLUENCE and new_step.expected_duration_s > (
            step.max_duration_s + 1e-9
        ):
            ctx.add(
                source,
                constraint,
                f"{_where(i, step)}: at the lowered irradiance the phase needs "
                f"{format_duration(new_step.expected_duration_s)} to reach its target, longer "
                f"than its maximum duration {format_duration(step.max_duration_s)}",
                limit=step.max_duration_s,
                observed=new_step.expected_duration_s,
                unit="s",
            )
        new_steps.append(new_step)
    if not changed_any:
        return plan
    return plan.with_steps(tuple(new_steps), f"{source}: {constraint}")


def _dose_effect(device: DeviceInfo, old: Step, new: Step) -> str:
    if old.kind == wire.StepKind.FLUENCE:
        return (
            f"; the fluence target is kept, so the phase runs about "
            f"{format_duration(new.expected_duration_s)} instead of "
            f"{format_duration(old.expected_duration_s)}"
        )
    before = most_dosed(old.channel_fluence(), device.channel_wavelength)
    after = most_dosed(new.channel_fluence(), device.channel_wavelength)
    changes = [
        f"{wl} nm {after.get(wl, 0.0):.2f} J/cm² instead of {f:.2f}"
        for wl, f in sorted(before.items())
        if abs(after.get(wl, 0.0) - f) > _FLUENCE_EPS
    ]
    if not changes:
        return ""
    return "; this duration phase now delivers " + ", ".join(changes)


def _where(index: int, step: Step) -> str:
    return f"phase {index + 1} ({step.name!r})"


# --- stage: device ------------------------------------------------------------------------


def _known_channels(ctx: _Ctx, plan: SessionPlan) -> bool:
    """Refuse setpoints on channels the device lacks; False stops the pipeline."""
    ok = True
    for i, step in enumerate(plan.steps):
        for sp in step.setpoints:
            if sp.channel not in ctx.device.channel_index:
                ok = False
                ctx.add(
                    "device",
                    "unknown_channel",
                    f"{_where(i, step)}: the device has no channel {sp.channel}",
                    observed=sp.channel,
                )
    return ok


def _device(ctx: _Ctx, plan: SessionPlan) -> SessionPlan:
    device = ctx.device
    lim = device.limits
    caps = device.hello.capabilities
    for i, step in enumerate(plan.steps):
        where = _where(i, step)
        if step.kind == wire.StepKind.FLUENCE and not caps & wire.Capability.FLUENCE_TARGET:
            ctx.add(
                "device",
                "capability",
                f"{where}: the device cannot end a phase on a fluence target",
            )
        if step.pulse_hz > 0 and not caps & wire.Capability.PULSE:
            ctx.add("device", "capability", f"{where}: the device cannot pulse its output")

    def cap_of(sp: Setpoint) -> float:
        return min(device.channel(sp.channel).max_irradiance_mw_cm2, lim.max_irradiance_mw_cm2)

    plan = _clamp(
        ctx,
        plan,
        "device",
        "device_irradiance",
        cap_of,
        lambda sp, old, new: f"above the device's calibrated maximum {new:g} mW/cm²",
        unit="mW/cm²",
    )
    _pulse_range(
        ctx,
        plan,
        lim.min_pulse_hz,
        lim.max_pulse_hz,
        "device",
        lambda attr: "the device's range",
    )
    if plan.max_duration_s > lim.max_session_s + 1e-9:
        ctx.add(
            "device",
            "device_session_duration",
            f"the session may run {format_duration(plan.max_duration_s)}, longer than the "
            f"device's maximum session {format_duration(lim.max_session_s)}",
            limit=lim.max_session_s,
            observed=plan.max_duration_s,
            unit="s",
        )
    for ch, f in sorted(plan.fluence_by_channel().items()):
        if f > lim.max_fluence_j_cm2 + _FLUENCE_EPS:
            ctx.add(
                "device",
                "device_fluence",
                f"channel {ch}: planned {f:.2f} J/cm², above the device's maximum "
                f"{lim.max_fluence_j_cm2:g} J/cm² per channel per session",
                limit=lim.max_fluence_j_cm2,
                observed=f,
                unit="J/cm²",
            )
    return plan


# --- stage: schedule ------------------------------------------------------------------------


def _schedule(ctx: _Ctx, plan: SessionPlan) -> SessionPlan:
    rules, lim = ctx.rules, ctx.limits
    if rules.min_interval_s is not None:
        mine = format_duration(rules.min_interval_s)
        floor = format_duration(lim.min_interval_s)
        if rules.min_interval_s > lim.min_interval_s:
            text = f"the protocol's minimum interval {mine} applies (longer than {floor})"
        else:
            text = (
                f"the protocol's minimum interval {mine} is not longer than the {floor} limit "
                f"({lim.source_of('min_interval_s')}), which applies"
            )
        ctx.add(
            "schedule",
            "min_interval",
            text,
            limit=max(rules.min_interval_s, lim.min_interval_s),
            observed=rules.min_interval_s,
            unit="s",
            action="note",
        )
    if rules.max_sessions_per_week is not None:
        n = rules.max_sessions_per_week
        if n < lim.max_sessions_per_week:
            text = f"the protocol allows at most {n} sessions in any 7 days"
        else:
            text = (
                f"the protocol's {n} sessions per week are not fewer than the "
                f"{lim.max_sessions_per_week} limit ({lim.source_of('max_sessions_per_week')}), "
                "which applies"
            )
        ctx.add(
            "schedule",
            "sessions_per_week",
            text,
            limit=min(n, lim.max_sessions_per_week),
            observed=n,
            unit="sessions",
            action="note",
        )
    return plan


def _effective_interval(
    history: History, limits: Limits, rules: ScheduleRules
) -> tuple[float, str]:
    """The longest of the applicable minimum intervals, and where it comes from."""
    candidates = [(limits.min_interval_s, _limit_origin(limits, "min_interval_s"))]
    if rules.min_interval_s is not None:
        candidates.append((rules.min_interval_s, "the protocol's schedule"))
    previous = history.last_min_interval_s()
    if previous is not None:
        candidates.append((previous, "the previous session's protocol"))
    return max(candidates, key=lambda c: c[0])


def _effective_per_week(limits: Limits, rules: ScheduleRules) -> tuple[int, str]:
    candidates = [(limits.max_sessions_per_week, _limit_origin(limits, "max_sessions_per_week"))]
    if rules.max_sessions_per_week is not None:
        candidates.append((rules.max_sessions_per_week, "the protocol's schedule"))
    return min(candidates, key=lambda c: c[0])


def _limit_origin(limits: Limits, attr: str) -> str:
    if attr in limits.from_file:
        return f"limits file {limits.path}"
    spec = SPEC_BY_ATTR[attr]
    return f"default: {spec.source}"


# --- stage: history ------------------------------------------------------------------------


def _history(ctx: _Ctx, plan: SessionPlan) -> SessionPlan:
    history = ctx.history
    if history is None:
        ctx.add(
            "history",
            "no_history",
            "no session history given: spacing, sessions per week and rolling 24 h / 7 day "
            "fluence were not checked",
            action="note",
        )
        return plan
    _check_spacing(ctx, history)
    _check_sessions_per_week(ctx, history)
    _check_rolling_fluence(ctx, history, plan)
    return plan


def _check_spacing(ctx: _Ctx, history: History) -> None:
    """Spacing: from the end of the last session to this start."""
    lim, now, rules = ctx.limits, ctx.now, ctx.rules
    interval, why = _effective_interval(history, lim, rules)
    last_end = history.last_session_end()
    if last_end is not None and now < last_end + interval:
        allowed = last_end + interval
        ago = now - last_end
        # a log written under a faster clock (a simulator at speed=max) can hold an end
        # later than now: say so rather than "0 s ago" next to a wait longer than the interval
        ended = (
            f"ended {format_duration(ago)} ago"
            if ago >= 0
            else f"is logged as ending {format_duration(-ago)} from now"
        )
        ctx.next_allowed.append(allowed)
        ctx.add(
            "history",
            "session_spacing",
            f"the minimum interval between sessions is {format_duration(interval)} ({why}); "
            f"the last session {ended}, so the next session is allowed "
            f"{format_when(allowed, now, ctx.tz)}",
            limit=interval,
            observed=max(0.0, ago),
            unit="s",
        )


def _check_sessions_per_week(ctx: _Ctx, history: History) -> None:
    """Sessions in the rolling 7 days."""
    lim, now, rules = ctx.limits, ctx.now, ctx.rules
    per_week, why = _effective_per_week(lim, rules)
    ends = sorted(s.end for s in history.sessions_since(now - WEEK))
    if len(ends) >= per_week:
        allowed = ends[len(ends) - per_week] + WEEK
        ctx.next_allowed.append(allowed)
        ctx.add(
            "history",
            "sessions_per_week",
            f"{len(ends)} sessions in the last 7 days; at most {per_week} are allowed ({why}); "
            f"the next session is allowed {format_when(allowed, now, ctx.tz)}",
            limit=per_week,
            observed=len(ends),
            unit="sessions",
        )


def _check_rolling_fluence(ctx: _Ctx, history: History, plan: SessionPlan) -> None:
    """Rolling 24 h and 7 day fluence per wavelength, past plus planned."""
    lim, now = ctx.limits, ctx.now
    planned = plan.fluence_by_wavelength()
    for window, cap, attr, label in (
        (DAY, lim.max_fluence_24h_j_cm2, "max_fluence_24h_j_cm2", "24 h"),
        (WEEK, lim.max_fluence_7d_j_cm2, "max_fluence_7d_j_cm2", "7 days"),
    ):
        for wl, f in sorted(planned.items()):
            past = history.fluence_since(now - window, wl)
            if past + f <= cap + _FLUENCE_EPS:
                continue
            origin = _limit_origin(lim, attr)
            text = (
                f"{wl} nm: {past:.2f} J/cm² delivered in the last {label} plus {f:.2f} J/cm² "
                f"planned exceeds the {cap:g} J/cm² per {label} limit ({origin})"
            )
            when = _fluence_allowed_at(history, now, window, wl, f, cap)
            if when is None:
                text += "; this session alone is above it"
            else:
                ctx.next_allowed.append(when)
                text += f"; this session is allowed {format_when(when, now, ctx.tz)}"
            ctx.add(
                "history",
                f"fluence_{'24h' if window == DAY else '7d'}",
                text,
                limit=cap,
                observed=past + f,
                unit="J/cm²",
            )


def _fluence_allowed_at(
    history: History, now: float, window: float, wl: int, planned: float, cap: float
) -> float | None:
    """Earliest time the rolling window has room for ``planned``; None if it never will."""
    if planned > cap + _FLUENCE_EPS:
        return None
    # the window total only drops when a session leaves it, i.e. at some session end + window
    for s in history.sessions_since(now - window):
        t = s.end + window  # the moment it leaves the window
        if t > now and history.fluence_since(t - window, wl) + planned <= cap + _FLUENCE_EPS:
            return t
    return None


# --- stage: thermal ------------------------------------------------------------------------


def _thermal(
    ctx: _Ctx,
    plan: SessionPlan,
    ambient_c: float | None,
    scalp_c: Sequence[float | None] | None,
    derate: DeratePolicy,
) -> ThermalPrediction | None:
    if not plan.steps:
        return None
    th = temperature_thresholds(ctx.limits, ctx.device.limits)
    pred = predict(plan, ambient_c=ambient_c, scalp_c=scalp_c, thresholds=th, derate=derate)
    for p in pred.problems:
        ctx.add(
            "thermal",
            p.constraint,
            p.message,
            limit=p.limit,
            observed=p.observed,
            unit=p.unit,
        )
    if pred.ok:
        peak = pred.peak
        if peak.peak_c < th.warn_c:
            bound, limit = f"below the warning threshold {th.warn_c:g} °C", th.warn_c
        else:  # only derated fluence phases may get here (the acceptance rule)
            limit = th.abort_c - pred.abort_margin_c
            bound = (
                f"with the monitor derating fluence phases above {th.warn_c:g} °C; below "
                f"{limit:g} °C (abort {th.abort_c:g} °C less a {pred.abort_margin_c:g} °C margin)"
            )
        ctx.add(
            "thermal",
            "thermal_prediction",
            f"predicted peak scalp temperature {peak.peak_c:.1f} °C (zone {peak.name}, "
            f"{format_duration(peak.peak_at_s)} in), {bound}; {pred.start_source}",
            limit=limit,
            observed=peak.peak_c,
            unit="°C",
            action="note",
        )
        for s in pred.steps:
            if s.kind == "fluence" and s.derated:
                ctx.add(
                    "thermal",
                    "derated_fluence_step",
                    f"{_where(s.index, plan.steps[s.index])}: predicted to be derated to "
                    f"{s.min_permille / 10:g} % after "
                    f"{format_duration((s.warn_crossed_at_s or s.start_s) - s.start_s)}"
                    f" and to reach its target in about {format_duration(s.duration_s)} "
                    f"instead of {format_duration(s.nominal_s)} (maximum "
                    f"{format_duration(s.max_duration_s)})",
                    limit=s.max_duration_s,
                    observed=s.duration_s,
                    unit="s",
                    action="note",
                )
    return pred


_STAGES: tuple[Callable[[_Ctx, SessionPlan], SessionPlan], ...] = (
    _defaults,
    _device,
    _limits_file,
    _schedule,
    _history,
)

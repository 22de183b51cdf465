"""Session plans: what a device will run, and the dose arithmetic behind it (DESIGN §5).

``compile(protocol, device)`` turns a validated protocol into a :class:`SessionPlan`:
one step per phase, with per-channel irradiance setpoints, pulse, ramp, and a duration
or per-channel fluence targets, plus the expected duration and fluence per wavelength.
``SessionPlan.to_wire()`` gives the UPLOAD_PLAN message.

Dose rules (DESIGN §5):

- fluence (J/cm²) = irradiance (mW/cm²) × duty × on-time (s) / 1000;
- ``irradiance`` is the on-state value; pulsing lowers the average, not the peak;
- a phase's duration includes its ramp; a linear ramp from 0 delivers half the fluence of
  the same time at full irradiance;
- fluence is reported per wavelength and never summed across wavelengths; a wavelength's
  fluence is the largest any of its channels receives (the most-dosed zone).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from lllt import wire
from lllt.errors import FieldProblem, PlanError
from lllt.units import human_duration

if TYPE_CHECKING:
    from lllt.info import DeviceInfo
    from lllt.protocol import Phase, Protocol


# --- dose arithmetic ------------------------------------------------------------------


def phase_fluence(
    irradiance_mw_cm2: float, duty_pct: float, duration_s: float, ramp_s: float
) -> float:
    """J/cm² a channel delivers in a phase of ``duration_s`` (ramp included)."""
    on_time = duration_s - ramp_s / 2.0
    return irradiance_mw_cm2 * (duty_pct / 100.0) * on_time / 1000.0


def duration_for_fluence(
    fluence_j_cm2: float, irradiance_mw_cm2: float, duty_pct: float, ramp_s: float
) -> float:
    """Seconds (ramp included) a channel needs to deliver ``fluence_j_cm2``.

    Inverse of :func:`phase_fluence` when the target is reached after the ramp; when it is
    reached during the ramp the time follows the quadratic rise of the ramp.
    """
    rate = irradiance_mw_cm2 * (duty_pct / 100.0) / 1000.0  # J/cm² per second at full output
    if rate <= 0:
        raise ValueError("irradiance and duty must be positive to reach a fluence")
    ramp_fluence = rate * ramp_s / 2.0
    if fluence_j_cm2 >= ramp_fluence:
        return fluence_j_cm2 / rate + ramp_s / 2.0
    # during the ramp: F(t) = rate * t^2 / (2 * ramp)
    return (2.0 * fluence_j_cm2 * ramp_s / rate) ** 0.5


# --- plan data ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Setpoint:
    """One channel's part in a step."""

    channel: int  # channel id
    wavelength_nm: int
    zone: int  # zone id
    irradiance_mw_cm2: float  # on-state
    fluence_target_j_cm2: float = 0.0  # fluence steps only; 0 in duration steps


@dataclass(frozen=True, slots=True)
class Step:
    """One phase of the protocol as the device will run it."""

    name: str
    kind: wire.StepKind
    ramp_s: float
    pulse_hz: float  # 0 = continuous wave
    duty_pct: float  # 100 = continuous wave
    setpoints: tuple[Setpoint, ...]
    expected_duration_s: float  # duration steps: exact; fluence steps: at full output
    max_duration_s: float  # duration steps: = expected; fluence steps: the cap
    expected_fluence_j_cm2: dict[int, float] = field(default_factory=dict)  # per wavelength

    def channel_fluence(self) -> dict[int, float]:
        """Expected J/cm² per channel id in this step."""
        if self.kind == wire.StepKind.FLUENCE:
            return {sp.channel: sp.fluence_target_j_cm2 for sp in self.setpoints}
        return {
            sp.channel: phase_fluence(
                sp.irradiance_mw_cm2, self.duty_pct, self.expected_duration_s, self.ramp_s
            )
            for sp in self.setpoints
        }


@dataclass(frozen=True)
class SessionPlan:
    protocol: Protocol
    device: DeviceInfo
    steps: tuple[Step, ...]
    #: adjustments made after compiling (preflight tightening), each with its reason
    adjustments: tuple[str, ...] = ()

    @property
    def expected_duration_s(self) -> float:
        return sum(s.expected_duration_s for s in self.steps)

    @property
    def max_duration_s(self) -> float:
        return sum(s.max_duration_s for s in self.steps)

    def fluence_by_channel(self) -> dict[int, float]:
        out: dict[int, float] = {}
        for s in self.steps:
            for ch, f in s.channel_fluence().items():
                out[ch] = out.get(ch, 0.0) + f
        return out

    def fluence_by_wavelength(self) -> dict[int, float]:
        """Expected J/cm² per wavelength: the most any channel of it receives."""
        out: dict[int, float] = {}
        for ch, f in self.fluence_by_channel().items():
            wl = self.device.channel(ch).wavelength_nm
            out[wl] = max(out.get(wl, 0.0), f)
        return out

    def to_wire(
        self,
        plan_id: int,
        *,
        policy: wire.LinkPolicy = wire.LinkPolicy.FINISH,
        lease_ms: int = 3000,
    ) -> wire.UploadPlan:
        steps = []
        for s in self.steps:
            steps.append(
                wire.PlanStep(
                    kind=s.kind,
                    duration_ms=round(s.max_duration_s * 1000),
                    ramp_ms=round(s.ramp_s * 1000),
                    pulse_hz=s.pulse_hz,
                    duty_pct=s.duty_pct,
                    setpoints=tuple(
                        wire.ChannelSetpoint(
                            sp.channel, sp.irradiance_mw_cm2, sp.fluence_target_j_cm2
                        )
                        for sp in s.setpoints
                    ),
                )
            )
        return wire.UploadPlan(plan_id, policy, lease_ms, tuple(steps))

    def with_steps(self, steps: tuple[Step, ...], reason: str) -> SessionPlan:
        """A copy with other steps and one more recorded adjustment."""
        return replace(self, steps=steps, adjustments=(*self.adjustments, reason))

    def summary(self) -> dict[str, Any]:
        return {
            "expected_duration_s": self.expected_duration_s,
            "max_duration_s": self.max_duration_s,
            "fluence_j_cm2": {str(k): v for k, v in sorted(self.fluence_by_wavelength().items())},
            "adjustments": list(self.adjustments),
        }


# --- compiling a protocol for a device ---------------------------------------------------

#: Resolution of setpoints on the wire (docs/wire-protocol.md): 0.01 mW/cm², 1 ms.
WIRE_IRRADIANCE_STEP = 0.01
#: The wire carries at most 32 setpoints per step.
MAX_SETPOINTS = 32


def _fmt(value: float) -> str:
    return f"{value:.6g}"


def _channel_list(channels: list[wire.ChannelInfo]) -> str:
    return ", ".join(f"ch{c.id}" for c in channels)


class _Problems:
    """Collects every reason a device cannot run a protocol, with the field it is about."""

    def __init__(self) -> None:
        self.items: list[FieldProblem] = []

    def add(self, field_path: str, message: str) -> None:
        self.items.append(FieldProblem(field_path, message))


def _compile_phase(
    index: int, phase: Phase, device: DeviceInfo, problems: _Problems
) -> Step | None:
    from lllt.protocol import parse_emit_key

    where = f"phases[{index}]"
    label = f"phase {phase.name!r}"
    before = len(problems.items)

    def add(field_path: str, message: str) -> None:
        problems.add(f"{where}.{field_path}", f"{label}: {message}")

    # zones
    zone_ids: set[int] = set()
    if "all" in phase.zones:
        zone_ids = {z.id for z in device.zones}
    else:
        for j, name in enumerate(phase.zones):
            zone = device.zone_by_name.get(name)
            if zone is None:
                known = ", ".join(z.name for z in device.zones)
                add(f"zones[{j}]", f"the device has no zone {name!r}; its zones are: {known}")
            else:
                zone_ids.add(zone.id)
    zone_names = ", ".join(device.zone_name(z) for z in sorted(zone_ids))

    # emits: every channel of a wavelength in the selected zones, or the named channel
    setpoints: dict[int, Setpoint] = {}
    set_by: dict[int, str] = {}
    for key, irradiance in phase.emit.items():
        kind, number = parse_emit_key(key)
        path = f"emit.{key}"
        if kind == "wavelength":
            at_wavelength = list(device.channels_at(number))
            if not at_wavelength:
                known = ", ".join(f"{wl} nm" for wl in device.wavelengths)
                add(path, f"the device has no {number} nm channel; its wavelengths are {known}")
                continue
            channels = [c for c in at_wavelength if c.zone in zone_ids]
            if not channels:
                if zone_ids:
                    add(path, f"the device has no {number} nm channel in zones {zone_names}")
                continue
        else:
            if number not in device.channel_index:
                known = _channel_list(list(device.channels))
                add(path, f"the device has no channel ch{number}; its channels are {known}")
                continue
            channel = device.channel(number)
            if channel.zone not in zone_ids:
                if zone_ids:
                    add(
                        path,
                        f"ch{number} is in zone {device.zone_name(channel.zone)!r}, not among "
                        f"the phase's zones ({zone_names})",
                    )
                continue
            channels = [channel]
        device_max = device.limits.max_irradiance_mw_cm2
        over = [c for c in channels if irradiance > min(c.max_irradiance_mw_cm2, device_max) + 1e-9]
        if over:
            cap = min(min(c.max_irradiance_mw_cm2 for c in over), device_max)
            add(
                path,
                f"{_fmt(irradiance)} mW/cm² is above the calibrated maximum of {_fmt(cap)} "
                f"mW/cm² of {_channel_list(over)} ({over[0].wavelength_nm} nm)",
            )
        if irradiance < WIRE_IRRADIANCE_STEP:
            add(
                path,
                f"{_fmt(irradiance)} mW/cm² is below the device's resolution of "
                f"{WIRE_IRRADIANCE_STEP} mW/cm²",
            )
        for c in channels:
            if c.id in setpoints:
                add(path, f"ch{c.id} is already set by {set_by[c.id]!r}; set each channel once")
                continue
            set_by[c.id] = key
            setpoints[c.id] = Setpoint(
                channel=c.id,
                wavelength_nm=c.wavelength_nm,
                zone=c.zone,
                irradiance_mw_cm2=irradiance,
                fluence_target_j_cm2=phase.fluence or 0.0,
            )
    if len(setpoints) > MAX_SETPOINTS:
        add("emit", f"{len(setpoints)} channels; a step drives at most {MAX_SETPOINTS}")

    # pulse and fluence targets are capabilities the device announces in HELLO
    caps = device.hello.capabilities
    limits = device.limits
    if phase.pulse is not None:
        if not caps & wire.Capability.PULSE:
            add("pulse", "the device cannot pulse; remove pulse to run continuous wave")
        elif not limits.min_pulse_hz <= phase.pulse.frequency <= limits.max_pulse_hz:
            add(
                "pulse.frequency",
                f"{_fmt(phase.pulse.frequency)} Hz is outside the device's pulse range of "
                f"{_fmt(limits.min_pulse_hz)} to {_fmt(limits.max_pulse_hz)} Hz",
            )
    if phase.is_fluence and not caps & wire.Capability.FLUENCE_TARGET:
        add("fluence", "the device cannot end a step on a fluence target; give a duration")
    if round(phase.max_duration_s * 1000) < 1:
        add("duration" if phase.duration else "max_duration", "shorter than the wire's 1 ms")

    if len(problems.items) > before or not setpoints:
        return None
    sps = tuple(setpoints[ch] for ch in sorted(setpoints))
    by_wavelength: dict[int, float] = {}
    for sp in sps:
        f = phase.fluence_at(sp.irradiance_mw_cm2)
        by_wavelength[sp.wavelength_nm] = max(by_wavelength.get(sp.wavelength_nm, 0.0), f)
    return Step(
        name=phase.name,
        kind=wire.StepKind.FLUENCE if phase.is_fluence else wire.StepKind.DURATION,
        ramp_s=phase.ramp,
        pulse_hz=phase.pulse_hz,
        duty_pct=phase.duty_pct,
        setpoints=sps,
        expected_duration_s=max(phase.duration_at(sp.irradiance_mw_cm2) for sp in sps),
        max_duration_s=phase.max_duration_s,
        expected_fluence_j_cm2=dict(sorted(by_wavelength.items())),
    )


def compile(protocol: Protocol, device: DeviceInfo) -> SessionPlan:
    """The session plan ``device`` will run for ``protocol``: one step per phase.

    A wavelength key drives every channel of that wavelength in the phase's zones; a
    channel key (``ch3``) drives that channel. Duration phases become DURATION steps;
    fluence phases become FLUENCE steps in which every driven channel targets the phase's
    fluence, bounded by the phase's ``max_duration``.

    Only what the device itself announces is checked here (wavelengths, zones, channels,
    calibrated maxima, pulse capability and range, hard session and fluence limits);
    preflight (``lllt.safety``) applies the host's safety limits afterwards. Raises
    PlanError listing every problem, each naming the phase, channel or wavelength and the
    numbers, in ``err.problems`` (FieldProblems with file paths).
    """
    problems = _Problems()
    steps = []
    for index, phase in enumerate(protocol.phases):
        step = _compile_phase(index, phase, device, problems)
        if step is not None:
            steps.append(step)
    plan = SessionPlan(protocol=protocol, device=device, steps=tuple(steps))
    if not problems.items:
        _check_device_limits(plan, problems)
    if problems.items:
        lines = [str(p) for p in problems.items]
        head = f"the device ({device.model}) cannot run protocol {protocol.id!r}"
        message = f"{head}: {lines[0]}" if len(lines) == 1 else head + ":\n  " + "\n  ".join(lines)
        raise PlanError(message, problems=problems.items, protocol=protocol.id)
    return plan


def _check_device_limits(plan: SessionPlan, problems: _Problems) -> None:
    """The device's hard limits: total session time and fluence per channel."""
    limits = plan.device.limits
    total = plan.max_duration_s
    if total > limits.max_session_s + 1e-6:
        has_fluence_steps = any(s.kind == wire.StepKind.FLUENCE for s in plan.steps)
        bounded = " (fluence phases counted at their max_duration)" if has_fluence_steps else ""
        problems.add(
            "phases",
            f"the session may run {_fmt(total)} s ({human_duration(total)}){bounded}; the "
            f"device's maximum session is {_fmt(limits.max_session_s)} s "
            f"({human_duration(limits.max_session_s)})",
        )
    over: dict[tuple[int, float], list[wire.ChannelInfo]] = {}
    for ch, fluence in sorted(plan.fluence_by_channel().items()):
        if fluence > limits.max_fluence_j_cm2 + 1e-9:
            info = plan.device.channel(ch)
            over.setdefault((info.wavelength_nm, round(fluence, 6)), []).append(info)
    for (wavelength, fluence), channels in over.items():
        problems.add(
            "phases",
            f"{_channel_list(channels)} ({wavelength} nm) would receive {_fmt(fluence)} J/cm² "
            f"in one session; the device's maximum is {_fmt(limits.max_fluence_j_cm2)} J/cm² "
            "per channel",
        )

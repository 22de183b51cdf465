"""Session plans: what a device will run, and the dose arithmetic behind it.

``compile(protocol, device)`` turns a validated protocol into a :class:`SessionPlan`:
one step per phase, with per-channel irradiance setpoints, pulse, ramp, and a duration
or per-channel fluence targets, plus the expected duration and fluence per wavelength.
``SessionPlan.to_wire()`` gives the UPLOAD_PLAN message.

The dose rules (fluence from irradiance, duty and time; a ramp's half; a wavelength's
fluence as the most any of its channels receives) live in :mod:`lllt.dose`; a step's
expected duration and fluence are worked out in one place, :meth:`Step.with_setpoints`.
:func:`analyze` and :func:`check_file` give ``lllt protocol check`` its data.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from lllt import wire
from lllt.dose import IRRADIANCE_STEP, duration_for_fluence, most_dosed, phase_fluence
from lllt.errors import FieldProblem, FileFormatError, PlanError
from lllt.units import human_duration

if TYPE_CHECKING:
    from lllt.info import DeviceInfo
    from lllt.protocol import Phase, Protocol

# lllt.protocol (pydantic) is imported where it is needed, so ``import lllt.plan`` stays
# cheap for the log and report commands.

__all__ = [
    "MAX_SETPOINTS",
    "SessionPlan",
    "Setpoint",
    "Step",
    "analyze",
    "check_file",
    "compile",
    "duration_for_fluence",
    "phase_fluence",
]


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

    def with_setpoints(self, setpoints: tuple[Setpoint, ...]) -> Step:
        """The step with other setpoints and its expected duration and fluence worked out.

        A fluence step runs until its slowest channel reaches its target (at full output;
        a channel with a target and no light never does); a duration step keeps its time.
        """
        new = replace(self, setpoints=setpoints)
        if self.kind == wire.StepKind.FLUENCE:
            needed = [
                duration_for_fluence(
                    sp.fluence_target_j_cm2, sp.irradiance_mw_cm2, self.duty_pct, self.ramp_s
                )
                for sp in setpoints
                if sp.fluence_target_j_cm2 > 0 and sp.irradiance_mw_cm2 > 0
            ]
            if any(sp.fluence_target_j_cm2 > 0 and sp.irradiance_mw_cm2 <= 0 for sp in setpoints):
                needed.append(math.inf)
            new = replace(new, expected_duration_s=max(needed, default=self.expected_duration_s))
        by_wavelength = most_dosed(
            new.channel_fluence(), {sp.channel: sp.wavelength_nm for sp in setpoints}
        )
        return replace(new, expected_fluence_j_cm2=dict(sorted(by_wavelength.items())))


@dataclass(frozen=True)
class SessionPlan:
    """A protocol compiled for one device: the steps it will run, in order, and the
    adjustments made since compiling (preflight tightening), each with its reason."""

    protocol: Protocol
    device: DeviceInfo
    steps: tuple[Step, ...]
    #: adjustments made after compiling (preflight tightening), each with its reason
    adjustments: tuple[str, ...] = ()

    @property
    def expected_duration_s(self) -> float:
        """Seconds the session takes at full output (the steps added up)."""
        return sum(s.expected_duration_s for s in self.steps)

    @property
    def max_duration_s(self) -> float:
        """The most the session may run, in seconds: the steps' maxima added up, as the device
        is sent them."""
        return sum(s.max_duration_s for s in self.steps)

    def fluence_by_channel(self) -> dict[int, float]:
        """Expected J/cm² per channel id over the whole session."""
        out: dict[int, float] = {}
        for s in self.steps:
            for ch, f in s.channel_fluence().items():
                out[ch] = out.get(ch, 0.0) + f
        return out

    def fluence_by_wavelength(self) -> dict[int, float]:
        """Expected J/cm² per wavelength: the most any channel of it receives."""
        return most_dosed(self.fluence_by_channel(), self.device.channel_wavelength)

    def to_wire(
        self,
        plan_id: int,
        *,
        policy: wire.LinkPolicy = wire.LinkPolicy.FINISH,
        lease_ms: int = 3000,
    ) -> wire.UploadPlan:
        """The UPLOAD_PLAN message for ``plan_id``, in wire units. A step's ``duration_ms`` is
        its maximum duration (a duration step's exact one); ``policy`` and ``lease_ms``
        (device ms) say what the device does if the host goes silent."""
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
        """JSON form: expected and maximum duration (s), expected fluence per wavelength (J/cm²,
        keys as strings) and the adjustments."""
        return {
            "expected_duration_s": self.expected_duration_s,
            "max_duration_s": self.max_duration_s,
            "fluence_j_cm2": {str(k): v for k, v in sorted(self.fluence_by_wavelength().items())},
            "adjustments": list(self.adjustments),
        }


# --- compiling a protocol for a device ---------------------------------------------------

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


class _PhaseProblems:
    """Adds problems of one phase, each under its field path and naming the phase."""

    def __init__(self, index: int, phase: Phase, problems: _Problems) -> None:
        self.where = f"phases[{index}]"
        self.label = f"phase {phase.name!r}"
        self.problems = problems
        self.before = len(problems.items)

    def __call__(self, field_path: str, message: str) -> None:
        self.problems.add(f"{self.where}.{field_path}", f"{self.label}: {message}")

    @property
    def found(self) -> bool:
        return len(self.problems.items) > self.before


def _compile_phase(
    index: int, phase: Phase, device: DeviceInfo, problems: _Problems
) -> Step | None:
    """The step ``device`` runs for ``phase``, or None with the reasons in ``problems``."""
    add = _PhaseProblems(index, phase, problems)
    zone_ids = _phase_zones(phase, device, add)
    setpoints = _phase_setpoints(phase, device, zone_ids, add)
    _check_capabilities(phase, device, add)
    if add.found or not setpoints:
        return None
    step = Step(
        name=phase.name,
        kind=wire.StepKind.FLUENCE if phase.is_fluence else wire.StepKind.DURATION,
        ramp_s=phase.ramp,
        pulse_hz=phase.pulse_hz,
        duty_pct=phase.duty_pct,
        setpoints=(),
        expected_duration_s=phase.duration or 0.0,
        max_duration_s=phase.max_duration_s,
    )
    return step.with_setpoints(tuple(setpoints[ch] for ch in sorted(setpoints)))


def _phase_zones(phase: Phase, device: DeviceInfo, add: _PhaseProblems) -> set[int]:
    """Ids of the zones the phase names (``all``: every zone)."""
    if "all" in phase.zones:
        return {z.id for z in device.zones}
    zone_ids: set[int] = set()
    for j, name in enumerate(phase.zones):
        zone = device.zone_by_name.get(name)
        if zone is None:
            known = ", ".join(z.name for z in device.zones)
            add(f"zones[{j}]", f"the device has no zone {name!r}; its zones are: {known}")
        else:
            zone_ids.add(zone.id)
    return zone_ids


def _emit_channels(
    key: str, device: DeviceInfo, zone_ids: set[int], add: _PhaseProblems
) -> list[wire.ChannelInfo]:
    """The channels an emit key drives: every channel of a wavelength in the phase's
    zones, or the named channel (empty, with the reason added, when there is none)."""
    from lllt.protocol import parse_emit_key

    kind, number = parse_emit_key(key)
    path = f"emit.{key}"
    zone_names = ", ".join(device.zone_name(z) for z in sorted(zone_ids))
    if kind == "wavelength":
        at_wavelength = list(device.channels_at(number))
        if not at_wavelength:
            known = ", ".join(f"{wl} nm" for wl in device.wavelengths)
            add(path, f"the device has no {number} nm channel; its wavelengths are {known}")
            return []
        channels = [c for c in at_wavelength if c.zone in zone_ids]
        if not channels and zone_ids:
            add(path, f"the device has no {number} nm channel in zones {zone_names}")
        return channels
    if number not in device.channel_index:
        known = _channel_list(list(device.channels))
        add(path, f"the device has no channel ch{number}; its channels are {known}")
        return []
    channel = device.channel(number)
    if channel.zone not in zone_ids:
        if zone_ids:
            add(
                path,
                f"ch{number} is in zone {device.zone_name(channel.zone)!r}, not among "
                f"the phase's zones ({zone_names})",
            )
        return []
    return [channel]


def _check_irradiance(
    path: str, irradiance: float, channels: list[wire.ChannelInfo], device: DeviceInfo,
    add: _PhaseProblems,
) -> None:  # fmt: skip
    """The irradiance against the channels' calibrated maxima and the wire's resolution."""
    device_max = device.limits.max_irradiance_mw_cm2
    over = [c for c in channels if irradiance > min(c.max_irradiance_mw_cm2, device_max) + 1e-9]
    if over:
        cap = min(min(c.max_irradiance_mw_cm2 for c in over), device_max)
        add(
            path,
            f"{_fmt(irradiance)} mW/cm² is above the calibrated maximum of {_fmt(cap)} "
            f"mW/cm² of {_channel_list(over)} ({over[0].wavelength_nm} nm)",
        )
    if irradiance < IRRADIANCE_STEP:
        add(
            path,
            f"{_fmt(irradiance)} mW/cm² is below the device's resolution of "
            f"{IRRADIANCE_STEP} mW/cm²",
        )


def _phase_setpoints(
    phase: Phase, device: DeviceInfo, zone_ids: set[int], add: _PhaseProblems
) -> dict[int, Setpoint]:
    """channel id -> its setpoint, each channel set by one emit key only."""
    setpoints: dict[int, Setpoint] = {}
    set_by: dict[int, str] = {}
    for key, irradiance in phase.emit.items():
        channels = _emit_channels(key, device, zone_ids, add)
        if not channels:
            continue
        path = f"emit.{key}"
        _check_irradiance(path, irradiance, channels, device, add)
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
    return setpoints


def _check_capabilities(phase: Phase, device: DeviceInfo, add: _PhaseProblems) -> None:
    """Pulse and fluence targets are capabilities the device announces in HELLO."""
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


# --- analysis (lllt protocol check) ------------------------------------------------------


def _wl_dict(values: dict[int, float]) -> dict[str, float]:
    return {str(k): v for k, v in sorted(values.items())}


def analyze(protocol: Protocol, device: DeviceInfo | None = None) -> dict[str, Any]:
    """What the protocol asks for, as plain data (the body of ``lllt protocol check``).

    Without a device: :func:`lllt.protocol.describe` (durations and the fluence of
    wavelength-keyed emits). With one: the compiled plan (channels per phase, fluence of
    every emit), and ``valid`` False with the reasons when the device cannot run it. Keys
    as in :func:`lllt.protocol.describe`, plus ``channel_fluence_j_cm2`` and each phase's
    ``channels`` with a device.
    """
    from lllt.protocol import describe

    out = describe(protocol)
    if device is None:
        return out
    out["device"] = {"model": device.model, "serial": device.serial, "firmware": device.firmware}
    try:
        plan = compile(protocol, device)
    except PlanError as err:
        out["valid"] = False
        problems = err.problems or [FieldProblem("", err.message)]
        out["errors"] = [p.to_dict() for p in problems]
        return out
    out["total_duration_s"] = plan.expected_duration_s
    out["max_duration_s"] = plan.max_duration_s
    out["fluence_j_cm2"] = _wl_dict(plan.fluence_by_wavelength())
    out["channel_fluence_j_cm2"] = {
        f"ch{ch}": f for ch, f in sorted(plan.fluence_by_channel().items())
    }
    for entry, step in zip(out["phases"], plan.steps, strict=True):
        entry["duration_s"] = step.expected_duration_s
        entry["max_duration_s"] = step.max_duration_s
        entry["fluence_j_cm2"] = _wl_dict(step.expected_fluence_j_cm2)
        entry["channel_fluence_j_cm2"] = {
            f"ch{ch}": f for ch, f in sorted(step.channel_fluence().items())
        }
        entry["channels"] = [sp.channel for sp in step.setpoints]
    return out


def check_file(path: str | os.PathLike[str], device: DeviceInfo | None = None) -> dict[str, Any]:
    """Load and analyze one file; never raises for a bad file (``valid`` is False)."""
    from lllt.protocol import invalid_result, load_protocol, peek_id, resolve

    source = os.fspath(path)
    try:
        protocol = load_protocol(resolve(source))
    except FileFormatError as err:
        return invalid_result(source, err.problems, peek_id(source))
    return {"file": source, **analyze(protocol, device)}

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

if TYPE_CHECKING:
    from lllt.info import DeviceInfo
    from lllt.protocol import Protocol


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

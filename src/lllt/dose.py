"""The dose rules, written once: protocol, plan, safety, store and report all use these.

- fluence (J/cm²) = irradiance (mW/cm²) × duty × on-time (s) / 1000;
- ``irradiance`` is the on-state value; pulsing lowers the average, not the peak;
- a phase's duration includes its ramp; a linear ramp from 0 delivers half the fluence of
  the same time at full irradiance;
- fluence is reported per wavelength and never summed across wavelengths; a wavelength's
  fluence is the largest any of its channels receives (the most-dosed zone);
- irradiance travels on the wire in steps of :data:`IRRADIANCE_STEP` mW/cm²; a setpoint
  lowered by the host is rounded *down* to a step so it never rises on the wire.

This module sits below ``lllt.protocol`` and ``lllt.plan`` (docs/architecture.md), so both
can use it without importing each other.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping

from lllt.wire import IRRADIANCE_STEP

__all__ = [
    "IRRADIANCE_STEP",
    "duration_for_fluence",
    "floor_to_step",
    "most_dosed",
    "phase_fluence",
]


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


def most_dosed(
    by_channel: Mapping[int, float] | Iterable[tuple[int, float]],
    wavelength_of: Mapping[int, int] | Callable[[int], int],
) -> dict[int, float]:
    """J/cm² per wavelength: the most any of its channels receives.

    ``by_channel`` maps a channel (id, or index — whatever ``wavelength_of`` takes) to its
    fluence; ``wavelength_of`` gives a channel's wavelength (a mapping skips channels it
    does not know). Wavelengths are never added together.
    """
    items = by_channel.items() if isinstance(by_channel, Mapping) else by_channel
    lookup = wavelength_of.get if isinstance(wavelength_of, Mapping) else wavelength_of
    out: dict[int, float] = {}
    for ch, f in items:
        wl = lookup(ch)
        if wl is None:
            continue
        out[wl] = max(out.get(wl, 0.0), f)
    return out


def floor_to_step(irradiance_mw_cm2: float) -> float:
    """``irradiance_mw_cm2`` rounded down to the wire's step (a lowered setpoint)."""
    return math.floor(irradiance_mw_cm2 / IRRADIANCE_STEP + 1e-9) * IRRADIANCE_STEP

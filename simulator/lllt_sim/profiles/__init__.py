"""Simulator profiles: a packaged device description plus the simulator's own physics.

The TOML files and the device part of them (identity, limits, zones, channels) belong to
``lllt.wire.profiles``, which host and simulator share; this module adds the ``[sim]``
table (supply, tolerances, noise, control tick) that only the simulator reads.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cache
from typing import Any

from lllt.wire.profiles import (
    FORMAT,
    DeviceProfile,
    ProfileError,
    default_capabilities,
    device_profile,
    parse_table,
    profile_names,
    profile_table,
)

__all__ = [
    "FORMAT",
    "Profile",
    "ProfileError",
    "SimParams",
    "default_capabilities",
    "load_profile",
    "parse_profile",
    "profile_names",
]


@dataclass(frozen=True, slots=True)
class SimParams:
    """Simulator-only physics of a profile (its ``[sim]`` table)."""

    supply_mv: int
    brownout_mv: int
    headroom: float
    tolerance_pct: float
    sensor_noise_c: float
    control_tick_ms: int
    #: extra board heat (W) of the ``overtemp`` fault (a failed fan or driver)
    overtemp_w: float = 6.0


@dataclass(frozen=True, slots=True)
class Profile(DeviceProfile):
    """One simulated cap: the device description and the simulator's physics."""

    sim: SimParams


@cache
def load_profile(name: str) -> Profile:
    """Load a packaged profile by name; raises ProfileError naming the known ones."""
    return _profile(profile_table(name), source=f"{name}.toml")


def parse_profile(text: str, *, source: str = "<profile>") -> Profile:
    """A profile from TOML text; raises ProfileError."""
    return _profile(parse_table(text, source=source), source=source)


def _profile(data: dict[str, Any], *, source: str) -> Profile:
    device = device_profile(data, source=source)
    try:
        sim = _sim_params(data["sim"])
    except (KeyError, TypeError, ValueError) as err:
        raise ProfileError(f"{source}: {err}") from None
    fields = {f.name: getattr(device, f.name) for f in dataclasses.fields(device)}
    return Profile(**fields, sim=sim)


def _sim_params(s: dict[str, Any]) -> SimParams:
    return SimParams(
        supply_mv=int(s["supply_mv"]),
        brownout_mv=int(s["brownout_mv"]),
        headroom=float(s["headroom"]),
        tolerance_pct=float(s["tolerance_pct"]),
        sensor_noise_c=float(s["sensor_noise_c"]),
        control_tick_ms=int(s["control_tick_ms"]),
        overtemp_w=float(s.get("overtemp_w", 6.0)),
    )

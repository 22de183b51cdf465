"""Device profiles: packaged, versioned TOML files, loaded here and nowhere else.

A profile describes one simulated cap: identity, hard limits, zones with their thermal
model, channels, and simulator-only physics (``[sim]``). ``Profile.hello_info()`` gives
the HELLO_INFO message a device with this profile sends; the host's offline analysis
(``--profile NAME``) uses that same message, so a profile and a connected simulator can
never describe the device differently.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from lllt import wire

FORMAT = "lllt-sim-profile/1"


class ProfileError(ValueError):
    """A profile file is missing or invalid."""


@dataclass(frozen=True, slots=True)
class SimParams:
    supply_mv: int
    brownout_mv: int
    headroom: float
    tolerance_pct: float
    sensor_noise_c: float
    control_tick_ms: int
    #: extra board heat (W) of the ``overtemp`` fault (a failed fan or driver)
    overtemp_w: float = 6.0


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    model: str
    serial: str
    firmware: tuple[int, int, int]
    description: str
    limits: wire.DeviceLimits
    zones: tuple[wire.ZoneInfo, ...]
    channels: tuple[wire.ChannelInfo, ...]
    sim: SimParams

    def hello_info(
        self,
        *,
        nonce: bytes = bytes(wire.NONCE_SIZE),
        boot_count: int = 1,
        uptime_ms: int = 0,
        clock_rate: float = 0.0,
        capabilities: wire.Capability | None = None,
    ) -> wire.HelloInfo:
        caps = capabilities
        if caps is None:
            caps = default_capabilities()
        return wire.HelloInfo(
            major=wire.PROTOCOL_MAJOR,
            minor=wire.PROTOCOL_MINOR,
            firmware=self.firmware,
            capabilities=caps,
            clock_rate=clock_rate,
            boot_count=boot_count,
            uptime_ms=uptime_ms,
            nonce=nonce,
            max_payload=wire.MAX_PAYLOAD,
            limits=self.limits,
            model=self.model,
            serial=self.serial,
            zones=self.zones,
            channels=self.channels,
        )


def default_capabilities() -> wire.Capability:
    C = wire.Capability
    return (
        C.AUTH_REQUIRED
        | C.SIMULATED
        | C.PULSE
        | C.FLUENCE_TARGET
        | C.HEAD_SENSOR
        | C.DEV_KEY
        | C.AMBIENT_SENSOR
    )


def profile_names() -> list[str]:
    """Names of the packaged profiles, sorted."""
    root = resources.files(__name__)
    return sorted(p.name[: -len(".toml")] for p in root.iterdir() if p.name.endswith(".toml"))


@cache
def load_profile(name: str) -> Profile:
    """Load a packaged profile by name; raises ProfileError naming the known ones."""
    names = profile_names()
    if name not in names:
        raise ProfileError(
            f"unknown simulator profile {name!r}; known profiles: {', '.join(names)}"
        )
    text = resources.files(__name__).joinpath(f"{name}.toml").read_text(encoding="utf-8")
    return parse_profile(text, source=f"{name}.toml")


def parse_profile(text: str, *, source: str = "<profile>") -> Profile:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ProfileError(f"{source}: not valid TOML: {err}") from None
    try:
        return _build(data)
    except (KeyError, TypeError, ValueError) as err:
        raise ProfileError(f"{source}: {err}") from None


def _build(d: dict[str, Any]) -> Profile:
    fmt = d.get("format")
    if fmt != FORMAT:
        raise ValueError(f"format must be {FORMAT!r}, found {fmt!r}")
    lim = d["limits"]
    limits = wire.DeviceLimits(
        max_irradiance_mw_cm2=float(lim["max_irradiance_mw_cm2"]),
        max_session_s=float(lim["max_session_s"]),
        max_fluence_j_cm2=float(lim["max_fluence_j_cm2"]),
        cutoff_c=float(lim["cutoff_c"]),
        sensor_uncertainty_c=float(lim["sensor_uncertainty_c"]),
        head_off_abort_s=float(lim["head_off_abort_s"]),
        min_lease_ms=int(lim["min_lease_ms"]),
        max_telemetry_hz=int(lim["max_telemetry_hz"]),
        min_pulse_hz=float(lim["min_pulse_hz"]),
        max_pulse_hz=float(lim["max_pulse_hz"]),
    )
    thermal = d["thermal"]
    zones = []
    for z in d["zones"]:
        t = {**thermal, **{k: v for k, v in z.items() if k not in ("id", "name")}}
        zones.append(
            wire.ZoneInfo(
                id=int(z["id"]),
                name=str(z["name"]),
                area_cm2=float(t["area_cm2"]),
                c_board_j_k=float(t["c_board_j_k"]),
                c_scalp_j_k=float(t["c_scalp_j_k"]),
                g_ambient_w_k=float(t["g_ambient_w_k"]),
                g_contact_w_k=float(t["g_contact_w_k"]),
                g_tissue_w_k=float(t["g_tissue_w_k"]),
                t_core_c=float(t["t_core_c"]),
            )
        )
    defaults = d.get("channel_defaults", {})
    zone_ids = {z.id for z in zones}
    channels = []
    for c in d["channels"]:
        m = {**defaults, **c}
        if int(m["zone"]) not in zone_ids:
            raise ValueError(f"channel {m['id']} is in unknown zone {m['zone']}")
        channels.append(
            wire.ChannelInfo(
                id=int(m["id"]),
                zone=int(m["zone"]),
                wavelength_nm=int(m["wavelength_nm"]),
                max_irradiance_mw_cm2=float(m["max_irradiance_mw_cm2"]),
                tempco_pct_per_k=float(m["tempco_pct_per_k"]),
                kind=str(m["kind"]),
                emitter_count=int(m["emitter_count"]),
                emitter_max_mw=float(m["emitter_max_mw"]),
                heat_board_w_per_mw_cm2=float(m["heat_board_w_per_mw_cm2"]),
                heat_scalp_w_per_mw_cm2=float(m["heat_scalp_w_per_mw_cm2"]),
            )
        )
    if len({c.id for c in channels}) != len(channels):
        raise ValueError("channel ids must be unique")
    if not 0 < len(channels) <= wire.MAX_CHANNELS:
        raise ValueError(f"a profile has 1 to {wire.MAX_CHANNELS} channels")
    s = d["sim"]
    sim = SimParams(
        supply_mv=int(s["supply_mv"]),
        brownout_mv=int(s["brownout_mv"]),
        headroom=float(s["headroom"]),
        tolerance_pct=float(s["tolerance_pct"]),
        sensor_noise_c=float(s["sensor_noise_c"]),
        control_tick_ms=int(s["control_tick_ms"]),
        overtemp_w=float(s.get("overtemp_w", 6.0)),
    )
    fw = tuple(int(x) for x in d["firmware"])
    if len(fw) != 3:
        raise ValueError("firmware must be [major, minor, patch]")
    return Profile(
        name=str(d["name"]),
        model=str(d["model"]),
        serial=str(d["serial"]),
        firmware=(fw[0], fw[1], fw[2]),
        description=str(d.get("description", "")),
        limits=limits,
        zones=tuple(zones),
        channels=tuple(channels),
        sim=sim,
    )

"""Packaged device profiles: TOML descriptions of caps, loaded here and nowhere else.

A profile describes one cap: identity, hard limits, zones with their thermal model and
channels (everything a cap announces in HELLO_INFO), plus a ``[sim]`` table of
simulator-only physics that this module hands on untouched. ``DeviceProfile.hello_info()``
gives the HELLO_INFO message a device with this profile sends. The host's offline analysis
(``DeviceInfo.for_profile``) and the simulator (``lllt_sim.profiles``) both read profiles
through this module, so a profile and a connected simulator can never describe the device
differently.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from lllt.wire.constants import (
    MAX_CHANNELS,
    MAX_PAYLOAD,
    NONCE_SIZE,
    PROTOCOL_MAJOR,
    PROTOCOL_MINOR,
)
from lllt.wire.description import ChannelInfo, DeviceLimits, HelloInfo, ZoneInfo
from lllt.wire.enums import Capability

FORMAT = "lllt-sim-profile/1"


class ProfileError(ValueError):
    """A profile file is missing or invalid."""


@dataclass(frozen=True, slots=True)
class DeviceProfile:
    """What a packaged profile says a cap announces about itself."""

    name: str
    model: str
    serial: str
    firmware: tuple[int, int, int]
    description: str
    limits: DeviceLimits
    zones: tuple[ZoneInfo, ...]
    channels: tuple[ChannelInfo, ...]

    def hello_info(
        self,
        *,
        nonce: bytes = bytes(NONCE_SIZE),
        boot_count: int = 1,
        uptime_ms: int = 0,
        clock_rate: float = 0.0,
        capabilities: Capability | None = None,
    ) -> HelloInfo:
        """The HELLO_INFO a device of this profile sends, with the given nonce, boot count, uptime
        (ms), clock rate (device seconds per real second; 0: lockstep virtual clock) and
        capabilities (None: :func:`default_capabilities`)."""
        caps = capabilities
        if caps is None:
            caps = default_capabilities()
        return HelloInfo(
            major=PROTOCOL_MAJOR,
            minor=PROTOCOL_MINOR,
            firmware=self.firmware,
            capabilities=caps,
            clock_rate=clock_rate,
            boot_count=boot_count,
            uptime_ms=uptime_ms,
            nonce=nonce,
            max_payload=MAX_PAYLOAD,
            limits=self.limits,
            model=self.model,
            serial=self.serial,
            zones=self.zones,
            channels=self.channels,
        )


def default_capabilities() -> Capability:
    """What a simulated device announces by default: authentication required, simulated,
    pulse, fluence targets, head and ambient sensors, and the development key."""
    C = Capability
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
def profile_table(name: str) -> dict[str, Any]:
    """The parsed TOML of a packaged profile; raises ProfileError naming the known ones."""
    names = profile_names()
    if name not in names:
        raise ProfileError(
            f"unknown simulator profile {name!r}; known profiles: {', '.join(names)}"
        )
    text = resources.files(__name__).joinpath(f"{name}.toml").read_text(encoding="utf-8")
    return parse_table(text, source=f"{name}.toml")


def parse_table(text: str, *, source: str = "<profile>") -> dict[str, Any]:
    """A profile's TOML text, parsed and with its format checked."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ProfileError(f"{source}: not valid TOML: {err}") from None
    fmt = data.get("format")
    if fmt != FORMAT:
        raise ProfileError(f"{source}: format must be {FORMAT!r}, found {fmt!r}")
    return data


@cache
def load_device_profile(name: str) -> DeviceProfile:
    """The device description of a packaged profile."""
    return device_profile(profile_table(name), source=f"{name}.toml")


def device_profile(data: dict[str, Any], *, source: str = "<profile>") -> DeviceProfile:
    """The device description in a parsed profile table; raises ProfileError."""
    try:
        return _build(data)
    except (KeyError, TypeError, ValueError) as err:
        raise ProfileError(f"{source}: {err}") from None


def _build(d: dict[str, Any]) -> DeviceProfile:
    lim = d["limits"]
    limits = DeviceLimits(
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
            ZoneInfo(
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
            ChannelInfo(
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
    if not 0 < len(channels) <= MAX_CHANNELS:
        raise ValueError(f"a profile has 1 to {MAX_CHANNELS} channels")
    fw = tuple(int(x) for x in d["firmware"])
    if len(fw) != 3:
        raise ValueError("firmware must be [major, minor, patch]")
    return DeviceProfile(
        name=str(d["name"]),
        model=str(d["model"]),
        serial=str(d["serial"]),
        firmware=(fw[0], fw[1], fw[2]),
        description=str(d.get("description", "")),
        limits=limits,
        zones=tuple(zones),
        channels=tuple(channels),
    )

"""What the host knows about a device: its HELLO_INFO, with lookups and a JSON form.

``DeviceInfo`` comes from a connected cap's handshake (``Cap.info``) or, offline, from a
packaged device profile (``DeviceInfo.for_profile("reference-cap")``, read through
``lllt.wire.profiles`` like the simulator's): both are the same HELLO_INFO message, so
planning and preflight see one description of a device.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from lllt import wire
from lllt.errors import InvalidInput


@dataclass(frozen=True)
class DeviceInfo:
    """What the host knows about one device: its HELLO_INFO (``hello``), with lookups and a
    JSON form. Ids are the device's own; telemetry arrays follow the order of ``channels``
    and ``zones``."""

    hello: wire.HelloInfo

    # --- identity -------------------------------------------------------------------
    @property
    def model(self) -> str:
        """The device's model name."""
        return self.hello.model

    @property
    def serial(self) -> str:
        """The device's serial number (device keys and reconciliation go by serial)."""
        return self.hello.serial

    @property
    def firmware(self) -> str:
        """Firmware version, ``"major.minor.patch"``."""
        return ".".join(str(x) for x in self.hello.firmware)

    @property
    def protocol(self) -> str:
        """Wire protocol version the device speaks, ``"major.minor"``."""
        return f"{self.hello.major}.{self.hello.minor}"

    @property
    def simulated(self) -> bool:
        """True for a simulator (capability SIMULATED), not a cap on a head."""
        return bool(self.hello.capabilities & wire.Capability.SIMULATED)

    @property
    def limits(self) -> wire.DeviceLimits:
        """The device's own hard limits; the host can never raise them."""
        return self.hello.limits

    @property
    def zones(self) -> tuple[wire.ZoneInfo, ...]:
        """The zones, in HELLO_INFO order (the order of telemetry temperatures)."""
        return self.hello.zones

    @property
    def channels(self) -> tuple[wire.ChannelInfo, ...]:
        """The channels, in HELLO_INFO order (the order of telemetry arrays)."""
        return self.hello.channels

    # --- lookups --------------------------------------------------------------------
    @cached_property
    def channel_index(self) -> dict[int, int]:
        """channel id -> position in telemetry arrays"""
        return {c.id: i for i, c in enumerate(self.hello.channels)}

    @cached_property
    def channel_wavelength(self) -> dict[int, int]:
        """channel id -> wavelength (nm)"""
        return {c.id: c.wavelength_nm for c in self.hello.channels}

    @cached_property
    def zone_index(self) -> dict[int, int]:
        """zone id -> position in telemetry's temperature array"""
        return {z.id: i for i, z in enumerate(self.hello.zones)}

    @cached_property
    def zone_by_name(self) -> dict[str, wire.ZoneInfo]:
        """zone name -> its ZoneInfo"""
        return {z.name: z for z in self.hello.zones}

    @cached_property
    def wavelengths(self) -> tuple[int, ...]:
        """The device's wavelengths (nm), sorted, each once."""
        return tuple(sorted({c.wavelength_nm for c in self.hello.channels}))

    def channel(self, channel_id: int) -> wire.ChannelInfo:
        """The channel with this id; InvalidInput when the device has none."""
        try:
            return self.hello.channels[self.channel_index[channel_id]]
        except KeyError:
            raise InvalidInput(f"the device has no channel {channel_id}") from None

    def channels_at(self, wavelength_nm: int) -> tuple[wire.ChannelInfo, ...]:
        """The channels of one wavelength (nm), in HELLO_INFO order; empty if none."""
        return tuple(c for c in self.hello.channels if c.wavelength_nm == wavelength_nm)

    def zone_name(self, zone_id: int) -> str:
        """The name of the zone with this id, or the id as text if there is none."""
        for z in self.hello.zones:
            if z.id == zone_id:
                return z.name
        return str(zone_id)

    # --- construction ---------------------------------------------------------------
    @classmethod
    def for_profile(cls, name: str) -> DeviceInfo:
        """The device a packaged profile describes (no connection needed)."""
        from lllt.wire.profiles import ProfileError, load_device_profile

        try:
            return cls(load_device_profile(name).hello_info())
        except ProfileError as err:
            raise InvalidInput(str(err), advice="See `lllt devices` for the profiles.") from None

    # --- output ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON form for ``lllt info``: identity, capabilities, clock rate, zones, channels and
        limits, each quantity in the unit its key names (``area_cm2``, ``min_lease_ms``)."""
        h = self.hello
        lim = h.limits
        return {
            "model": h.model,
            "serial": h.serial,
            "firmware": self.firmware,
            "protocol": self.protocol,
            "simulated": self.simulated,
            "capabilities": [c.name for c in wire.Capability if c & h.capabilities],
            "clock_rate": h.clock_rate,
            "boot_count": h.boot_count,
            "zones": [{"id": z.id, "name": z.name, "area_cm2": z.area_cm2} for z in h.zones],
            "channels": [
                {
                    "id": c.id,
                    "zone": self.zone_name(c.zone),
                    "wavelength_nm": c.wavelength_nm,
                    "max_irradiance_mw_cm2": c.max_irradiance_mw_cm2,
                    "kind": c.kind,
                    "emitters": c.emitter_count,
                    "emitter_max_mw": c.emitter_max_mw,
                    "tempco_pct_per_k": c.tempco_pct_per_k,
                }
                for c in h.channels
            ],
            "limits": {
                "max_irradiance_mw_cm2": lim.max_irradiance_mw_cm2,
                "max_session_s": lim.max_session_s,
                "max_fluence_j_cm2": lim.max_fluence_j_cm2,
                "cutoff_c": lim.cutoff_c,
                "sensor_uncertainty_c": lim.sensor_uncertainty_c,
                "head_off_abort_s": lim.head_off_abort_s,
                "min_lease_ms": lim.min_lease_ms,
                "max_telemetry_hz": lim.max_telemetry_hz,
                "pulse_hz": [lim.min_pulse_hz, lim.max_pulse_hz],
            },
        }

"""The device description a cap announces: zones, channels, limits, HELLO_INFO.

Host and simulator both use these types (and :mod:`lllt.wire.profiles` to load a
packaged description), so there is one description of a device.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar

from lllt.wire.base import Message, _fl, _irr, _str, _take_str, _temp
from lllt.wire.constants import WireError
from lllt.wire.enums import Capability, MsgType


@dataclass(frozen=True, slots=True)
class ZoneInfo:
    """A scalp zone with its temperature sensor and two-node thermal model."""

    id: int
    name: str
    area_cm2: float
    c_board_j_k: float  # heat capacity of the emitter board
    c_scalp_j_k: float  # heat capacity of the scalp contact layer
    g_ambient_w_k: float  # board to ambient conductance
    g_contact_w_k: float  # board to scalp conductance
    g_tissue_w_k: float  # scalp to perfused tissue conductance
    t_core_c: float  # perfused tissue temperature

    @property
    def thermal_constants(self) -> tuple[float, float, float, float, float, float]:
        """The constants of the zone's thermal model, in field order: two zones with equal
        constants heat alike under equal load (the simulator and the thermal prediction
        share one model between such zones)."""
        return (
            self.c_board_j_k,
            self.c_scalp_j_k,
            self.g_ambient_w_k,
            self.g_contact_w_k,
            self.g_tissue_w_k,
            self.t_core_c,
        )


@dataclass(frozen=True, slots=True)
class ChannelInfo:
    """One independently driven group of emitters of one wavelength in one zone."""

    id: int
    zone: int  # zone id
    wavelength_nm: int
    max_irradiance_mw_cm2: float  # calibrated maximum at the scalp
    tempco_pct_per_k: float  # output change per kelvin (negative: falls when hot)
    kind: str  # "led" or "laser"
    emitter_count: int
    emitter_max_mw: float  # optical power of one emitter at maximum irradiance
    heat_board_w_per_mw_cm2: float  # board heat per mW/cm² of average output
    heat_scalp_w_per_mw_cm2: float  # heat absorbed in the scalp per mW/cm²


@dataclass(frozen=True, slots=True)
class DeviceLimits:
    """Hard limits enforced by the device itself; the host can never raise them."""

    max_irradiance_mw_cm2: float  # per channel
    max_session_s: float
    max_fluence_j_cm2: float  # per channel per session
    cutoff_c: float  # thermal cut-off (reading)
    sensor_uncertainty_c: float
    head_off_abort_s: float
    min_lease_ms: int
    max_telemetry_hz: int
    min_pulse_hz: float
    max_pulse_hz: float


_HELLO_HEAD = struct.Struct("<BBBBBHIHI16sH")
_LIMITS = struct.Struct("<HIIhhIIHII")
_ZONE_F = struct.Struct("<7f")
_CHAN = struct.Struct("<BBHHhBHHff")

_KIND_CODES = {"led": 0, "laser": 1}
_KIND_NAMES = {v: k for k, v in _KIND_CODES.items()}


@dataclass(frozen=True, slots=True)
class HelloInfo(Message):
    """The device's answer to HELLO: who it is, what it has, what it refuses."""

    TYPE: ClassVar[MsgType] = MsgType.HELLO_INFO
    major: int
    minor: int
    firmware: tuple[int, int, int]
    capabilities: Capability
    clock_rate: float  # device seconds per real second; 0 = lockstep virtual clock
    boot_count: int
    uptime_ms: int
    nonce: bytes
    max_payload: int
    limits: DeviceLimits
    model: str
    serial: str
    zones: tuple[ZoneInfo, ...]
    channels: tuple[ChannelInfo, ...]

    def payload(self) -> bytes:
        lim = self.limits
        out = bytearray(
            _HELLO_HEAD.pack(
                self.major,
                self.minor,
                *self.firmware,
                int(self.capabilities),
                round(self.clock_rate * 1000),
                self.boot_count,
                self.uptime_ms,
                self.nonce,
                self.max_payload,
            )
        )
        out += _LIMITS.pack(
            _irr(lim.max_irradiance_mw_cm2),
            round(lim.max_session_s * 1000),
            _fl(lim.max_fluence_j_cm2),
            _temp(lim.cutoff_c),
            _temp(lim.sensor_uncertainty_c),
            round(lim.head_off_abort_s * 1000),
            lim.min_lease_ms,
            lim.max_telemetry_hz,
            round(lim.min_pulse_hz * 1000),
            round(lim.max_pulse_hz * 1000),
        )
        out += _str(self.model) + _str(self.serial)
        out.append(len(self.zones))
        for z in self.zones:
            out.append(z.id)
            out += _str(z.name)
            out += _ZONE_F.pack(z.area_cm2, *z.thermal_constants)
        out.append(len(self.channels))
        for c in self.channels:
            out += _CHAN.pack(
                c.id,
                c.zone,
                c.wavelength_nm,
                _irr(c.max_irradiance_mw_cm2),
                round(c.tempco_pct_per_k * 1000),
                _KIND_CODES[c.kind],
                c.emitter_count,
                round(c.emitter_max_mw * 100),
                c.heat_board_w_per_mw_cm2,
                c.heat_scalp_w_per_mw_cm2,
            )
        return bytes(out)

    @classmethod
    def parse(cls, payload: bytes) -> HelloInfo:
        try:
            (major, minor, fa, fb, fc, caps, rate, boots, uptime, nonce, max_payload) = (
                _HELLO_HEAD.unpack_from(payload, 0)
            )
            off = _HELLO_HEAD.size
            (mi, ms, mf, cut, unc, head, lease, tel, pmin, pmax) = _LIMITS.unpack_from(payload, off)
            off += _LIMITS.size
            model, off = _take_str(payload, off)
            serial, off = _take_str(payload, off)
            zones = []
            nz = payload[off]
            off += 1
            for _ in range(nz):
                zid = payload[off]
                name, off = _take_str(payload, off + 1)
                vals = _ZONE_F.unpack_from(payload, off)
                off += _ZONE_F.size
                zones.append(ZoneInfo(zid, name, *(_f32(v) for v in vals)))
            channels = []
            n = payload[off]
            off += 1
            for _ in range(n):
                (cid, zone, wl, mx, tc, kind, count, emw, hb, hs) = _CHAN.unpack_from(payload, off)
                off += _CHAN.size
                channels.append(
                    ChannelInfo(
                        cid,
                        zone,
                        wl,
                        mx / 100,
                        tc / 1000,
                        _KIND_NAMES.get(kind, "led"),
                        count,
                        emw / 100,
                        _f32(hb),
                        _f32(hs),
                    )
                )
        except (struct.error, IndexError) as err:
            raise WireError(f"HELLO_INFO payload is truncated: {err}") from None
        if off != len(payload):
            raise WireError(f"HELLO_INFO has {len(payload) - off} unexpected trailing bytes")
        limits = DeviceLimits(
            mi / 100,
            ms / 1000,
            mf / 1e6,
            cut / 100,
            unc / 100,
            head / 1000,
            lease,
            tel,
            pmin / 1000,
            pmax / 1000,
        )
        return cls(
            major,
            minor,
            (fa, fb, fc),
            Capability(caps),
            rate / 1000,
            boots,
            uptime,
            nonce,
            max_payload,
            limits,
            model,
            serial,
            tuple(zones),
            tuple(channels),
        )


def _f32(v: float) -> float:
    """Round a float32 to the shortest decimal that reads back as the same float32."""
    for digits in range(6, 10):
        r = float(f"{v:.{digits}g}")
        if struct.unpack("<f", struct.pack("<f", r))[0] == v:
            return r
    return v

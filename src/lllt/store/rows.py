"""What the log holds, as frozen rows: sessions, phases, events, telemetry; and the
small conversions they share.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import IntEnum
from typing import TYPE_CHECKING, Any

from lllt import wire
from lllt.dose import most_dosed

if TYPE_CHECKING:
    from lllt.plan import SessionPlan
from lllt.store.schema import OPEN_STATUSES, Status


def iso_utc(t: float | None, *, ms: bool = False) -> str | None:
    """Epoch seconds as ISO 8601 UTC (``2025-01-31T10:00:00Z``)."""
    if t is None:
        return None
    text = datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds" if ms else "seconds")
    return text.replace("+00:00", "Z")


def _wl_json(values: Mapping[int, float]) -> str:
    return json.dumps({str(k): float(v) for k, v in sorted(values.items())})


def _wl_load(text: str | None) -> dict[int, float]:
    if not text:
        return {}
    return {int(k): float(v) for k, v in json.loads(text).items()}


def wavelength_fluence(
    by_channel: Mapping[int, float], channel_wavelength: Mapping[int, int]
) -> dict[int, float]:
    """J/cm² per wavelength: the most any of its channels received (:mod:`lllt.dose`)."""
    return most_dosed(by_channel, channel_wavelength)


# --- data types --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChannelRef:
    """One channel of the device, in HELLO table order (the order of telemetry arrays)."""

    id: int
    wavelength_nm: int
    zone: str


@dataclass(frozen=True, slots=True)
class PhasePlan:
    """One phase of the plan as the log keeps it: expected and maximum duration (s), planned
    fluence per wavelength (J/cm²)."""

    name: str
    kind: str  # "duration" or "fluence"
    planned_duration_s: float
    max_duration_s: float
    planned_fluence_j_cm2: Mapping[int, float]  # per wavelength


@dataclass(frozen=True)
class SessionStart:
    """Everything known about a session before the first emitter command."""

    protocol_id: str
    protocol_name: str
    protocol_text: str  # the protocol file as run
    device_serial: str
    device_model: str
    device_url: str
    simulated: bool
    channels: tuple[ChannelRef, ...]
    zones: tuple[str, ...]  # zone names in HELLO order
    phases: tuple[PhasePlan, ...]
    planned_fluence_j_cm2: Mapping[int, float]  # per wavelength
    planned_fluence_by_channel: Mapping[int, float] = field(default_factory=dict)
    expected_duration_s: float = 0.0
    max_duration_s: float = 0.0
    min_interval_s: float | None = None
    max_sessions_per_week: int | None = None
    research: bool = False
    plan_id: int | None = None
    cutoff_c: float | None = None  # the device's thermal cut-off
    sensor_uncertainty_c: float | None = None
    limits: Mapping[str, Any] = field(default_factory=dict)  # preflight summary (JSON-able)

    @classmethod
    def from_plan(
        cls,
        plan: SessionPlan,
        *,
        protocol_text: str,
        device_url: str,
        plan_id: int | None = None,
        limits: Mapping[str, Any] | None = None,
        research: bool | None = None,
    ) -> SessionStart:
        """Build from a compiled (and preflight-tightened) plan, its protocol and device.

        ``protocol_text`` is the file as run; ``limits`` the preflight summary to keep;
        ``research`` defaults to the protocol's own flag.
        """
        proto = plan.protocol
        schedule = proto.schedule
        dev = plan.device
        phases = tuple(
            PhasePlan(
                name=s.name,
                kind=s.kind.name.lower(),
                planned_duration_s=s.expected_duration_s,
                max_duration_s=s.max_duration_s,
                planned_fluence_j_cm2=dict(s.expected_fluence_j_cm2),
            )
            for s in plan.steps
        )
        return cls(
            protocol_id=proto.id,
            protocol_name=proto.name,
            protocol_text=protocol_text,
            device_serial=dev.serial,
            device_model=dev.model,
            device_url=device_url,
            simulated=dev.simulated,
            channels=tuple(
                ChannelRef(c.id, c.wavelength_nm, dev.zone_name(c.zone)) for c in dev.channels
            ),
            zones=tuple(z.name for z in dev.zones),
            phases=phases,
            planned_fluence_j_cm2=plan.fluence_by_wavelength(),
            planned_fluence_by_channel=plan.fluence_by_channel(),
            expected_duration_s=plan.expected_duration_s,
            max_duration_s=plan.max_duration_s,
            min_interval_s=None if schedule is None else schedule.min_interval,
            max_sessions_per_week=None if schedule is None else schedule.max_sessions_per_week,
            research=proto.research if research is None else research,
            plan_id=plan_id,
            cutoff_c=dev.limits.cutoff_c,
            sensor_uncertainty_c=dev.limits.sensor_uncertainty_c,
            limits=dict(limits or {}),
        )


@dataclass(frozen=True)
class SessionRow:
    """A session as stored."""

    id: int
    uuid: str
    created_at: float
    started_at: float | None
    ended_at: float | None
    heartbeat_at: float | None
    status: Status
    outcome: str
    reason: str
    note: str
    exit_code: int | None
    plan_id: int | None
    protocol_id: str
    protocol_name: str
    protocol_sha256: str
    protocol_text: str
    device_serial: str
    device_model: str
    device_url: str
    simulated: bool
    research: bool
    channels: tuple[ChannelRef, ...]
    zones: tuple[str, ...]
    cutoff_c: float | None
    sensor_uncertainty_c: float | None
    planned_fluence: dict[int, float]
    planned_by_channel: dict[int, float]
    delivered_fluence: dict[int, float]
    delivered_by_channel: dict[int, float]
    expected_duration_s: float | None
    max_duration_s: float | None
    actual_duration_s: float | None
    derated: bool
    min_derate_permille: int
    min_interval_s: float | None
    max_sessions_per_week: int | None
    limits: dict[str, Any]
    host_name: str
    host_pid: int
    host_token: str
    interrupted_at: float | None
    reconciled_at: float | None
    device_record: dict[str, Any]

    @property
    def counts(self) -> bool:
        """Whether this session may have emitted (counts for interval and weekly checks)."""
        # counted unless proven otherwise: a row still in a host's hands (pending, running)
        # may be about to emit, and a lost one (interrupted) may have emitted
        return self.started_at is not None or self.status in (Status.INTERRUPTED, *OPEN_STATUSES)

    @property
    def effective_end(self) -> float:
        """When the session ended, or the latest it may have ended if the host lost it."""
        if self.ended_at is not None:
            return self.ended_at
        begin = self.started_at if self.started_at is not None else self.created_at
        # the device runs a finite plan on its own after the host vanished (policy FINISH),
        # a fluence-target step possibly up to its maximum: assume the longest
        longest = max(self.expected_duration_s or 0.0, self.max_duration_s or 0.0)
        return max(begin + longest, self.heartbeat_at or begin)

    @property
    def duration_s(self) -> float | None:
        """How long the session ran, in seconds: the recorded duration (the device's emitting
        time) when there is one, else end minus start; None when neither is known."""
        if self.actual_duration_s is not None:
            return self.actual_duration_s
        if self.started_at is not None and self.ended_at is not None:
            return self.ended_at - self.started_at
        return None

    def to_dict(self, *, full: bool = False) -> dict[str, Any]:
        """JSON form (times ISO 8601 UTC, wavelengths as strings)."""
        out: dict[str, Any] = {
            "id": self.id,
            "uuid": self.uuid,
            "protocol_id": self.protocol_id,
            "protocol_name": self.protocol_name,
            "status": str(self.status),
            "outcome": self.outcome,
            "reason": self.reason,
            "note": self.note,
            "exit_code": self.exit_code,
            "created_at": iso_utc(self.created_at),
            "started_at": iso_utc(self.started_at),
            "ended_at": iso_utc(self.ended_at),
            "duration_s": self.duration_s,
            "expected_duration_s": self.expected_duration_s,
            "planned_fluence_j_cm2": {str(k): v for k, v in sorted(self.planned_fluence.items())},
            "delivered_fluence_j_cm2": {
                str(k): v for k, v in sorted(self.delivered_fluence.items())
            },
            "device_serial": self.device_serial,
            "device_model": self.device_model,
            "device_url": self.device_url,
            "simulated": self.simulated,
            "research": self.research,
            "derated": self.derated,
            "min_derate_permille": self.min_derate_permille,
            "plan_id": self.plan_id,
        }
        if full:
            out.update(
                {
                    "created_at": iso_utc(self.created_at, ms=True),
                    "started_at": iso_utc(self.started_at, ms=True),
                    "ended_at": iso_utc(self.ended_at, ms=True),
                    "interrupted_at": iso_utc(self.interrupted_at, ms=True),
                    "reconciled_at": iso_utc(self.reconciled_at, ms=True),
                    "protocol_sha256": self.protocol_sha256,
                    "protocol_text": self.protocol_text,
                    "max_duration_s": self.max_duration_s,
                    "planned_fluence_by_channel_j_cm2": {
                        str(k): v for k, v in sorted(self.planned_by_channel.items())
                    },
                    "delivered_fluence_by_channel_j_cm2": {
                        str(k): v for k, v in sorted(self.delivered_by_channel.items())
                    },
                    "channels": [
                        {"id": c.id, "wavelength_nm": c.wavelength_nm, "zone": c.zone}
                        for c in self.channels
                    ],
                    "zones": list(self.zones),
                    "cutoff_c": self.cutoff_c,
                    "sensor_uncertainty_c": self.sensor_uncertainty_c,
                    "min_interval_s": self.min_interval_s,
                    "max_sessions_per_week": self.max_sessions_per_week,
                    "limits": self.limits,
                    "device_record": self.device_record,
                    "host_name": self.host_name,
                    "host_pid": self.host_pid,
                }
            )
        return out


@dataclass(frozen=True, slots=True)
class PhaseRow:
    """One phase of a logged session: start and end (epoch seconds), planned and maximum
    duration (s), planned and delivered fluence per wavelength (J/cm²), and derating."""

    session_id: int
    index: int
    name: str
    kind: str
    started_at: float | None
    ended_at: float | None
    planned_duration_s: float | None
    max_duration_s: float | None
    planned_fluence: dict[int, float]
    delivered_fluence: dict[int, float]
    derated: bool
    min_derate_permille: int

    def to_dict(self) -> dict[str, Any]:
        """JSON form (times ISO 8601 UTC with milliseconds, wavelengths as strings)."""
        return {
            "index": self.index,
            "name": self.name,
            "kind": self.kind,
            "started_at": iso_utc(self.started_at, ms=True),
            "ended_at": iso_utc(self.ended_at, ms=True),
            "planned_duration_s": self.planned_duration_s,
            "max_duration_s": self.max_duration_s,
            "planned_fluence_j_cm2": {str(k): v for k, v in sorted(self.planned_fluence.items())},
            "delivered_fluence_j_cm2": {
                str(k): v for k, v in sorted(self.delivered_fluence.items())
            },
            "derated": self.derated,
            "min_derate_permille": self.min_derate_permille,
        }


@dataclass(frozen=True, slots=True)
class EventRow:
    """One logged event: host time ``t`` (epoch seconds), ``device_ms`` (device time, for the
    device's own events), ``source`` (``device`` or ``host``), ``kind`` and its data."""

    session_id: int
    t: float
    device_ms: int | None
    source: str  # "device" or "host"
    kind: str
    data: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """JSON form (time ISO 8601 UTC with milliseconds)."""
        return {
            "t": iso_utc(self.t, ms=True),
            "device_ms": self.device_ms,
            "source": self.source,
            "kind": self.kind,
            "data": self.data,
        }


@dataclass(frozen=True, slots=True)
class TelemetryRow:
    """One telemetry sample kept in the log: host time ``t`` (epoch seconds) and device time
    (ms), state, step, flags, output factor (permille), supply (mV); per channel in HELLO
    order the setpoint and measured irradiance (mW/cm²) and fluence (J/cm²); per zone the
    temperature (°C, None without a reading); the ambient (°C); ``kept``: why it was kept."""

    session_id: int
    t: float
    device_ms: int
    boot_count: int
    state: int
    step: int
    flags: int
    derate_permille: int
    supply_mv: int
    elapsed_ms: int
    setpoint: tuple[float, ...]
    irradiance: tuple[float, ...]
    fluence: tuple[float, ...]
    temperature: tuple[float | None, ...]
    ambient: float | None
    kept: str

    def to_dict(self) -> dict[str, Any]:
        """JSON form: time ISO 8601 UTC, state by name, step None when no step runs, keys naming
        their units."""
        try:
            state: Any = wire.State(self.state).name
        except ValueError:
            state = self.state
        return {
            "t": iso_utc(self.t, ms=True),
            "device_ms": self.device_ms,
            "boot_count": self.boot_count,
            "state": state,
            "step": None if self.step == wire.NO_INDEX else self.step,
            "flags": self.flags,
            "derate_permille": self.derate_permille,
            "supply_mv": self.supply_mv,
            "elapsed_ms": self.elapsed_ms,
            "setpoint_mw_cm2": list(self.setpoint),
            "irradiance_mw_cm2": list(self.irradiance),
            "fluence_j_cm2": list(self.fluence),
            "temperature_c": list(self.temperature),
            "ambient_c": self.ambient,
            "kept": self.kept,
        }


def _enum_name(enum: type[IntEnum], value: int) -> str:
    try:
        return enum(value).name.lower()
    except ValueError:
        return str(value)

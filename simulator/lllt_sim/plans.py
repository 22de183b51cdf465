"""The device's own reading and checking of an uploaded plan (wire spec §6).

Like firmware, the simulator parses the plan payload into integers in wire units
(0.01 mW/cm², µJ/cm², ms, mHz, 0.01 %) and checks it in the order the spec gives,
refusing with the first failure as a NACK. All dose arithmetic is exact integer
arithmetic, so a plan at exactly the device's limit is accepted and one a unit above is
not. It shares only the wire layout with the host; the checks are written afresh.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from lllt import wire

_PLAN_HEAD = struct.Struct("<IBIB")
_STEP_HEAD = struct.Struct("<BIIIHB")
_SETPOINT = struct.Struct("<BHI")

MAX_PLAN_ID = 2**31 - 1
FULL_DUTY = 10000  # 100.00 %


class Refused(Exception):
    """An upload the device refuses; ``nack`` is the reply."""

    def __init__(self, nack: wire.Nack) -> None:
        super().__init__(nack.detail)
        self.nack = nack


def _refuse(
    code: wire.NackCode,
    detail: str,
    *,
    channel: int = wire.NO_INDEX,
    limit: int = 0,
    observed: int = 0,
) -> Refused:
    return Refused(wire.Nack(code, channel, _i32(limit), _i32(observed), detail))


def _i32(v: int) -> int:
    return max(-(2**31), min(2**31 - 1, v))


@dataclass(frozen=True, slots=True)
class Setpoint:
    index: int  # position of the channel in the device's table
    channel: int  # channel id
    irr: int  # 0.01 mW/cm², on-state
    target_uj: int  # µJ/cm² (FLUENCE steps)


@dataclass(frozen=True, slots=True)
class Step:
    kind: int  # wire.StepKind
    duration_ms: int
    ramp_ms: int
    pulse_mhz: int
    duty: int  # 0.01 %
    setpoints: tuple[Setpoint, ...]


@dataclass(frozen=True, slots=True)
class Plan:
    plan_id: int
    policy: int  # wire.LinkPolicy
    lease_ms: int
    steps: tuple[Step, ...]


RawStep = tuple[int, int, int, int, int, list[tuple[int, int, int]]]


def parse(payload: bytes) -> tuple[int, int, int, list[RawStep]]:
    """Structure only: raises Refused(BAD_LENGTH) when the payload does not parse."""
    try:
        plan_id, policy, lease, n = _PLAN_HEAD.unpack_from(payload, 0)
        off = _PLAN_HEAD.size
        steps: list[RawStep] = []
        for _ in range(n):
            kind, dur, ramp, mhz, duty, nsp = _STEP_HEAD.unpack_from(payload, off)
            off += _STEP_HEAD.size
            sps = []
            for _ in range(nsp):
                sps.append(_SETPOINT.unpack_from(payload, off))
                off += _SETPOINT.size
            steps.append((kind, dur, ramp, mhz, duty, sps))
    except struct.error:
        raise _refuse(wire.NackCode.BAD_LENGTH, "plan payload is truncated") from None
    if off != len(payload):
        raise _refuse(
            wire.NackCode.BAD_LENGTH,
            f"plan has {len(payload) - off} bytes after its last step",
            limit=off,
            observed=len(payload),
        )
    return plan_id, policy, lease, steps


def check(
    payload: bytes,
    *,
    state: wire.State,
    limits: wire.DeviceLimits,
    channels: tuple[wire.ChannelInfo, ...],
) -> Plan:
    """Parse and check an upload in the spec's order; raises Refused with the first failure."""
    plan_id, policy, lease_ms, raw_steps = parse(payload)
    _check_header(state, plan_id, policy, lease_ms, raw_steps, limits)
    index = {c.id: i for i, c in enumerate(channels)}
    device_max = round(limits.max_irradiance_mw_cm2 * 100)
    pulse_mhz = (round(limits.min_pulse_hz * 1000), round(limits.max_pulse_hz * 1000))
    steps = [
        _check_step(si, raw, index, channels, device_max, pulse_mhz)
        for si, raw in enumerate(raw_steps)
    ]
    _check_duration(steps, limits)
    _check_fluence(steps, limits, channels)
    return Plan(plan_id, policy, lease_ms, tuple(steps))


def _check_header(
    state: wire.State,
    plan_id: int,
    policy: int,
    lease_ms: int,
    raw_steps: list[RawStep],
    limits: wire.DeviceLimits,
) -> None:
    """The device's state, then the plan's id, policy, sizes and lease (spec order)."""
    C = wire.NackCode
    if state == wire.State.FAULT:
        raise _refuse(C.FAULT_LATCHED, "a fault is latched; clear it first")
    if state in (wire.State.RUNNING, wire.State.PAUSED):
        raise _refuse(C.BAD_STATE, "a session is running; abort it first", observed=state)
    if not 1 <= plan_id <= MAX_PLAN_ID:
        raise _refuse(C.BAD_VALUE, "plan id must be 1 to 2^31-1", observed=plan_id)
    if policy not in (wire.LinkPolicy.FINISH, wire.LinkPolicy.STOP):
        raise _refuse(C.BAD_VALUE, f"unknown link-loss policy {policy}", observed=policy)
    if not 1 <= len(raw_steps) <= wire.MAX_STEPS:
        raise _refuse(
            C.TOO_LARGE,
            f"a plan has 1 to {wire.MAX_STEPS} steps",
            limit=wire.MAX_STEPS,
            observed=len(raw_steps),
        )
    for i, (_, _, _, _, _, sps) in enumerate(raw_steps):
        if not 1 <= len(sps) <= wire.MAX_CHANNELS:
            raise _refuse(
                C.TOO_LARGE,
                f"step {i}: a step has 1 to {wire.MAX_CHANNELS} setpoints",
                limit=wire.MAX_CHANNELS,
                observed=len(sps),
            )
    if lease_ms < limits.min_lease_ms:
        raise _refuse(
            C.BAD_VALUE,
            f"lease {lease_ms} ms is below the device's {limits.min_lease_ms} ms",
            limit=limits.min_lease_ms,
            observed=lease_ms,
        )


def _check_step(
    si: int,
    raw: RawStep,
    index: dict[int, int],
    channels: tuple[wire.ChannelInfo, ...],
    device_max: int,
    pulse_mhz: tuple[int, int],
) -> Step:
    """Step ``si``: kind, setpoints, timing and pulse, fluence targets (spec order)."""
    kind, dur, ramp, mhz, duty, sps = raw
    if kind not in (wire.StepKind.DURATION, wire.StepKind.FLUENCE):
        raise _refuse(
            wire.NackCode.BAD_VALUE, f"step {si}: unknown step kind {kind}", observed=kind
        )
    _check_setpoints(si, sps, index, channels, device_max)
    _check_timing(si, dur, ramp, mhz, duty, pulse_mhz)
    _check_targets(si, kind, sps)
    return Step(
        kind, dur, ramp, mhz, duty, tuple(Setpoint(index[ch], ch, irr, tgt) for ch, irr, tgt in sps)
    )


def _check_setpoints(
    si: int,
    sps: list[tuple[int, int, int]],
    index: dict[int, int],
    channels: tuple[wire.ChannelInfo, ...],
    device_max: int,
) -> None:
    """Step ``si``'s channels: known, each once, within the device's and their own maxima."""
    C = wire.NackCode
    for ch, _, _ in sps:
        if ch not in index:
            raise _refuse(C.UNKNOWN_CHANNEL, f"step {si}: no channel {ch}", channel=ch, observed=ch)
    seen: set[int] = set()
    for ch, _, _ in sps:
        if ch in seen:
            raise _refuse(C.BAD_VALUE, f"step {si}: channel {ch} given twice", channel=ch)
        seen.add(ch)
    for ch, irr, _ in sps:
        cap = min(device_max, round(channels[index[ch]].max_irradiance_mw_cm2 * 100))
        if irr > cap:
            raise _refuse(
                C.LIMIT_IRRADIANCE,
                f"step {si}: channel {ch} {irr / 100:.2f} > {cap / 100:.2f} mW/cm2",
                channel=ch,
                limit=cap,
                observed=irr,
            )


def _check_timing(
    si: int, dur: int, ramp: int, mhz: int, duty: int, pulse_mhz: tuple[int, int]
) -> None:
    """Step ``si``'s duration and ramp, then its pulse frequency and duty."""
    C = wire.NackCode
    if dur <= 0:
        raise _refuse(C.BAD_VALUE, f"step {si}: duration must be > 0", observed=dur)
    if ramp > dur:
        raise _refuse(
            C.BAD_VALUE, f"step {si}: ramp longer than the step", limit=dur, observed=ramp
        )
    if mhz == 0:
        if duty != FULL_DUTY:
            raise _refuse(
                C.PULSE_RANGE,
                f"step {si}: continuous wave needs duty 100 %",
                limit=FULL_DUTY,
                observed=duty,
            )
        return
    min_mhz, max_mhz = pulse_mhz
    if not min_mhz <= mhz <= max_mhz:
        lim = min_mhz if mhz < min_mhz else max_mhz
        raise _refuse(
            C.PULSE_RANGE,
            f"step {si}: pulse {mhz / 1000:g} Hz outside {min_mhz / 1000:g}-{max_mhz / 1000:g} Hz",
            limit=lim,
            observed=mhz,
        )
    if not 100 <= duty <= FULL_DUTY:
        raise _refuse(
            C.PULSE_RANGE,
            f"step {si}: duty {duty / 100:g} % outside 1-100 %",
            limit=100 if duty < 100 else FULL_DUTY,
            observed=duty,
        )


def _check_targets(si: int, kind: int, sps: list[tuple[int, int, int]]) -> None:
    """Step ``si``'s fluence targets: none on a duration step, one per channel on a fluence step."""
    for ch, _, tgt in sps:
        if kind == wire.StepKind.DURATION and tgt != 0:
            raise _refuse(
                wire.NackCode.BAD_VALUE,
                f"step {si}: a duration step takes no fluence target (channel {ch})",
                channel=ch,
                observed=tgt,
            )
        if kind == wire.StepKind.FLUENCE and tgt == 0:
            raise _refuse(
                wire.NackCode.BAD_VALUE,
                f"step {si}: a fluence step needs a target for channel {ch}",
                channel=ch,
            )


def _check_duration(steps: list[Step], limits: wire.DeviceLimits) -> None:
    """The whole plan within the device's maximum session length."""
    total = sum(s.duration_ms for s in steps)
    max_ms = round(limits.max_session_s * 1000)
    if total > max_ms:
        raise _refuse(
            wire.NackCode.LIMIT_DURATION,
            f"plan runs {total / 1000:g} s, above the device's {max_ms / 1000:g} s",
            limit=max_ms,
            observed=total,
        )


def _check_fluence(
    steps: list[Step], limits: wire.DeviceLimits, channels: tuple[wire.ChannelInfo, ...]
) -> None:
    """Planned fluence per channel within the device maximum, in exact integers.

    DURATION: irr [0.01 mW/cm²] × duty [0.01 %] × (2·duration − ramp) [ms] / 2 gives
    units of 5e-13 J/cm², i.e. µJ/cm² × 2,000,000. FLUENCE: the target itself.
    """
    scale = 2_000_000
    planned = [0] * len(channels)
    for s in steps:
        for sp in s.setpoints:
            if s.kind == wire.StepKind.DURATION:
                planned[sp.index] += sp.irr * s.duty * (2 * s.duration_ms - s.ramp_ms)
            else:
                planned[sp.index] += sp.target_uj * scale
    max_uj = round(limits.max_fluence_j_cm2 * 1e6)
    for i, amount in enumerate(planned):
        if amount > max_uj * scale:
            uj = -(-amount // scale)
            raise Refused(
                wire.Nack(
                    wire.NackCode.LIMIT_FLUENCE,
                    channels[i].id,
                    _i32(max_uj),
                    _i32(uj),
                    f"channel {channels[i].id}: {uj / 1e6:.3f} > {max_uj / 1e6:g} J/cm2",
                )
            )


def planned_fluence_uj(plan: Plan, n_channels: int) -> list[int]:
    """Planned µJ/cm² per channel (rounded up), for reports and tests."""
    scale = 2_000_000
    out = [0] * n_channels
    for s in plan.steps:
        for sp in s.setpoints:
            if s.kind == wire.StepKind.DURATION:
                out[sp.index] += sp.irr * s.duty * (2 * s.duration_ms - s.ramp_ms)
            else:
                out[sp.index] += sp.target_uj * scale
    return [-(-v // scale) for v in out]

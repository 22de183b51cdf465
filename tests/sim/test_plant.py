"""The plant on its own (``lllt_sim.plant``) is the engine's physics, number for number.

``fw://`` runs the C firmware against :class:`Plant`; the differential test compares it
with ``sim://``. That comparison means something only if both feel the same physics, so
here the plant, driven with the commands the simulated cap gave, must read what the
simulated cap's own telemetry read: the same thermistor readings (noise included) at the
same ticks, the same measured outputs and supply.
"""

from __future__ import annotations

import asyncio

import pytest

from lllt import wire as W
from lllt_sim.engine import Engine, _u2uj
from lllt_sim.plant import Plant

from ._support import ALL_FARRED, ALL_RED, Host, plan, simulate, step


@pytest.mark.parametrize("seed", [0, 7])
def test_constants_are_the_engines(seed: int) -> None:
    e = Engine("reference-cap", seed=seed, ambient_c=28.0)
    p = Plant("reference-cap", seed=seed, ambient_c=28.0)
    assert p.tolerance == e.tolerance
    assert p._noise == e._noise
    assert p._noise_mix == e._noise_mix
    assert p._noise_zone == e._noise_zone
    assert p.tb == e._ph.tb and p.ts == e._ph.ts
    assert [p.reading_q(z) for z in range(p.n_z)] == e._readings(0, e._ph.ts)


def _replay(tel: list[W.Telemetry], start_ms: int, seed: int, faults: str) -> Plant:
    """Drive a plant with the setpoints the telemetry shows and compare every sample."""
    p = Plant("reference-cap", seed=seed, faults=faults)
    T = p.tick_ms
    by_tick = {t.time_ms // T: t for t in tel if t.time_ms % T == 0}
    assert len(by_tick) > 100
    p.arm(start_ms)
    checked = 0
    last = max(by_tick)
    sp = [0] * p.n_ch
    while p.tick <= last:
        p.due_faults()
        t = by_tick.get(p.tick)
        if t is not None:
            # the supply is sensed first, under the load of the interval that ended (the
            # firmware senses, then acts; differential seed 4877)
            assert p.supply_mv() == t.supply_mv, t.time_ms
            # the sample shows the commands for the interval starting at this tick
            sp = list(t.setpoint)
            for i in range(p.n_ch):
                p.command(i, round(sp[i] * 100), 10000)
            assert [p.reading_q(z) for z in range(p.n_z)] == [
                round(v * 100) for v in t.temperature
            ], t.time_ms
            assert [p.measured_q(i) for i in range(p.n_ch)] == [
                round(v * 100) for v in t.irradiance
            ], t.time_ms
            checked += 1
        p.advance()
    assert checked == len(by_tick)
    return p


@pytest.mark.parametrize(
    ("faults", "emit"),
    [
        ("", dict.fromkeys(ALL_RED, 3.0)),
        # full output on both wavelengths: the board warms until the outputs saturate
        ("", dict.fromkeys(ALL_RED + ALL_FARRED, 10.0)),
        ("overtemp:1@5s,led_open:2@3s+4s,brownout@40s+1s", dict.fromkeys(ALL_RED, 5.0)),
    ],
)
def test_plant_reads_what_the_simulated_cap_read(faults: str, emit: dict[int, float]) -> None:
    seed = 3

    async def body(host: Host) -> tuple[list[W.Telemetry], int, W.SessionRecord]:
        host.hello()
        assert isinstance(host.request(W.SetTelemetry(10)), W.Ack)
        await asyncio.sleep(0.105)  # start between two ticks
        started = host.start_plan(plan(step(60.0, emit)))
        await host.until(lambda: bool(host.events(W.EventKind.SESSION_END)), 120.0)
        await asyncio.sleep(0.5)
        return host.telemetry(), started.start_ms, host.records()[0]

    tel, start_ms, record = simulate(body, seed=seed, faults=faults)
    plant = _replay(tel, start_ms, seed, faults)
    # the light the plant counts as emitted is the fluence the simulated cap recorded
    assert [_u2uj(u) for u in plant.emitted] == [round(f * 1e6) for f in record.fluence]
    assert plant.emitting_ticks * plant.tick_ms == record.emitting_ms


def test_idle_jumps_are_the_ticks_they_replace() -> None:
    """A dark stretch in closed form lands where the ticks would, and never jumps over a
    tick at which a reading could reach a threshold (here an overtemp heats an idle cap)."""
    a = Plant("reference-cap", seed=5, faults="overtemp:top@1s")
    b = Plant("reference-cap", seed=5, faults="overtemp:top@1s")
    a.arm(0)
    b.arm(0)
    jumped = 0
    while a.tick < 200_000:
        a.due_faults()
        n = a.quiet_ticks(5000)
        if n:
            a.jump(n)
            jumped += n
        else:
            a.advance()
    while b.tick < a.tick:
        b.due_faults()
        b.advance()
    assert jumped > 190_000  # ticking only near the cut-off (from about 300 s)
    for z in range(a.n_z):
        assert a.tb[z] == pytest.approx(b.tb[z], abs=1e-9)
        assert a.ts[z] == pytest.approx(b.ts[z], abs=1e-9)
    assert a.reading_q(1) >= 4250  # the heated zone passed the cut-off (and was latched)
    c = Plant("reference-cap", seed=5)
    c.command(0, 500, 10000)
    assert c.quiet_ticks(100) == 0  # a channel emits: no closed form here

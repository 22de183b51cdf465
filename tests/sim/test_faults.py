"""Named faults: the grammar, and what each one does to a session (DESIGN §9, §11).

Every fault ends in a documented safe state with a complete session record; the
interlock each one trips is tested to the tick in test_interlocks.py.
"""

from __future__ import annotations

import asyncio

import pytest

from lllt import wire as W
from lllt_sim.device import SimDevice
from lllt_sim.faults import Fault, parse_faults, parse_time

from ._support import Host, red, simulate

EK = W.EventKind
IL = W.Interlock

# --- grammar ---------------------------------------------------------------------------------


def test_grammar_examples() -> None:
    assert parse_faults("overtemp@300s,led_open:3@10s,corrupt:0.01") == [
        Fault("overtemp", None, 300.0, None),
        Fault("led_open", 3, 10.0, None),
        Fault("corrupt", 0.01, 0.0, None),
    ]
    assert parse_faults(" link_drop@1500ms+2.5s , head_off+5min ") == [
        Fault("link_drop", None, 1.5, 2.5),
        Fault("head_off", None, 0.0, 300.0),
    ]
    assert parse_faults("overtemp:top,thermistor_short:2@1h") == [
        Fault("overtemp", "top", 0.0, None),
        Fault("thermistor_short", 2, 3600.0, None),
    ]
    assert parse_faults("") == [] and parse_faults(None) == []
    assert str(Fault("led_open", 3, 10.0, 2.0)) == "led_open:3@10s+2s"
    assert parse_time("2.5s") == 2.5 and parse_time("1500ms") == 1.5


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("overheat@3s", ["'overheat'", "valid faults", "overtemp", "stuck_on:CHANNEL"]),
        ("overtemp@300", ["overtemp@300", "unit", "name[:arg][@time][+duration]"]),
        ("led_open", ["led_open", "needs an argument", "led_open:CHANNEL"]),
        ("led_open:x", ["channel id", "'x'"]),
        ("corrupt:2", ["probability", "'2'"]),
        ("corrupt:abc", ["probability"]),
        ("brownout:1", ["takes no argument"]),
        ("reboot+5s", ["instantaneous"]),
        ("head_off+0s", ["positive"]),
        ("overtemp,,reboot", ["empty item"]),
        ("stuck_on:1@soon", ["bad trigger time", "'soon'"]),
    ],
)
def test_bad_specs_name_the_item_and_the_grammar(spec: str, words: list[str]) -> None:
    with pytest.raises(ValueError) as err:
        parse_faults(spec)
    text = str(err.value)
    for w in words:
        assert w in text, (w, text)


def test_the_device_checks_zones_and_channels_against_its_profile() -> None:
    with pytest.raises(ValueError, match=r"no zone 'nape'.*0 \(front\)"):
        SimDevice("reference-cap", faults="overtemp:nape")
    with pytest.raises(ValueError, match="no channel 9; channels: 0, 1, 2"):
        SimDevice("reference-cap", faults="stuck_on:9")
    SimDevice("reference-cap", faults="overtemp:crown,thermistor_open:3,led_open:7")


# --- effects ---------------------------------------------------------------------------------


def test_faults_count_from_the_first_start() -> None:
    async def body(h: Host) -> None:
        h.hello()
        await asyncio.sleep(10)  # nothing happens before a session starts
        assert h.events(EK.BOOT) == []
        h.start_plan(red(3.0, 60))
        await asyncio.sleep(3)
        (boot,) = h.events(EK.BOOT)
        assert h.received[-1].t >= 12.0
        assert boot.value == 2

    simulate(body, faults="reboot@2s")


def test_overtemp_reaches_the_cutoff_within_minutes_and_latches() -> None:
    async def body(h: Host) -> None:
        h.hello()
        h.request(W.SetTelemetry(1000))
        h.start_plan(red(3.0, 1500))
        await h.until(lambda: bool(h.events(EK.INTERLOCK)), 600, 1.0)
        (il, *_) = h.events(EK.INTERLOCK)
        assert il.a == IL.THERMAL_CUTOFF and il.b == 1  # zone "top"
        assert 60_000 < il.time_ms < 360_000
        assert h.dev.state == W.State.FAULT
        rec = h.records()[0]
        assert rec.outcome == W.Outcome.INTERLOCK and rec.reason == IL.THERMAL_CUTOFF
        n = h.request(W.ClearFault())  # still hot: refused
        assert isinstance(n, W.Nack) and n.code == W.NackCode.FAULT_LATCHED

    simulate(body, faults="overtemp:top")


def test_led_open_darkens_one_channel_and_the_session_goes_on() -> None:
    async def body(h: Host) -> None:
        h.hello()
        h.start_plan(red(3.0, 20))
        await asyncio.sleep(5)
        tel = h.last_telemetry()
        assert tel.setpoint[2] == 3.0 and tel.irradiance[2] == 0.0
        assert tel.irradiance[0] == 3.0 and tel.emitting
        await asyncio.sleep(20)
        assert h.session_end().a == W.Outcome.COMPLETED
        rec = h.records()[0]
        assert rec.fluence[2] == pytest.approx(3.0 * 0.99 / 1000, abs=1e-6)  # dark after 1 s
        assert rec.fluence[0] == pytest.approx(3.0 * 20 / 1000, abs=1e-6)

    simulate(body, faults="led_open:2@1s")


def test_link_drop_loses_bytes_both_ways_then_recovers() -> None:
    async def body(h: Host) -> None:
        h.hello()
        h.start_plan(red(3.0, 20))
        await asyncio.sleep(2.5)
        before = len(h.received)
        h.dev.feed(W.encode_message(W.GetStatus(), 999))
        assert len(h.received) == before  # no answer: the request was lost
        await asyncio.sleep(3)
        silent = [r for r in h.received if 2.0 < r.t < 5.0]
        assert silent == []
        assert h.dev.stats["dropped_in"] > 0 and h.dev.stats["dropped_out"] > 0
        assert isinstance(h.request(W.GetStatus()), W.Status)  # back at 5 s
        await asyncio.sleep(20)
        assert h.session_end().a == W.Outcome.COMPLETED  # FINISH: the lease was long

    simulate(body, faults="link_drop@2s+3s")


def test_corruption_is_counted_dropped_and_seeded() -> None:
    def run(seed: int) -> tuple[bytes, dict[str, int], int]:
        async def body(h: Host) -> tuple[bytes, dict[str, int], int]:
            h.strict = False  # a corrupted frame may pass its CRC and still not parse
            h.hello()
            h.start_plan(red(3.0, 30))
            answered = 0
            for _ in range(200):
                await asyncio.sleep(0.05)
                before = len(h.received)
                h.seq += 1
                h.dev.feed(W.encode_message(W.GetStatus(), h.seq))
                answered += any(r.frame.seq == h.seq for r in h.received[before:])
            await asyncio.sleep(25)
            return bytes(h.raw), h.dev.stats, answered

        return simulate(body, seed=seed, faults="corrupt:0.002")

    raw_a, stats, answered = run(5)
    raw_b, _, _ = run(5)
    assert raw_a == raw_b  # same seed, same corrupted bytes
    assert stats["corrupted_out"] > 0 and stats["corrupted_in"] > 0
    assert stats["decoder_crc_errors"] + stats["decoder_cobs_errors"] > 0
    assert 100 < answered < 200  # most requests survive, some do not
    dec = W.FrameDecoder()
    dec.feed(raw_a)
    assert dec.stats.bad_frames > 0 and dec.stats.frames > 100


def test_reboot_ends_emission_and_leaves_a_power_loss_record() -> None:
    async def body(h: Host) -> None:
        info = h.hello()
        assert info.boot_count == 1
        h.start_plan(red(3.0, 60))
        await asyncio.sleep(7)
        (boot,) = h.events(EK.BOOT)
        assert boot.a == W.BootCause.WATCHDOG and boot.value == 2 and boot.time_ms == 0
        tel = h.last_telemetry()
        assert tel.boot_count == 2 and tel.state == W.State.IDLE and not tel.emitting
        assert tel.time_ms < 2000  # device time restarted at the reboot
        # the host must HELLO again: its old nonce no longer signs anything
        n = h.request(W.Start(1), sign=True)
        assert isinstance(n, W.Nack) and n.code == W.NackCode.AUTH_FAILED
        assert h.hello().boot_count == 2
        rec = h.records()[0]
        assert rec.outcome == W.Outcome.POWER_LOSS and rec.boot_count == 1
        # the last checkpoint (5.0 s) is at most a second old
        assert rec.end_ms == 5000
        assert rec.fluence[0] == pytest.approx(3.0 * 4.99 / 1000, abs=1e-6)
        assert h.events(EK.SESSION_END) == []  # the device reset; the record says what happened
        started = h.request(W.Start(1), sign=True)
        assert isinstance(started, W.Started)
        assert started.result == W.StartResult.ALREADY_FINISHED

    simulate(body, faults="reboot@5.5s")


def test_a_fault_still_present_after_a_reboot_trips_at_the_first_control_tick() -> None:
    """RAM is lost in a reset, latched interlocks with it; the sensor is still broken, so
    the device latches it again, at its first control tick after BOOT (one tick later),
    as the firmware does, not in the reset's own tick."""

    async def body(h: Host) -> None:
        h.hello()
        h.start_plan(red(3.0, 60))
        await asyncio.sleep(8)
        first, again = h.events(EK.INTERLOCK)
        assert first.a == again.a == IL.SENSOR_FAULT
        (boot,) = h.events(EK.BOOT)
        assert boot.time_ms == 0 and again.time_ms == 10  # device time restarts at BOOT
        assert h.last_telemetry().state == W.State.FAULT

    simulate(body, faults="thermistor_open:0@2s,reboot@5.5s")


def test_head_off_pauses_and_the_session_resumes_when_the_head_returns() -> None:
    async def body(h: Host) -> None:
        h.hello()
        h.start_plan(red(3.0, 20))
        await asyncio.sleep(40)
        heads = h.events(EK.HEAD)
        assert [(e.a, e.time_ms) for e in heads] == [(0, 5000), (1, 15000)]
        states = [(e.a, e.time_ms) for e in h.events(EK.STATE)]
        assert (W.State.PAUSED, 5000) in states and (W.State.RUNNING, 15000) in states
        end = h.session_end()
        assert end.a == W.Outcome.COMPLETED and end.time_ms == 30_010  # 10 s later
        rec = h.records()[0]
        assert rec.fluence[0] == pytest.approx(3.0 * 20 / 1000, abs=1e-6)

    simulate(body, faults="head_off@5s+10s")


def test_brownout_with_a_duration_can_be_cleared_afterwards() -> None:
    async def body(h: Host) -> None:
        h.hello()
        h.start_plan(red(3.0, 20))
        await asyncio.sleep(3)
        assert h.dev.state == W.State.FAULT
        n = h.request(W.ClearFault())
        assert isinstance(n, W.Nack) and n.code == W.NackCode.FAULT_LATCHED
        await asyncio.sleep(2)  # the supply is back at 4 s
        assert isinstance(h.request(W.ClearFault()), W.Ack)
        assert h.dev.state == W.State.IDLE

    simulate(body, faults="brownout@2s+2s")

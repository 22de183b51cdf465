"""Nothing a host sends can crash the device, and a run depends on the seed and the
requests only: the same timeline gives the same bytes at every loop speed."""

from __future__ import annotations

import asyncio

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lllt import clock
from lllt import wire as W
from lllt_sim.device import SimDevice

from ._support import Host, plan, red, simulate, step

_SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _fed(chunks: list[bytes]) -> SimDevice:
    """A device fed ``chunks`` 20 ms apart on the virtual clock."""

    async def main() -> SimDevice:
        dev = SimDevice("reference-cap", seed=1)
        out = bytearray()
        dev.attach(out.extend)
        task = asyncio.get_running_loop().create_task(dev.run())
        for chunk in chunks:
            dev.feed(chunk)
            await asyncio.sleep(0.02)
        dev.close()
        await task
        # whatever came in, what goes out is well-formed
        dec = W.FrameDecoder()
        for frame in dec.feed(bytes(out)):
            W.decode_message(frame)
        assert dec.stats.bad_frames == 0
        return dev

    return clock.run(main(), virtual=True)


@_SETTINGS
@given(st.lists(st.binary(max_size=300), max_size=20))
def test_random_bytes_never_raise(chunks: list[bytes]) -> None:
    dev = _fed(chunks)
    assert dev.stats["internal_errors"] == 0, dev.last_error


_types = st.sampled_from([int(t) for t in W.MsgType] + [0, 0x20, 0x3F, 0x7F, 0xFF])


@st.composite
def _frames(draw: st.DrawFn) -> bytes:
    """Well-framed requests with random types, flags, versions and payloads."""
    payload = draw(st.binary(max_size=200))
    flags = draw(st.sampled_from([0, 0, W.FLAG_AUTH, 0xFE]))
    version = draw(st.sampled_from([1, 1, 1, 0, 2]))
    return W.encode_frame(
        draw(_types), draw(st.integers(0, 0xFFFF)), payload, flags=flags, version=version
    )


@_SETTINGS
@given(st.lists(_frames(), max_size=25))
def test_random_frames_get_answers_never_crashes(frames: list[bytes]) -> None:
    dev = _fed([W.encode_message(W.Hello(), 1), *frames])
    assert dev.stats["internal_errors"] == 0, dev.last_error


def test_garbage_is_counted_and_the_decoder_resynchronises() -> None:
    async def body(h: Host) -> None:
        h.dev.feed(b"\x13\x37garbage\xff\xfe" * 10 + b"\x00")
        h.dev.feed(W.encode_frame(W.MsgType.GET_STATUS, 5)[:-3] + b"\x00")  # bad CRC
        st = h.status()  # the next good frame is answered
        assert isinstance(st, W.Status)
        stats = h.dev.stats
        assert stats["decoder_bytes_dropped"] > 100
        assert stats["decoder_crc_errors"] + stats["decoder_cobs_errors"] >= 2

    simulate(body)


def _scenario(h: Host) -> asyncio.Future[bytes]:
    """A session with a ramp, derate, pause/resume and heartbeats on a lossy link."""

    async def body() -> bytes:
        h.strict = False
        h.hello()
        h.start_plan(plan(step(6, dict.fromkeys(range(8), 7.0), ramp_s=2), step(4, {0: 3.0})))
        await asyncio.sleep(1.23)
        h.send(W.Derate(600))
        await asyncio.sleep(0.5)
        h.send(W.Pause())
        await asyncio.sleep(0.777)
        h.send(W.Resume(), sign=True)
        await asyncio.sleep(1.0)
        h.send(W.SetTelemetry(30))
        for _ in range(20):
            await asyncio.sleep(0.1)
            h.send(W.Heartbeat())
        await asyncio.sleep(8)
        h.send(red(2.0, 1.5, plan_id=2), sign=True)
        h.send(W.Start(2), sign=True)
        await asyncio.sleep(2)
        return bytes(h.raw)

    return asyncio.ensure_future(body())


def test_same_seed_same_bytes_at_every_speed() -> None:
    async def body(h: Host) -> bytes:
        return await _scenario(h)

    faults = "head_off@3s+0.5s,corrupt:0.0005@1s,led_open:3@2s"
    fast = simulate(body, seed=7, faults=faults, speed=None)
    paced = simulate(body, seed=7, faults=faults, speed=50)
    assert len(fast) > 10_000
    assert fast == paced
    dec = W.FrameDecoder()
    assert len(dec.feed(fast)) > 300 and dec.stats.crc_errors > 0  # the link was lossy
    other = simulate(body, seed=8, faults=faults, speed=None)
    assert other != fast


def test_a_frame_cut_by_a_disconnect_is_dropped() -> None:
    """Wire spec (transports): bytes of a frame cut by a disconnect are discarded, so the
    next connection's first request is answered (the firmware does the same; a sim that
    kept them swallowed that request: differential seed 4877)."""

    async def body(h: Host) -> None:
        cut = W.encode_frame(W.MsgType.GET_STATUS, 7)[:-4]  # no delimiter: a frame cut short
        h.dev.feed(cut)
        h.dev.link_closed()
        st = h.status()
        assert isinstance(st, W.Status)

    simulate(body)

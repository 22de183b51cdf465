"""Timers due at the same virtual instant run in the order they were set.

asyncio breaks ties between equal times by the shape of its timer heap, which depends on
every other timer; on lllt's virtual clock many timers share an instant, so without this
a device's own timers (one per control tick on ``fw://``) could reorder a host's
callbacks and two runs of one seed could differ (found by the sim/fw differential test,
explorer seed 56).
"""

from __future__ import annotations

import asyncio
import random

import pytest

from lllt import clock


def test_equal_times_keep_insertion_order_whatever_else_is_scheduled() -> None:
    async def main(noise: int) -> list[int]:
        loop = asyncio.get_running_loop()
        order: list[int] = []
        rng = random.Random(noise)
        # unrelated timers around and at the same instant, set before and in between
        for _ in range(noise):
            loop.call_at(loop.time() + rng.choice([0.5, 1.0, 1.5]), lambda: None)
        for i in range(20):
            loop.call_at(loop.time() + 1.0, order.append, i)
            for _ in range(rng.randrange(3)):
                loop.call_at(loop.time() + rng.choice([0.25, 1.0, 2.0]), lambda: None)
        await asyncio.sleep(3.0)
        return order

    for noise in (0, 7, 50, 333):
        assert clock.run(main(noise), virtual=True) == list(range(20))


def test_cancelled_timers_and_call_later_still_work() -> None:
    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        out: list[str] = []
        h = loop.call_later(1.0, out.append, "cancelled")
        loop.call_later(1.0, out.append, "a")
        loop.call_later(0.5, out.append, "b")
        h.cancel()
        await asyncio.sleep(2.0)
        return out

    assert clock.run(main(), virtual=True) == ["b", "a"]


def test_a_device_timer_runs_before_host_timers_of_its_instant_set_earlier() -> None:
    """Seeds 110 and 552 of the differential: a host heartbeat (or silence deadline) and
    a device frame at one instant went in the order the timers were set, which differs
    between the simulator (plans ahead) and the firmware (sets its tick 10 ms before)."""
    from lllt_sim.link import device_timer

    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        out: list[str] = []
        loop.call_at(1.0, out.append, "host, set first")
        device_timer(loop, 1.0, lambda: out.append("device"))
        device_timer(loop, 1.0, lambda: out.append("device again"))
        loop.call_at(0.5, out.append, "earlier")
        await asyncio.sleep(2.0)
        return out

    assert clock.run(main(), virtual=True) == [
        "earlier",
        "device",
        "device again",
        "host, set first",
    ]


def test_settle_lets_what_else_falls_on_the_instant_run_first() -> None:
    """The silence watchdog settles before it decides: a frame of the deadline's own
    instant, however many hops it takes to reach the monitor, still counts."""

    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        out: list[str] = []

        def hop(n: int) -> None:  # a chain of callbacks, as a frame's way to the monitor
            if n:
                loop.call_soon(hop, n - 1)
            else:
                out.append("frame")

        loop.call_at(1.0, hop, 5)
        await asyncio.sleep(1.0 - loop.time())
        await clock.settle()
        out.append("decision")
        return out

    assert clock.run(main(), virtual=True) == ["frame", "decision"]


def test_settle_on_an_ordinary_loop_returns_at_once() -> None:
    async def main() -> bool:
        loop = asyncio.get_running_loop()
        seen: list[int] = []
        loop.call_soon(seen.append, 1)
        await clock.settle()
        return not seen  # nothing else was let run first

    assert asyncio.run(main())


def test_a_device_runs_ahead_only_strictly_before_the_next_timer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``run_ahead`` lets a device's callback act at a later instant without a trip
    through the loop, but never at (or within the clock's resolution before) an instant
    where another timer is due: that timer must run in the same loop iteration as the
    device's action, as it would have. Nor while a paced loop follows real time."""
    # the look at real I/O every wall millisecond would make this depend on the machine
    monkeypatch.setattr(clock, "_REAL_POLL_INTERVAL", 3600.0)

    async def main() -> list[object]:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, clock.VirtualClockLoop)
        out: list[object] = []

        def device() -> None:
            out.append(loop.run_ahead(1.5, move=False))  # before the host's 2.0: yes
            out.append(loop.time())  # and a dry check does not move the clock
            out.append(loop.run_ahead(1.5))
            out.append(loop.time())
            out.append(loop.run_ahead(2.0))  # the host timer's own instant: no
            out.append(loop.run_ahead(2.0 - 1e-12))  # within the resolution: no
            out.append(loop.time())

        loop.call_at(2.0, lambda: out.append(("host", loop.time())))
        loop.call_at_first(1.0, device)
        await asyncio.sleep(3.0)
        loop.call_soon(lambda: out.append(loop.run_ahead(10.0)))  # something is ready
        loop.call_soon(lambda: None)
        await asyncio.sleep(0.5)
        return out

    assert clock.run(main(), virtual=True) == [
        True, 1.0, True, 1.5, False, False, 1.5, ("host", 2.0), False,
    ]  # fmt: skip

    async def paced() -> bool:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, clock.VirtualClockLoop)
        return loop.run_ahead(loop.time() + 0.5)

    assert clock.run(paced(), virtual=True, speed=1000.0) is False

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

"""One clock for the host: asyncio's, made virtual when the device is simulated in-process.

Every wait in lllt is an asyncio wait (``sleep``, ``wait_for``, ``call_later``) and every
timestamp comes from :func:`now` / :func:`wall_time`, so both follow the running event
loop's clock. :class:`VirtualClockLoop` is a selector event loop whose ``time()`` is a
virtual clock: when nothing is ready to run, instead of sleeping until the next timer it
moves the clock to that timer at once (``speed=None``, "max"), or sleeps only 1/speed of
the interval (``speed=N``, N× real time). Because timers fire at exactly the virtual
times they were set for, a run is the same at every speed: only wall time changes.

Real I/O still works under the virtual loop (signals, ``call_soon_threadsafe``, sockets):
the loop polls the real selector without blocking before every jump. Work handed to a
thread with ``run_in_executor`` holds virtual time to real time until it finishes, so a
slow disk never lets a simulated device run ahead unobserved. A real serial port under a
``speed=None`` loop makes no sense (its replies take real time); :func:`loop_factory`
therefore gives the virtual loop only to in-process simulators.
"""

from __future__ import annotations

import asyncio
import heapq
import selectors
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

#: Poll the real selector at most this often (wall seconds) while virtual time races.
_REAL_POLL_INTERVAL = 0.001


class _VirtualSelector(selectors.BaseSelector):
    """Wraps a real selector; ``select(timeout)`` advances the owning loop's virtual clock."""

    def __init__(self) -> None:
        self._real = selectors.DefaultSelector()
        self.loop: VirtualClockLoop | None = None
        self._last_poll = 0.0

    # delegation of the registry
    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._real.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.modify(fileobj, events, data)

    def get_map(self) -> Any:
        return self._real.get_map()

    def close(self) -> None:
        self._real.close()

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        loop = self.loop
        assert loop is not None
        if timeout is None:
            # no timers at all: only real I/O can wake us (a signal, another thread)
            return self._blocking(loop, None)
        if loop._holds or loop._speed is not None:
            return self._blocking(loop, timeout)
        # speed=max: look at real I/O now and then, otherwise jump to the next timer
        wall = time.monotonic()
        if wall - self._last_poll >= _REAL_POLL_INTERVAL:
            self._last_poll = wall
            ready = self._real.select(0)
            if ready:
                return ready
        if timeout > 0:
            loop._advance(timeout)
        return []

    def _blocking(
        self, loop: VirtualClockLoop, timeout: float | None
    ) -> list[tuple[selectors.SelectorKey, int]]:
        """Wait in real time: paced speed, held clock, or no timers."""
        speed = 1.0 if loop._holds or loop._speed is None else loop._speed
        start_wall = time.monotonic()
        if timeout is None:
            ready = self._real.select(None)
        else:
            if timeout <= 0:
                return self._real.select(0)
            # pace against the anchor so that rounding never accumulates into drift
            target_wall = loop._anchor_wall + (loop._vtime + timeout - loop._anchor_v) / speed
            wait = max(0.0, target_wall - start_wall)
            ready = self._real.select(wait)
        self._last_poll = time.monotonic()
        if timeout is not None and not ready:
            loop._advance(timeout)  # exactly to the timer: the same times as speed=max
        else:
            elapsed = (self._last_poll - start_wall) * speed
            if timeout is not None:
                elapsed = min(elapsed, timeout)
            loop._advance(elapsed)
        return ready


class _OrderedTimer(asyncio.TimerHandle):
    """A timer that, at the same time as another, runs in the order it was set.

    asyncio orders timers by time only, and breaks ties by the shape of its heap, which
    depends on every timer ever set. On a virtual clock many timers fall on the same
    instant, so that would let an unrelated timer (a device's tick, say) reorder a host's
    callbacks; with ties in insertion order a run depends only on what was scheduled.
    """

    __slots__ = ("_key",)

    def __init__(self, when: float, callback: Any, args: Any, loop: Any, context: Any, seq: int):
        super().__init__(when, callback, args, loop, context=context)
        self._key = (when, seq)

    def __lt__(self, other: object) -> bool:
        if isinstance(other, _OrderedTimer):
            return self._key < other._key
        return super().__lt__(other)  # type: ignore[operator]

    def __gt__(self, other: object) -> bool:
        if isinstance(other, _OrderedTimer):
            return self._key > other._key
        return super().__gt__(other)  # type: ignore[operator]


class VirtualClockLoop(asyncio.SelectorEventLoop):
    """Event loop with a virtual clock; ``speed=None`` runs as fast as the CPU allows.

    Timers due at the same instant run in the order they were set (:class:`_OrderedTimer`).
    """

    def __init__(self, speed: float | None = None, *, start: float = 0.0) -> None:
        selector = _VirtualSelector()
        super().__init__(selector)
        selector.loop = self
        self._vtime = float(start)
        self._timer_seq = 0
        self._speed: float | None = None
        self._holds = 0
        #: wall-clock epoch seconds that virtual time ``start`` corresponds to
        self.epoch = time.time() - start
        self._anchor_wall = time.monotonic()
        self._anchor_v = self._vtime
        self.speed = speed

    def time(self) -> float:
        """The virtual clock, in seconds (``start`` when the loop was made)."""
        return self._vtime

    def call_at(  # type: ignore[override]
        self, when: float, callback: Callable[..., object], *args: Any, context: Any = None
    ) -> asyncio.TimerHandle:
        """asyncio's ``call_at``, with timers at the same instant run in the order they were set."""
        self._timer_seq += 1
        return self._push_timer(when, callback, args, context, self._timer_seq)

    def call_at_first(
        self, when: float, callback: Callable[..., object], *args: Any
    ) -> asyncio.TimerHandle:
        """A simulated device's timer: at its instant it runs before every ordinary timer.

        In-process devices (the simulator, the firmware library) set their timers with
        this, found by ``getattr(loop, "call_at_first", loop.call_at)``, so what a device
        does at an instant (a telemetry frame, say) always comes before what the host
        does at the same instant (a heartbeat, a retry). Otherwise the order would follow
        when each timer was set, which differs between devices that behave the same (a
        simulator plans ahead; a firmware sets its tick 10 ms before).
        """
        self._timer_seq += 1
        return self._push_timer(when, callback, args, None, self._timer_seq - (1 << 62))

    def device_horizon(self) -> float | None:
        """How far a simulated device's timer callback may go on without returning to the
        loop: to (not including) the instant returned, or None when it must return now.

        Going on changes nothing but the cost while the loop races (``speed=None``, not
        held), no callback is ready, and the real selector was polled within the last
        millisecond; then up to the next timer. Found with
        ``getattr(loop, "device_horizon", None)``, as ``call_at_first``.
        """
        if self._speed is not None or self._holds or self._ready:  # type: ignore[attr-defined]
            return None
        selector = self._selector  # type: ignore[attr-defined]
        if time.monotonic() - selector._last_poll >= _REAL_POLL_INTERVAL:
            return None  # real I/O (a signal, a socket) is due a look first
        scheduled = self._scheduled  # type: ignore[attr-defined]
        while scheduled and scheduled[0]._cancelled:  # as asyncio's own _run_once does
            self._timer_cancelled_count -= 1  # type: ignore[attr-defined]
            heapq.heappop(scheduled)._scheduled = False
        return scheduled[0].when() if scheduled else float("inf")

    def run_ahead(self, when: float, *, move: bool = True) -> bool:
        """For a simulated device's timer callback: act at ``when`` now, before
        :meth:`device_horizon`? If so (and ``move``) the clock moves to ``when``, and True
        is returned: the same run, timer for timer.

        Only strictly before the next timer, by more than the loop's clock resolution: a
        timer at ``when`` (or within the resolution after it, which asyncio takes as due)
        must run in the same loop iteration as the device's, as it would have, so that
        what the device's action makes ready runs after it. The clock is set to ``when``
        itself, where a loop that went there timer by timer lands too (``v + (w - v)`` is
        exactly ``w`` for a short step).
        """
        at = self.device_horizon()
        if at is None or not when + self._clock_resolution <= at:  # type: ignore[attr-defined]
            return False
        if move and when > self._vtime:
            self._vtime = when
        return True

    def _push_timer(
        self, when: float, callback: Callable[..., object], args: Any, context: Any, seq: int
    ) -> asyncio.TimerHandle:
        if when is None:
            raise TypeError("when cannot be None")
        self._check_closed()  # type: ignore[attr-defined]
        timer = _OrderedTimer(when, callback, args, self, context, seq)
        if timer._source_traceback:  # type: ignore[attr-defined]
            del timer._source_traceback[-1]  # type: ignore[attr-defined]
        heapq.heappush(self._scheduled, timer)  # type: ignore[attr-defined]
        timer._scheduled = True  # type: ignore[attr-defined]
        return timer

    @property
    def speed(self) -> float | None:
        """Virtual seconds per real second; None means as fast as possible."""
        return self._speed

    @speed.setter
    def speed(self, value: float | None) -> None:
        """Change the pace from the current virtual time on; ValueError unless positive or None."""
        if value is not None and not value > 0:
            raise ValueError("speed must be positive, or None for as fast as possible")
        self._speed = value
        self._anchor_wall = time.monotonic()
        self._anchor_v = self._vtime

    def _advance(self, seconds: float) -> None:
        if seconds > 0:
            self._vtime += seconds

    def hold(self) -> _Hold:
        """Context manager: while held, virtual time follows real time (1×)."""
        return _Hold(self)

    def run_in_executor(  # type: ignore[override]
        self, executor: Any, func: Callable[..., T], *args: Any
    ) -> Any:
        """asyncio's ``run_in_executor``; virtual time follows real time (1×) until the work is
        done."""
        fut = super().run_in_executor(executor, func, *args)
        self._holds += 1
        self._reanchor()

        def _release(_: Any) -> None:
            self._holds -= 1
            self._reanchor()

        fut.add_done_callback(_release)
        return fut

    def _reanchor(self) -> None:
        self._anchor_wall = time.monotonic()
        self._anchor_v = self._vtime


class _Hold:
    def __init__(self, loop: VirtualClockLoop) -> None:
        self._loop = loop

    def __enter__(self) -> None:
        self._loop._holds += 1
        self._loop._reanchor()

    def __exit__(self, *exc: object) -> None:
        self._loop._holds -= 1
        self._loop._reanchor()


def is_virtual(loop: asyncio.AbstractEventLoop | None = None) -> bool:
    """True when ``loop`` (default: the running loop, if any) runs on a virtual clock."""
    if loop is None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
    return isinstance(loop, VirtualClockLoop)


#: at most this many yields in :func:`settle` (a chain of callbacks is a few hops long)
_SETTLE_ROUNDS = 64


async def settle() -> None:
    """On a virtual clock: let everything else due at this instant run first.

    On a virtual clock a host timer and a device's can fall on the same instant, and which
    runs first would depend on when each was set (a simulator plans ahead, a firmware sets
    its tick 10 ms before): the same seed could then go two ways on two devices. A host
    wait that ends in a decision (the silence deadline, a heartbeat) settles first, so what
    the device sent at that instant is always seen before the host acts, whatever the
    device. On a real clock two events never share an instant, and this returns at once.
    """
    loop = asyncio.get_running_loop()
    if not isinstance(loop, VirtualClockLoop):
        return
    ready = loop._ready  # type: ignore[attr-defined]
    scheduled = loop._scheduled  # type: ignore[attr-defined]
    for _ in range(_SETTLE_ROUNDS):
        if not ready and not (scheduled and scheduled[0].when() <= loop.time()):
            return
        await asyncio.sleep(0)


def now() -> float:
    """Monotonic seconds on the running loop's clock (virtual under a VirtualClockLoop)."""
    return asyncio.get_running_loop().time()


def wall_time() -> float:
    """Epoch seconds on the host's timeline.

    Under a virtual clock this is the wall time the loop started plus the virtual time
    elapsed since, so a 25-minute simulated session is recorded as lasting 25 minutes
    whatever the speed-up.
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return time.time()
    if isinstance(loop, VirtualClockLoop):
        return loop.epoch + loop.time()
    return time.time()


def loop_factory(
    virtual: bool, speed: float | None = None
) -> Callable[[], asyncio.AbstractEventLoop]:
    """A loop factory for ``asyncio.Runner``: a :class:`VirtualClockLoop` at ``speed`` when
    ``virtual``, else asyncio's ordinary loop."""
    if virtual:
        return lambda: VirtualClockLoop(speed)
    return asyncio.new_event_loop


def run(
    main: Coroutine[Any, Any, T] | Awaitable[T],
    *,
    virtual: bool = False,
    speed: float | None = None,
) -> T:
    """Run a coroutine like ``asyncio.run``, on a virtual clock when asked."""
    with asyncio.Runner(loop_factory=loop_factory(virtual, speed)) as runner:
        return runner.run(main)  # type: ignore[arg-type]

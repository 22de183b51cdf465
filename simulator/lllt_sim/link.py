"""The simulated cap's side of the byte link: fast framing and the link faults.

``encode_frame`` gives the same bytes as :func:`lllt.wire.encode_frame` but is quicker for
the small frames a device sends many times a second (telemetry sits on the hot path).
``Corrupter`` flips bytes at a given rate with seeded positions that depend only on the
byte stream, never on how it was chunked; ``link_state`` says whether the link is dropped
or corrupting at a given time.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Callable

from lllt import wire

#: a link-fault window: (name, on ms, off ms, rate); name is link_drop or corrupt
Window = tuple[str, int, int, float]


def encode_frame(msg_type: int, seq: int, payload: bytes = b"") -> bytes:
    """A complete frame with its 0x00 delimiter, by the wire codec."""
    return wire.encode_frame(msg_type, seq, payload)


def link_state(windows: list[Window], at_abs: int) -> tuple[bool, float]:
    """(dropped, corruption rate) of the link at absolute ms ``at_abs``."""
    drop = False
    rate = 0.0
    for name, on, off, r in windows:
        if on <= at_abs < off:
            if name == "link_drop":
                drop = True
            else:
                rate = max(rate, r)
    return drop, rate


class Corrupter:
    """Flips bytes of one direction of the link, each with probability ``rate``."""

    def __init__(self, seed: str) -> None:
        self._rng = random.Random(seed)
        self._skip = -1  # bytes still to pass before the next flip; -1: draw one
        self.flipped = 0

    def apply(self, data: bytes, rate: float) -> bytes:
        rng = self._rng
        skip = self._skip
        if skip < 0:
            skip = _geometric(rng, rate)
        if skip >= len(data):
            self._skip = skip - len(data)
            return data
        out = bytearray(data)
        pos = skip
        while pos < len(out):
            out[pos] ^= rng.randrange(1, 256)  # never 0: the byte really changes
            self.flipped += 1
            pos += 1 + _geometric(rng, rate)
        self._skip = pos - len(out)
        return bytes(out)


def device_timer(
    loop: asyncio.AbstractEventLoop, when: float, callback: Callable[[], None]
) -> asyncio.TimerHandle:
    """A device's timer: on lllt's virtual clock it runs before any host timer due at the
    same instant (``call_at_first``), so a seed's run does not depend on which device
    implementation set its timer earlier; on any other loop, ``call_at``."""
    return getattr(loop, "call_at_first", loop.call_at)(when, callback)


def _geometric(rng: random.Random, p: float) -> int:
    """Bytes to pass before the next corrupted one (geometric with success ``p``)."""
    if p >= 1.0:
        return 0
    return int(math.log1p(-rng.random()) / math.log1p(-p))


__all__ = ["Corrupter", "Window", "device_timer", "encode_frame", "link_state"]

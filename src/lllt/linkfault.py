"""Link faults for any transport: drop, duplicate, delay, corrupt or cut individual frames.

In the spirit of Toxiproxy and netem, but frame-aware: a rule picks frames by direction,
message type, time window, count and probability, and does one thing to each. The same
rules work as the ``link=`` option of every device URL (``sim://``, ``serial://``,
``socket://``; what the host sends and receives) and in ``lllt link proxy`` between a host
and any TCP or pty device, so a fault found on the simulator can be replayed against
firmware or over another link.

Grammar: rules separated by ``;``, each ``ACTION[:ARG][,KEY=VALUE...]``::

    drop,to=host,type=STARTED,n=1        lose START's reply, once
    drop,to=device,type=ABORT,n=2        lose the first two ABORTs
    corrupt,p=0.01                       flip one byte of 1 % of frames, both ways
    delay:200ms,to=host,at=10s,for=5s    hold replies 200 ms for five seconds
    dup,type=TELEMETRY,p=0.1             send 10 % of telemetry frames twice
    cut,at=12s                           the link goes down 12 s after it opened

Actions: ``drop``, ``dup``, ``delay:TIME``, ``corrupt`` (one byte of the frame flipped), and
``cut`` (the link is lost at that frame: it and every byte behind it, in the same write
or later, never arrive; the transport reports the loss, the client may reconnect; once,
unless ``n`` says otherwise). Keys:
``to=device|host`` (direction; default both), ``type=NAME|0xNN`` (message type; several
joined with ``|``), ``at=TIME`` and ``for=TIME`` (window from the time the link opened),
``p=PROBABILITY``, ``n=COUNT`` (at most this many frames), ``skip=COUNT`` (let the first
matches through). Times carry a unit: ``1500ms``, ``2.5s``, ``5min``. Draws come from a
seeded generator (``link_seed=N``), so a run replays exactly.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from lllt import wire
from lllt.errors import URLError

ACTIONS = ("drop", "dup", "delay", "corrupt", "cut")
DIRECTIONS = ("device", "host")
GRAMMAR = "ACTION[:ARG][,to=device|host][,type=NAME][,at=TIME][,for=TIME][,p=P][,n=N][,skip=N]"

_TIME = re.compile(r"^(?P<num>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>ms|s|min|h)$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "min": 60.0, "h": 3600.0}


def _bad(text: str, why: str) -> URLError:
    return URLError(
        f"link fault {text!r}: {why}",
        advice=f"Write rules as {GRAMMAR}, separated by ';' (e.g. drop,to=host,type=STARTED,n=1).",
    )


def _time(text: str, rule: str) -> float:
    m = _TIME.match(text.strip())
    if m is None:
        raise _bad(rule, f"{text!r} is not a time; use a number with a unit: 1500ms, 2.5s, 5min")
    return float(m["num"]) * _UNIT_S[m["unit"]]


def _count(text: str, rule: str, key: str) -> int:
    if not text.isdigit():
        raise _bad(rule, f"{key}={text!r} is not a whole number")
    return int(text)


def _types(text: str, rule: str) -> frozenset[int]:
    out = set()
    for name in text.split("|"):
        name = name.strip()
        if name.lower().startswith("0x"):
            try:
                out.add(int(name, 16))
            except ValueError:
                raise _bad(rule, f"type {name!r} is not a hex number") from None
            continue
        try:
            out.add(int(wire.MsgType[name.upper()]))
        except KeyError:
            known = ", ".join(t.name for t in wire.MsgType)
            raise _bad(rule, f"unknown message type {name!r} (known: {known})") from None
    return frozenset(out)


@dataclass
class Rule:
    """One rule; ``matched`` and ``applied`` count what it did."""

    action: str
    text: str = ""
    delay_s: float = 0.0
    to: str | None = None  # None: both directions
    types: frozenset[int] | None = None
    at_s: float = 0.0
    for_s: float | None = None
    p: float = 1.0
    n: int | None = None
    skip: int = 0
    matched: int = 0
    applied: int = 0

    @classmethod
    def parse(cls, text: str) -> Rule:
        """One rule from its text (``drop,to=host,type=STARTED,n=1``, grammar in the module
        docstring); URLError saying what is wrong with it. A ``cut`` fires once unless ``n``
        says otherwise."""
        parts = [p.strip() for p in text.split(",") if p.strip()]
        if not parts:
            raise _bad(text, "empty rule")
        head, _, arg = parts[0].partition(":")
        action = head.strip().lower()
        if action not in ACTIONS:
            raise _bad(text, f"unknown action {head!r} (known: {', '.join(ACTIONS)})")
        rule = cls(action, text=text)
        if action == "delay":
            if not arg:
                raise _bad(text, "delay needs a time: delay:200ms")
            rule.delay_s = _time(arg, text)
        elif arg:
            raise _bad(text, f"{action} takes no argument")
        for part in parts[1:]:
            key, eq, value = part.partition("=")
            key = key.strip().lower()
            value = value.strip()
            if not eq or not value:
                raise _bad(text, f"{part!r} is not key=value")
            if key == "to":
                if value not in DIRECTIONS:
                    raise _bad(text, f"to={value!r}: expected device or host")
                rule.to = value
            elif key == "type":
                rule.types = _types(value, text)
            elif key == "at":
                rule.at_s = _time(value, text)
            elif key == "for":
                rule.for_s = _time(value, text)
            elif key == "p":
                try:
                    rule.p = float(value)
                except ValueError:
                    raise _bad(text, f"p={value!r} is not a number") from None
                if not 0.0 <= rule.p <= 1.0:
                    raise _bad(text, f"p={value} is not a probability between 0 and 1")
            elif key == "n":
                rule.n = _count(value, text, key)
            elif key == "skip":
                rule.skip = _count(value, text, key)
            else:
                raise _bad(text, f"unknown key {key!r} (known: to, type, at, for, p, n, skip)")
        if action == "cut" and rule.n is None:
            rule.n = 1  # a cut happens once unless asked otherwise (the host reconnects)
        return rule

    def selects(self, to: str, msg_type: int | None, t: float, rng: random.Random) -> bool:
        """Whether the rule acts on this frame, going ``to`` the device or the host, of
        ``msg_type`` (None: undecodable), ``t`` seconds after the link opened; draws from
        ``rng`` for ``p`` and counts ``matched`` and ``applied``."""
        if self.to is not None and self.to != to:
            return False
        if self.types is not None and msg_type not in self.types:
            return False
        if t < self.at_s or (self.for_s is not None and t >= self.at_s + self.for_s):
            return False
        if self.n is not None and self.applied >= self.n:
            return False
        self.matched += 1
        if self.matched <= self.skip:
            return False
        if self.p < 1.0 and rng.random() >= self.p:
            return False
        self.applied += 1
        return True


@dataclass
class Verdict:
    """What happens to one frame: sent after ``delay_s`` (``copies`` times), or not at all."""

    data: bytes
    delay_s: float = 0.0
    copies: int = 1


@dataclass
class LinkFaults:
    """A set of rules with their frame splitters and seeded draws."""

    rules: list[Rule]
    seed: int = 0
    cut: bool = False  # a cut rule fired: the link is to be reported lost
    _rng: random.Random = field(init=False, repr=False)
    _partial: dict[str, bytearray] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(f"link:{self.seed}")
        self._partial = {d: bytearray() for d in DIRECTIONS}

    @classmethod
    def parse(cls, text: str, *, seed: int = 0) -> LinkFaults:
        """Rules separated by ``;``, drawing from ``seed``; URLError for a bad rule, or for none."""
        rules = [Rule.parse(t) for t in text.split(";") if t.strip()]
        if not rules:
            raise _bad(text, "no rules")
        return cls(rules, seed)

    def reset(self) -> None:
        """A new connection: partial frames are gone (the counts and draws go on)."""
        for buf in self._partial.values():
            buf.clear()
        self.cut = False

    def process(self, data: bytes, to: str, t: float) -> list[Verdict]:
        """Split ``data`` (bytes going ``to`` the device or the host, ``t`` seconds after
        the link opened) into whole frames and decide each one's fate. Bytes of a frame
        not yet complete are held until its delimiter arrives."""
        buf = self._partial[to]
        buf += data
        out: list[Verdict] = []
        was_cut = self.cut
        while True:
            end = buf.find(0)
            if end < 0:
                break
            frame = bytes(buf[: end + 1])
            del buf[: end + 1]
            out.extend(self._fate(frame, to, t))
            if self.cut and not was_cut:
                # the link went down at that frame: what follows it in this write is lost
                # with it, however the sender cut its writes into chunks
                buf.clear()
                break
        return out

    def _fate(self, frame: bytes, to: str, t: float) -> Iterable[Verdict]:
        msg_type = _frame_type(frame)
        verdict = Verdict(frame)
        for rule in self.rules:
            if not rule.selects(to, msg_type, t, self._rng):
                continue
            if rule.action == "drop":
                return ()
            if rule.action == "cut":
                self.cut = True
                return ()
            if rule.action == "dup":
                verdict.copies += 1
            elif rule.action == "delay":
                verdict.delay_s += rule.delay_s
            elif rule.action == "corrupt" and len(verdict.data) > 1:
                data = bytearray(verdict.data)
                pos = self._rng.randrange(len(data) - 1)  # never the delimiter
                data[pos] ^= self._rng.randrange(1, 256)
                if data[pos] == 0:
                    data[pos] = 0xFF
                verdict.data = bytes(data)
        return (verdict,)

    def summary(self) -> list[dict[str, object]]:
        """Each rule's text with how many frames it matched and acted on."""
        return [{"rule": r.text, "matched": r.matched, "applied": r.applied} for r in self.rules]


def _frame_type(frame: bytes) -> int | None:
    """The message type of one delimited frame, or None when it does not decode."""
    try:
        body = wire.cobs_decode(frame[:-1])
    except wire.WireError:
        return None
    if len(body) < wire.HEADER_SIZE:
        return None
    return body[2]


__all__ = ["ACTIONS", "GRAMMAR", "LinkFaults", "Rule", "Verdict"]

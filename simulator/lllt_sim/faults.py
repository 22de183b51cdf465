"""Named simulator faults with trigger times, parsed from a URL option or the CLI.

Grammar (DESIGN §9): comma-separated items ``name[:arg][@time][+duration]``, e.g.
``overtemp@300s,led_open:3@10s,corrupt:0.01``. Times and durations carry a unit
(``1500ms``, ``2.5s``, ``5min``, ``1h``). ``@time`` is measured from the START of the first
session on the device; without it the fault triggers at that START. Without
``+duration`` a fault lasts for good. Parsing checks syntax and argument types only; the
device checks zone and channel arguments against its profile.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

ArgKind = Literal["none", "zone", "channel", "rate"]

#: name -> (argument kind, argument required, duration allowed, what it does)
FAULTS: dict[str, tuple[ArgKind, bool, bool, str]] = {
    "overtemp": ("zone", False, True, "extra heat into a zone's emitter board (fan/driver)"),
    "thermistor_open": ("zone", False, True, "a zone's temperature sensor reads open"),
    "thermistor_short": ("zone", False, True, "a zone's temperature sensor reads shorted"),
    "led_open": ("channel", True, True, "a channel's emitters are open: no light, no heat"),
    "stuck_on": ("channel", True, True, "a channel emits at full drive whatever is commanded"),
    "brownout": ("none", False, True, "the supply sags below the brown-out level"),
    "link_drop": ("none", False, True, "bytes are dropped both ways"),
    "corrupt": ("rate", True, True, "each byte is flipped with this probability, both ways"),
    "reboot": ("none", False, False, "the device restarts (watchdog reset)"),
    "head_off": ("none", False, True, "the cap leaves the head"),
}

GRAMMAR = "name[:arg][@time][+duration], e.g. overtemp@300s,led_open:3@10s,corrupt:0.01"

_ITEM = re.compile(
    r"^(?P<name>[A-Za-z_]+)(?::(?P<arg>[^@+]*))?(?:@(?P<at>[^+]*))?(?:\+(?P<dur>.*))?$"
)
_TIME = re.compile(r"^(?P<num>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>ms|s|min|h)$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "min": 60.0, "h": 3600.0}


@dataclass(frozen=True, slots=True)
class Fault:
    """One fault: ``name``, its argument, and when it starts and for how long."""

    name: str
    arg: str | int | float | None = None  # zone (id or name), channel id, or rate
    at_s: float = 0.0  # seconds after the START of the first session
    duration_s: float | None = None  # None: for good

    def __str__(self) -> str:
        text = self.name
        if self.arg is not None:
            text += f":{self.arg}"
        if self.at_s:
            text += f"@{_fmt_s(self.at_s)}"
        if self.duration_s is not None:
            text += f"+{_fmt_s(self.duration_s)}"
        return text


def _fmt_s(seconds: float) -> str:
    return f"{seconds:g}s"


def parse_time(text: str) -> float:
    """``300s``, ``1500ms``, ``5min``, ``2.5s``, ``1h`` -> seconds; ValueError otherwise."""
    m = _TIME.match(text.strip())
    if m is None:
        raise ValueError(f"{text!r} is not a time; use a number with a unit: 1500ms, 2.5s, 5min")
    return float(m["num"]) * _UNIT_S[m["unit"]]


def valid_faults() -> str:
    return ", ".join(
        f"{name}{_arg_form(kind, required)}" for name, (kind, required, _, _) in FAULTS.items()
    )


def _arg_form(kind: ArgKind, required: bool) -> str:
    form = {"none": "", "zone": ":ZONE", "channel": ":CHANNEL", "rate": ":RATE"}[kind]
    return form if required or not form else f"[{form}]"


def parse_faults(spec: str | None) -> list[Fault]:
    """Parse a fault specification; raises ValueError naming the bad item and the grammar."""
    faults: list[Fault] = []
    if spec is None or not spec.strip():
        return faults
    for raw in spec.split(","):
        item = raw.strip()
        if not item:
            raise ValueError(f"empty item in fault list {spec!r}; expected {GRAMMAR}")
        faults.append(_parse_item(item))
    return faults


def _parse_item(item: str) -> Fault:
    def bad(why: str) -> ValueError:
        return ValueError(f"fault {item!r}: {why}; expected {GRAMMAR}")

    m = _ITEM.match(item)
    if m is None:
        raise bad("does not follow the grammar")
    name = m["name"].lower()
    if name not in FAULTS:
        raise ValueError(
            f"fault {item!r}: unknown fault {m['name']!r}; valid faults: {valid_faults()}"
        )
    kind, required, duration_ok, _ = FAULTS[name]
    arg_text = m["arg"]
    arg: str | int | float | None = None
    if arg_text is not None:
        arg_text = arg_text.strip()
        if kind == "none":
            raise bad(f"{name} takes no argument")
        if not arg_text:
            raise bad(f"{name}: empty argument")
        if kind == "channel":
            if not arg_text.isdigit() or int(arg_text) > 255:
                raise bad(f"{name} needs a channel id (0-255), got {arg_text!r}")
            arg = int(arg_text)
        elif kind == "zone":
            arg = int(arg_text) if arg_text.isdigit() else arg_text
        else:  # rate
            try:
                rate = float(arg_text)
            except ValueError:
                rate = math.nan
            if not 0.0 < rate <= 1.0:
                raise bad(f"{name} needs a probability per byte in (0, 1], got {arg_text!r}")
            arg = rate
    elif required:
        raise bad(f"{name} needs an argument ({name}{_arg_form(kind, True)})")
    at_s = 0.0
    if m["at"] is not None:
        try:
            at_s = parse_time(m["at"])
        except ValueError as err:
            raise bad(f"bad trigger time: {err}") from None
    duration: float | None = None
    if m["dur"] is not None:
        if not duration_ok:
            raise bad(f"{name} is instantaneous and takes no +duration")
        try:
            duration = parse_time(m["dur"])
        except ValueError as err:
            raise bad(f"bad duration: {err}") from None
        if duration <= 0:
            raise bad("a duration must be positive")
    return Fault(name, arg, at_s, duration)

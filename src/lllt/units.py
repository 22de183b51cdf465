"""Quantities with units: one small pint registry and the canonical unit of each kind.

Protocol and limit files write every quantity as a string with its unit (``"3 mW/cm^2"``,
``"25 min"``); :func:`parse` turns one into a float in the kind's canonical unit
(wavelength nm, irradiance mW/cm², fluence J/cm², time s, temperature °C, frequency Hz,
duty %). A missing unit or a unit of the wrong dimension is an error, never a guess: unit
confusion is a classic dosing hazard.

pint is imported on first use only (never by ``import lllt`` or ``lllt --help``), and the
registry is a restricted one built from the few definitions below: pint's full default
registry costs ~0.12 s to build and knows units (``planck_time``, ``US_survey_foot``) no
dose should be written in.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import Enum
from functools import cache
from typing import TYPE_CHECKING, Any

from lllt.errors import InvalidInput

if TYPE_CHECKING:
    import pint

# Units a protocol or limit file may use. Prefixes are limited to those that make sense
# for these quantities; hecto- is left out so that "h" is only ever the hour.
_DEFINITIONS = """
nano- = 1e-9 = n-
micro- = 1e-6 = µ- = μ- = u-
milli- = 1e-3 = m-
centi- = 1e-2 = c-
deci- = 1e-1 = d-
kilo- = 1e3 = k-
mega- = 1e6 = M-

meter = [length] = m = metre
micron = micrometer
second = [time] = s = sec
gram = [mass] = g
kelvin = [temperature]; offset: 0 = K
degree_Celsius = kelvin; offset: 273.15 = degC = celsius = degreeC
minute = 60 * second = min
hour = 60 * minute = h = hr
day = 24 * hour = d
week = 7 * day = wk
joule = kilogram * meter ** 2 / second ** 2 = J
watt = joule / second = W
hertz = 1 / second = Hz
percent = 0.01 = %
"""


class Kind(Enum):
    """What a quantity measures; the value is (canonical unit, noun, example)."""

    WAVELENGTH = ("nm", "a wavelength", "655 nm")
    IRRADIANCE = ("mW/cm^2", "an irradiance", "3 mW/cm^2")
    FLUENCE = ("J/cm^2", "a fluence", "4 J/cm^2")
    TIME = ("s", "a duration", "25 min")
    TEMPERATURE = ("degC", "a temperature", "41 °C")
    FREQUENCY = ("Hz", "a frequency", "10 Hz")
    DUTY = ("percent", "a duty cycle", "50 %")

    @property
    def unit(self) -> str:
        """Canonical unit, as pint spells it."""
        return self.value[0]

    @property
    def noun(self) -> str:
        """The quantity in words, for messages: ``"an irradiance"``."""
        return self.value[1]

    @property
    def example(self) -> str:
        """A value as a file would write it: ``"3 mW/cm^2"``."""
        return self.value[2]

    @property
    def symbol(self) -> str:
        """Canonical unit as written in files and output."""
        return {"degC": "°C", "percent": "%"}.get(self.unit, self.unit)


# Names of dimensions a person may write by mistake, for the error message.
_DIMENSION_NOUNS = {
    "nm": "a length",
    "cm^2": "an area",
    "mW": "a power",
    "mJ": "an energy",
    "mW/cm^2": "an irradiance (power per area)",
    "J/cm^2": "a fluence (energy per area)",
    "s": "a time",
    "Hz": "a frequency",
    "degC": "a temperature",
    "g": "a mass",
}

# a number, then the unit: "3", "3.5", ".5", "1e-3", "+2"
_NUMBER = re.compile(r"\s*([-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*(.*?)\s*\Z", re.S)


_BARE_EXPONENT = re.compile(r"(?<=[A-Za-zµμ])(-?\d+)(?![\d.])")


@cache
def registry() -> pint.UnitRegistry:
    """The one unit registry of lllt (built on first use, then cached)."""
    import pint

    ureg: pint.UnitRegistry = pint.UnitRegistry(
        None, autoconvert_offset_to_baseunit=False, cache_folder=None
    )
    ureg.load_definitions(_DEFINITIONS.strip().splitlines())
    # "mW/cm2" and "cm-2" are the usual engineering spellings of cm^2 and cm^-2; "/s" is 1/s.
    ureg.preprocessors.append(lambda text: _BARE_EXPONENT.sub(r"**\1", text))
    ureg.preprocessors.append(lambda text: "1" + text if text.lstrip().startswith("/") else text)
    return ureg


@cache
def _dimensionality(unit: str) -> Any:
    return registry().parse_units(unit).dimensionality


def _dimension_noun(units: Any) -> str:
    dim = units.dimensionality
    for unit, noun in _DIMENSION_NOUNS.items():
        if _dimensionality(unit) == dim:
            return noun
    return f"a quantity in {units:~}"


@dataclass(frozen=True, slots=True)
class UnitProblem:
    """Why a text is not a quantity of the wanted kind: what was found, what was expected."""

    found: str
    expected: str

    def __str__(self) -> str:
        return f"found {self.found}; expected {self.expected}"


def _expected(kind: Kind) -> str:
    return f"{kind.noun} with its unit, such as '{kind.example}'"


def _shown(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def try_parse(value: Any, kind: Kind) -> float | UnitProblem:
    """``value`` in ``kind``'s canonical unit, or the problem with it (never raises).

    ``value`` is a string such as ``"3 mW/cm^2"`` or a pint Quantity. A bare number is a
    problem even when it looks right: the unit must be written out.
    """
    if isinstance(value, bool | int | float):
        return UnitProblem(f"the number {_shown(value)} without a unit", _expected(kind))
    if not isinstance(value, str):
        magnitude = getattr(value, "magnitude", None)
        units = getattr(value, "units", None)
        if magnitude is None or units is None:
            return UnitProblem(f"{type(value).__name__} {_shown(value)}", _expected(kind))
        return _convert(float(magnitude), str(units), kind, shown=_shown(str(value)))
    match = _NUMBER.match(value)
    if match is None:
        return UnitProblem(_shown(value), f"a number then a unit, such as '{kind.example}'")
    number, unit = match.groups()
    if not unit:
        return UnitProblem(f"{_shown(value)} without a unit", _expected(kind))
    if ("%" in unit or "percent" in unit) and not (
        kind is Kind.DUTY and unit.strip() in ("%", "percent")
    ):
        # pint reads "%" as the factor 0.01, so "3 mW/cm^2 %" would be 0.03 mW/cm^2 and
        # "50 %%" 0.5 %: a per cent sign is only ever the whole unit of a duty cycle
        return UnitProblem(
            f"{_shown(value)}, where a per cent sign is not the whole unit", _expected(kind)
        )
    return _convert(float(number), unit, kind, shown=_shown(value))


# The spellings files use most, whose conversion to the canonical unit is none or a
# multiplication by an exact integer: read without loading pint (~0.2 s), to the same bit
# as pint reads them (tests/protocol/test_units.py compares the two on every spelling).
_SECONDS = {"s": 1.0, "sec": 1.0, "second": 1.0, "seconds": 1.0}
_SECONDS |= {"min": 60.0, "minute": 60.0, "minutes": 60.0}
_SECONDS |= {"h": 3600.0, "hr": 3600.0, "hour": 3600.0, "hours": 3600.0}
_SECONDS |= {"d": 86400.0, "day": 86400.0, "days": 86400.0}
_SECONDS |= {"wk": 604800.0, "week": 604800.0, "weeks": 604800.0}
_EXACT: dict[Kind, dict[str, float]] = {
    Kind.WAVELENGTH: {"nm": 1.0},
    Kind.IRRADIANCE: {"mW/cm^2": 1.0, "mW/cm2": 1.0, "mW/cm**2": 1.0},
    Kind.FLUENCE: {"J/cm^2": 1.0, "J/cm2": 1.0, "J/cm**2": 1.0},
    Kind.TIME: _SECONDS,
    Kind.TEMPERATURE: {"degC": 1.0},
    Kind.FREQUENCY: {"Hz": 1.0},
    Kind.DUTY: {"%": 1.0, "percent": 1.0},
}


def _convert(number: float, unit: str, kind: Kind, *, shown: str) -> float | UnitProblem:
    factor = _EXACT[kind].get(unit)
    if factor is not None and math.isfinite(number):
        out = number * factor
        if math.isfinite(out):
            return out
    return _convert_with_pint(number, unit, kind, shown=shown)


def _convert_with_pint(number: float, unit: str, kind: Kind, *, shown: str) -> float | UnitProblem:
    import pint

    ureg = registry()
    if not math.isfinite(number):
        return UnitProblem(shown, f"a finite number, such as '{kind.example}'")
    try:
        units = ureg.parse_units(unit)
    except Exception:
        # pint's tokenizer raises its own errors, tokenize.TokenError, SyntaxError and
        # others for text it cannot read; all of them mean "not a unit we know"
        return UnitProblem(f"{shown}, whose unit {unit!r} lllt does not know", _expected(kind))
    if units.dimensionless and kind is not Kind.DUTY:
        return UnitProblem(f"{shown}, which is a plain ratio", _expected(kind))
    if units.dimensionality != _dimensionality(kind.unit):
        return UnitProblem(f"{shown}, which is {_dimension_noun(units)}", _expected(kind))
    try:
        out = float(ureg.Quantity(number, units).to(kind.unit).magnitude)
    except pint.errors.PintError as err:  # e.g. an offset unit in a product
        return UnitProblem(f"{shown} ({err})", _expected(kind))
    if not math.isfinite(out):
        return UnitProblem(f"{shown}, which is out of range", _expected(kind))
    return out


def parse(value: Any, kind: Kind, *, what: str = "value") -> float:
    """``value`` in ``kind``'s canonical unit; raises InvalidInput naming ``what``."""
    result = try_parse(value, kind)
    if isinstance(result, UnitProblem):
        raise InvalidInput(f"{what}: {result}")
    return result


def number_text(value: float) -> str:
    """Shortest text that reads back as exactly ``value`` (``1500``, ``4.485``)."""
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def format_quantity(value: float, kind: Kind) -> str:
    """Exact, readable text for a canonical value; :func:`parse` reads it back unchanged.

    Durations use the largest of week, h, min, s that divides them exactly.
    """
    if kind is Kind.TIME:
        for unit, size in (("weeks", 604800.0), ("h", 3600.0), ("min", 60.0)):
            if value >= size and value % size == 0:
                return f"{number_text(value / size)} {unit}"
        return f"{number_text(value)} s"
    return f"{number_text(value)} {kind.symbol}"


def human_duration(seconds: float) -> str:
    """Rounded duration for tables: ``25 min``, ``1 h 5 min``, ``36 h``, ``16 weeks``."""
    if seconds >= 604800 and seconds % 604800 == 0:
        return f"{seconds / 604800:g} weeks"
    if seconds >= 7200 and seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    if seconds < 120:
        return f"{seconds:.3g} s"
    minutes = seconds / 60
    if minutes < 60:
        return f"{minutes:.4g} min"
    hours, rest = divmod(round(minutes), 60)
    return f"{hours} h {rest} min" if rest else f"{hours} h"


__all__ = [
    "Kind",
    "UnitProblem",
    "format_quantity",
    "human_duration",
    "number_text",
    "parse",
    "registry",
    "try_parse",
]

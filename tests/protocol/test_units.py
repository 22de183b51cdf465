"""Units: equivalent spellings give the same canonical value; missing or wrong units fail.

The conversion factors below are written out by hand (1 mW/cm² = 10 W/m², ...), not taken
from pint, so the tests check pint's registry and lllt's restricted definitions together.
"""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lllt import units
from lllt.errors import InvalidInput
from lllt.units import Kind

# kind -> [(unit spelling, how many canonical units one of it is)]
SPELLINGS: dict[Kind, list[tuple[str, float]]] = {
    Kind.IRRADIANCE: [
        ("mW/cm^2", 1.0),
        ("mW/cm²", 1.0),
        ("mW/cm2", 1.0),
        ("mW cm^-2", 1.0),
        ("mW·cm⁻²", 1.0),
        ("milliwatt / centimeter ** 2", 1.0),
        ("W/m^2", 0.1),
        ("W/cm^2", 1000.0),
        ("uW/mm^2", 0.1),
        ("µW/cm^2", 0.001),
    ],
    Kind.FLUENCE: [
        ("J/cm^2", 1.0),
        ("J/cm²", 1.0),
        ("J cm^-2", 1.0),
        ("mJ/cm^2", 0.001),
        ("kJ/m^2", 0.1),
        ("J/m^2", 1e-4),
        ("joule / centimeter ** 2", 1.0),
    ],
    Kind.TIME: [
        ("s", 1.0),
        ("sec", 1.0),
        ("seconds", 1.0),
        ("ms", 0.001),
        ("min", 60.0),
        ("minutes", 60.0),
        ("h", 3600.0),
        ("hr", 3600.0),
        ("hours", 3600.0),
        ("d", 86400.0),
        ("days", 86400.0),
        ("week", 604800.0),
        ("weeks", 604800.0),
    ],
    Kind.WAVELENGTH: [("nm", 1.0), ("nanometer", 1.0), ("µm", 1000.0), ("um", 1000.0)],
    Kind.FREQUENCY: [("Hz", 1.0), ("hertz", 1.0), ("kHz", 1000.0), ("1/s", 1.0)],
    Kind.DUTY: [("%", 1.0), ("percent", 1.0)],
    Kind.TEMPERATURE: [("degC", 1.0), ("°C", 1.0), ("celsius", 1.0)],
}

values = st.floats(min_value=1e-3, max_value=1e4, allow_nan=False, allow_infinity=False)


@st.composite
def spelled(draw: st.DrawFn) -> tuple[Kind, float, str, str]:
    kind = draw(st.sampled_from(list(SPELLINGS)))
    value = draw(values)
    (u1, f1), (u2, f2) = draw(st.lists(st.sampled_from(SPELLINGS[kind]), min_size=2, max_size=2))
    # "1.0" then "1/s" needs the space: "1.01/s" is 1.01 Hz
    space = draw(st.sampled_from([" ", "  "] if u1[0].isdigit() else ["", " ", "  "]))
    return kind, value, f"{value / f1!r}{space}{u1}", f"{value / f2!r} {u2}"


@settings(max_examples=300, deadline=None)
@given(spelled())
def test_equivalent_spellings_give_the_same_canonical_value(case) -> None:
    kind, value, text1, text2 = case
    a = units.parse(text1, kind)
    b = units.parse(text2, kind)
    assert math.isclose(a, value, rel_tol=1e-9), (text1, a, value)
    assert math.isclose(b, value, rel_tol=1e-9), (text2, b, value)


@settings(max_examples=100, deadline=None)
@given(st.floats(min_value=0.0, max_value=400.0, allow_nan=False))
def test_kelvin_is_offset_to_celsius(kelvin: float) -> None:
    assert math.isclose(
        units.parse(f"{kelvin!r} K", Kind.TEMPERATURE), kelvin - 273.15, abs_tol=1e-9
    )


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(list(Kind)), values)
def test_format_quantity_reads_back_exactly(kind: Kind, value: float) -> None:
    assert units.parse(units.format_quantity(value, kind), kind) == value


@pytest.mark.parametrize(
    ("text", "kind", "found"),
    [
        ("3 mW", Kind.IRRADIANCE, "which is a power"),
        ("3", Kind.IRRADIANCE, "without a unit"),
        ("25", Kind.TIME, "without a unit"),
        ("25 mW/cm^2", Kind.TIME, "which is an irradiance"),
        ("4 J", Kind.FLUENCE, "which is an energy"),
        ("655 s", Kind.WAVELENGTH, "which is a time"),
        ("0.5", Kind.DUTY, "without a unit"),
        ("3 %", Kind.IRRADIANCE, "per cent sign"),
        # finding 12: pint reads % as a factor of 0.01, never a silent scale
        ("3 mW/cm^2 %", Kind.IRRADIANCE, "per cent sign"),
        ("3 % mW/cm^2", Kind.IRRADIANCE, "per cent sign"),
        ("50 %%", Kind.DUTY, "per cent sign"),
        ("50 % %", Kind.DUTY, "per cent sign"),
        ("4 J/cm^2 percent", Kind.FLUENCE, "per cent sign"),
        ("10 s", Kind.FREQUENCY, "which is a time"),
        ("3 furlongs", Kind.TIME, "does not know"),
        ("3 mw/cm^2", Kind.IRRADIANCE, "does not know"),  # milli-watt is mW: case matters
        ("three minutes", Kind.TIME, "a number then a unit"),
        ("nan s", Kind.TIME, "a number then a unit"),
        ("1e999 s", Kind.TIME, "finite"),
        ("", Kind.TIME, "a number then a unit"),
        ("3 mW/(cm^2", Kind.IRRADIANCE, "does not know"),
    ],
)
def test_missing_or_wrong_unit_is_an_error_naming_what_was_found(
    text: str, kind: Kind, found: str
) -> None:
    problem = units.try_parse(text, kind)
    assert isinstance(problem, units.UnitProblem)
    assert found in str(problem)
    assert kind.example in str(problem)
    with pytest.raises(InvalidInput, match="expected"):
        units.parse(text, kind, what="x")


@pytest.mark.parametrize("value", [3, 3.0, True, None, [3], {"v": 3}])
def test_non_text_values_are_refused(value: object) -> None:
    assert isinstance(units.try_parse(value, Kind.IRRADIANCE), units.UnitProblem)


def test_a_pint_quantity_is_accepted_and_checked() -> None:
    ureg = units.registry()
    assert units.parse(ureg.Quantity(30, "W/m^2"), Kind.IRRADIANCE) == pytest.approx(3.0)
    assert isinstance(units.try_parse(ureg.Quantity(3, "mW"), Kind.IRRADIANCE), units.UnitProblem)


def test_pint_is_not_imported_by_lllt_or_the_cli() -> None:
    code = (
        "import sys, lllt, lllt.cli, lllt.plan, lllt.units; "
        "print(sorted(m for m in ('pint', 'lllt.protocol', 'pydantic') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_common_spellings_are_read_without_pint_to_the_same_bit() -> None:
    """The fast path (no pint) gives exactly what pint gives, for every spelling it knows."""
    import random

    rng = random.Random(5)
    numbers = [0.0, 1.0, 0.35, 1.3, 0.65, 655.0, 25.0, 1 / 3, 1e-300, 1e300]
    numbers += [rng.uniform(0, 1000) for _ in range(300)]
    numbers += [rng.expovariate(1e-3) for _ in range(100)]
    for kind, table in units._EXACT.items():
        for unit in table:
            for n in numbers:
                fast = units._convert(n, unit, kind, shown="x")
                slow = units._convert_with_pint(n, unit, kind, shown="x")
                assert fast == slow, (kind, unit, n, fast, slow)


def test_a_shipped_protocol_loads_without_pint() -> None:
    code = (
        "import sys; from lllt.protocol import load_protocol, resolve; "
        "load_protocol(resolve('aga-red-eod-25min')); print('pint' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"

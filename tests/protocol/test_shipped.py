"""The shipped protocols: valid on their profile, doses equal to their hand calculations.

Acceptance (issue 3): ``lllt protocol check protocols/*.toml --profile <matching profile>
--json`` is valid for every shipped protocol and each file's fluence equals the hand
calculation in its comments (``# dose 655 nm: 3 mW/cm^2 x (1500 s - 10 s / 2) / 1000 =
4.485 J/cm^2``); the JSON Schema of ``lllt protocol schema`` validates every file.
"""

from __future__ import annotations

import ast
import json
import operator
import re
import tomllib
from pathlib import Path

import jsonschema
import pytest

import lllt
from lllt.protocol import json_schema, load_protocol, shipped_dir, shipped_protocols

from ._support import BAD, REPO, assert_no_traceback, run_lllt

# One row of the shipped-protocols table of docs/clinical-basis.md per file:
# id -> (profile, wavelengths, session in minutes or None for a fluence target, research)
ROWS = {
    "aga-red-eod-25min": ("reference-cap", [655], 25, False),
    "aga-red-3x-week-15min": ("reference-cap", [655], 15, False),
    "aga-hairmax-9beam-11min": ("reference-cap", [655], 11, False),
    "aga-hairmax-12beam-8min": ("reference-cap", [655], 8, False),
    "aga-led-rgb-daily-18min": ("led-helmet-rgb", [630, 650, 660], 18, False),
    "aga-678-twice-weekly-20min": ("laser-cap-678", [678], 20, False),
    "aga-theradome-lh40-678-20min": ("laser-cap-678", [678], 20, False),
    "aga-red-650-eod": ("led-helmet-rgb", [650], 30, False),
    "aga-capillus-650-daily-6min": ("led-helmet-rgb", [650], 6, False),
    "aga-irestore-655-eod-25min": ("reference-cap", [655], 25, False),
    "aga-yoon2020-655nm": ("reference-cap", [655], 25, False),
    "aga-fan2018-3x-week-30min": ("reference-cap", [655], 30, False),
    "aga-suchonwanit2019-ramacap": ("reference-cap", [655], 25, False),
    "aga-kim2020-3x-week": ("reference-cap", [655], 25, False),
    "adjunct-minoxidil-2x-week-light-only": ("reference-cap", [655], 20, False),
    "research-far-red-735nm": ("reference-cap", [735], 15, True),
}


def _files() -> list[Path]:
    """The shipped files as the acceptance command names them: protocols/*.toml."""
    root = REPO / "protocols"
    if root.is_dir():  # a checkout: protocols/ links to the package data
        return sorted(root.glob("*.toml"))
    return shipped_protocols()


FILES = _files()


def test_one_file_per_published_protocol_named_by_its_id() -> None:
    assert sorted(f.stem for f in FILES) == sorted(ROWS)
    for path in FILES:
        protocol = load_protocol(path)
        profile, wavelengths, minutes, research = ROWS[protocol.id]
        assert path.stem == protocol.id
        assert protocol.meta is not None and protocol.meta.profile == profile
        assert list(protocol.wavelengths) == wavelengths
        assert protocol.references, protocol.id
        assert protocol.research is research
        if minutes is not None:
            assert protocol.expected_duration_s == minutes * 60


def test_shipped_files_are_package_data_not_only_a_checkout() -> None:
    assert shipped_dir().parent == Path(lllt.__file__).parent
    assert [p.name for p in shipped_protocols()] == [p.name for p in FILES]
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert "protocols/*.toml" in pyproject["tool"]["setuptools"]["package-data"]["lllt"]


# --- the hand calculations in the comments ---------------------------------------------

_UNITS = re.compile(r"mW/cm\^2|J/cm\^2|\bs\b")
_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
        ast.Div: operator.truediv}  # fmt: skip


def _arithmetic(text: str) -> float:
    """Value of a hand calculation once its units are removed: + - x / and brackets only."""

    def ev(node: ast.AST) -> float:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return float(node.value)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](ev(node.left), ev(node.right))
        raise ValueError(f"not plain arithmetic: {ast.dump(node)}")

    expression = _UNITS.sub("", text).replace(" x ", " * ")
    return ev(ast.parse(expression, mode="eval"))


def hand_calculations(path: Path) -> tuple[dict[str, float], float]:
    """The ``# dose NNN nm: ... = V J/cm^2`` lines and the ``# session: ... = V s`` line."""
    doses: dict[str, float] = {}
    session = None
    for line in path.read_text(encoding="utf-8").splitlines():
        dose = re.fullmatch(r"# dose (\d+) nm: (.+) = ([\d.]+) J/cm\^2", line)
        if dose:
            wavelength, expression, stated = dose.groups()
            assert _arithmetic(expression) == pytest.approx(float(stated), rel=1e-12), line
            doses[wavelength] = doses.get(wavelength, 0.0) + float(stated)
        timed = re.fullmatch(r"# session: (.+) = ([\d.]+) s", line)
        if timed:
            expression, stated = timed.groups()
            assert _arithmetic(expression) == pytest.approx(float(stated), rel=1e-12), line
            session = float(stated)
    assert doses and session is not None, f"{path.name} has no hand calculation"
    return doses, session


@pytest.fixture(scope="module")
def checked() -> dict[str, dict]:
    """``lllt protocol check FILES --profile P --json`` once per matching profile."""
    out = {}
    for profile in sorted({row[0] for row in ROWS.values()}):
        files = [str(f.relative_to(REPO)) if f.is_relative_to(REPO) else str(f) for f in FILES
                 if ROWS[f.stem][0] == profile]  # fmt: skip
        result = run_lllt("protocol", "check", *files, "--profile", profile, "--json")
        assert_no_traceback(result.stderr)
        assert result.returncode == 0, result.stderr
        assert result.stderr == ""
        for entry in json.loads(result.stdout):
            out[Path(entry["file"]).stem] = entry
    return out


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_valid_on_its_profile_with_the_fluence_of_its_hand_calculation(
    path: Path, checked: dict[str, dict]
) -> None:
    entry = checked[path.stem]
    assert entry["valid"] is True and entry["errors"] == []
    assert entry["id"] == path.stem
    doses, session = hand_calculations(path)
    assert entry["fluence_j_cm2"] == pytest.approx(doses, rel=1e-12)
    assert entry["total_duration_s"] == pytest.approx(session, rel=1e-12)
    assert [p["name"] for p in entry["phases"]] == ["treatment"]
    assert entry["phases"][0]["fluence_j_cm2"] == pytest.approx(doses, rel=1e-12)


# --- the numbers suit their device ---------------------------------------------------


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_irradiance_is_a_scalp_average_the_profile_can_give(path: Path) -> None:
    from lllt.info import DeviceInfo

    protocol = load_protocol(path)
    device = DeviceInfo.for_profile(ROWS[protocol.id][0])
    for phase in protocol.phases:
        per_zone = sum(phase.wavelength_emits().values())
        assert per_zone < 10.0  # single-digit scalp averages; the thermal check runs too
        for wavelength, irradiance in phase.wavelength_emits().items():
            for channel in device.channels_at(wavelength):
                assert irradiance <= channel.max_irradiance_mw_cm2
                if channel.kind == "laser":  # at most 5 mW per visible laser emitter
                    share = irradiance / channel.max_irradiance_mw_cm2
                    assert share * channel.emitter_max_mw <= 5.0


_VALUE_LINE = re.compile(r"\s*([A-Za-z_]+)\s*=\s*(.*)")


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_every_number_has_a_comment_saying_where_it_comes_from(path: Path) -> None:
    in_string = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.count('"""') % 2:
            in_string = not in_string
            continue
        match = _VALUE_LINE.fullmatch(line)
        if in_string or not match or match.group(1) in ("format", "id", "name", "references"):
            continue
        value, _, comment = match.group(2).partition("#")
        if re.search(r"\d", value):
            assert comment.strip(), f"{path.name}: no source for: {line.strip()}"


# --- the JSON Schema -----------------------------------------------------------------


def test_the_schema_from_the_cli_validates_every_shipped_file(tmp_path: Path) -> None:
    out = tmp_path / "schema.json"
    result = run_lllt("protocol", "schema", "-o", str(out))
    assert result.returncode == 0, result.stderr
    schema = json.loads(out.read_text(encoding="utf-8"))
    assert schema == json_schema()
    validator = jsonschema.Draft202012Validator(schema)
    jsonschema.Draft202012Validator.check_schema(schema)
    for path in FILES:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        errors = list(validator.iter_errors(data))
        assert errors == [], (path.name, [e.message for e in errors])


@pytest.mark.parametrize(
    "name",
    [
        "unknown-key-limit-in-protocol.toml",
        "unknown-phase-key.toml",
        "missing-format.toml",
        "missing-unit-duration.toml",
        "number-duration.toml",
        "bad-emit-key.toml",
        "empty-emit.toml",
        "no-phases.toml",
        "schedule-count-as-text.toml",
        "newer-format.toml",
    ],
)
def test_the_schema_rejects_what_an_editor_can_see_is_wrong(name: str) -> None:
    data = tomllib.loads((BAD / name).read_text(encoding="utf-8"))
    assert list(jsonschema.Draft202012Validator(json_schema()).iter_errors(data))

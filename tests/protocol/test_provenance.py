"""Provenance per number: the format, its validation, and the shipped files' use of it.

Acceptance (issue 10): every number of every shipped protocol says whether it is
published (with its source), derived (with its calculation) or chosen (with its reason);
the dose of every shipped protocol is recomputed here from the numbers and provenance in
the file, independently of the planner, and equals what ``lllt protocol check`` reports;
``lllt protocol show`` prints a provenance line for every number.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest

from lllt.errors import FileFormatError
from lllt.protocol import loads_protocol

from ._support import assert_no_traceback, run_lllt
from .test_shipped import FILES, ROWS, _arithmetic

BASE = """
format = "lllt-protocol/1"
id = "p"
name = "p"
[schedule]
min_interval = "36 h"
[[phases]]
name = "treatment"
duration = "25 min"
emit = { "655nm" = "3 mW/cm^2" }
"""


def _load(extra: str):
    return loads_protocol(BASE + "[provenance]\n" + extra)


def _problems(extra: str) -> list[tuple[str, str]]:
    with pytest.raises(FileFormatError) as info:
        _load(extra)
    return [(p.field, p.message) for p in info.value.problems]


def test_each_kind_with_what_it_needs_loads() -> None:
    protocol = _load(
        '"phases.treatment.duration" = { kind = "published", source = "Lanzafame 2013" }\n'
        '"phases.treatment.emit.655nm" = { kind = "chosen", reason = "unpublished", '
        'departs = "the trial gave 0.35" }\n'
        '"schedule.min_interval" = { kind = "derived", calculation = "48 h - 12 h = 36 h" }\n'
    )
    assert protocol.missing_provenance() == []
    entry = protocol.provenance["phases.treatment.emit.655nm"]
    assert entry.text == "chosen: unpublished; departs from its source: the trial gave 0.35"


@pytest.mark.parametrize(
    ("kind", "needs"), [("published", "source"), ("derived", "calculation"), ("chosen", "reason")]
)
def test_a_kind_without_its_source_calculation_or_reason_is_refused(kind: str, needs: str) -> None:
    ((field, message),) = _problems(f'"phases.treatment.duration" = {{ kind = "{kind}" }}\n')
    assert field == 'provenance."phases.treatment.duration"'
    assert f"needs its {needs}" in message


def test_an_unknown_kind_or_key_is_refused() -> None:
    problems = _problems('"phases.treatment.duration" = { kind = "guessed", reason = "x" }\n')
    assert "published" in problems[0][1] and "chosen" in problems[0][1]
    problems = _problems('"phases.treatment.duration" = { kind = "chosen", why = "x" }\n')
    assert "unknown key" in problems[0][1]


def test_provenance_for_a_number_the_file_does_not_have_is_refused() -> None:
    ((field, message),) = _problems(
        '"phases.treatment.fluence" = { kind = "chosen", reason = "x" }\n'
    )
    assert field == 'provenance."phases.treatment.fluence"'
    assert "names no number" in message and "phases.treatment.duration" in message


def test_missing_provenance_lists_the_numbers_without_it() -> None:
    protocol = _load('"phases.treatment.duration" = { kind = "published", source = "x" }\n')
    assert protocol.missing_provenance() == ["schedule.min_interval", "phases.treatment.emit.655nm"]


# --- the shipped files ---------------------------------------------------------------


def _data(path: Path) -> dict:
    return tomllib.loads(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_every_number_of_a_shipped_protocol_has_provenance(path: Path) -> None:
    from lllt.protocol import load_protocol

    protocol = load_protocol(path)
    assert protocol.missing_provenance() == []
    for entry in protocol.provenance.values():  # and says something a person can check
        assert len(entry.text) > len(entry.kind) + 10


def _evaluate(calculation: str) -> tuple[float, float]:
    """``"21 lasers x 5 mW / 300 cm^2 = 0.35 mW/cm^2 ..."`` -> (computed, stated)."""
    expression, _, rest = calculation.partition("=")
    expression = re.sub(r"mW/cm\^2|cm\^2", " ", expression)
    kept = [t for t in expression.split() if re.fullmatch(r"[\d.]+|x|/|\+|-", t)]
    stated = re.match(r"\s*([\d.]+)", rest)
    assert stated, calculation
    return _arithmetic(" ".join(kept)), float(stated.group(1))


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_derived_irradiances_follow_from_their_calculation(path: Path) -> None:
    """A derived irradiance's calculation evaluates to its stated result, and the value
    is that result, rounded down by at most 5 %."""
    data = _data(path)
    for key, entry in data["provenance"].items():
        if entry["kind"] != "derived" or ".emit." not in key:
            continue
        computed, stated = _evaluate(entry["calculation"])
        assert computed == pytest.approx(stated, rel=2e-3), entry["calculation"]
        value = float(data["phases"][0]["emit"][key.rsplit(".", 1)[1]].split()[0])
        assert value <= computed + 1e-9, (key, entry["calculation"])
        assert value == pytest.approx(computed, rel=0.05), (key, entry["calculation"])


def _dose_from_file(data: dict) -> dict[str, float]:
    """J/cm² per wavelength from the file's own numbers: irradiance x duty x on-time."""
    seconds = {"s": 1, "min": 60, "h": 3600}
    out: dict[str, float] = {}
    for phase in data["phases"]:
        number, unit = phase["duration"].split()
        duration = float(number) * seconds[unit]
        ramp_n, ramp_u = phase.get("ramp", "0 s").split()
        ramp = float(ramp_n) * seconds[ramp_u]
        duty = float(phase["pulse"]["duty"].split()[0]) / 100 if "pulse" in phase else 1.0
        for key, text in phase["emit"].items():
            irradiance = float(text.split()[0])  # every shipped file writes mW/cm^2
            dose = irradiance * duty * (duration - ramp / 2) / 1000
            out[key[:-2]] = out.get(key[:-2], 0.0) + dose
    return out


def test_every_dose_recomputed_from_the_file_equals_the_check() -> None:
    files = [str(f) for f in FILES]
    by_profile: dict[str, list[str]] = {}
    for f in FILES:
        by_profile.setdefault(ROWS[f.stem][0], []).append(str(f))
    checked = {}
    for profile, group in by_profile.items():
        result = run_lllt("protocol", "check", *group, "--profile", profile, "--json")
        assert result.returncode in (0, 1), result.stderr
        checked.update({Path(e["file"]).stem: e for e in json.loads(result.stdout)})
    assert len(checked) == len(files)
    for path in FILES:
        assert checked[path.stem]["fluence_j_cm2"] == pytest.approx(
            _dose_from_file(_data(path)), rel=1e-12
        ), path.stem


def test_lanzafame_is_shipped_at_its_scalp_average_dose() -> None:
    data = _data(next(f for f in FILES if f.stem == "aga-red-eod-25min"))
    assert data["phases"][0]["emit"] == {"655nm": "0.35 mW/cm^2"}
    assert _dose_from_file(data)["655"] == pytest.approx(0.35 * 1495 / 1000)
    assert data["provenance"]["phases.treatment.emit.655nm"]["kind"] == "derived"


def test_the_adjunct_protocol_states_the_null_result() -> None:
    data = _data(next(f for f in FILES if f.stem == "adjunct-minoxidil-2x-week-light-only"))
    notes = " ".join(data["notes"].split())
    assert "14.8 %" in notes and "11.4 %" in notes and "p = 0.45" in notes
    assert "no significant added benefit" in notes
    assert "minoxidil" not in json.dumps(data["phases"])  # the file is light only


# --- lllt protocol show ----------------------------------------------------------------


@pytest.fixture(scope="module")
def shown() -> dict[str, str]:
    """``lllt protocol show`` of every shipped id, in one process, split per protocol."""
    from lllt.protocol import load_protocol

    ids = [load_protocol(f).id for f in FILES]
    result = run_lllt("protocol", "show", *ids)
    assert_no_traceback(result.stderr)
    assert result.returncode == 0, result.stderr
    out: dict[str, str] = {}
    current = None
    for line in result.stdout.splitlines():
        head = line.split(":", 1)[0]
        if head in ids and not line.startswith(" "):
            current = head
            out[current] = ""
        if current is not None:
            out[current] += line + "\n"
    assert sorted(out) == sorted(ids)
    return out


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_show_prints_a_provenance_line_for_every_number(path: Path, shown: dict[str, str]) -> None:
    from lllt.protocol import load_protocol

    protocol = load_protocol(path)
    lines = shown[protocol.id].splitlines()
    for key, value in protocol.numbers().items():
        at = next((i for i, ln in enumerate(lines) if ln.strip().startswith(key + " ")), None)
        assert at is not None, (key, lines)
        assert lines[at].split() == [key, *value.split()]
        kind = protocol.provenance[key].kind
        assert lines[at + 1].strip().startswith(f"{kind}:"), (key, lines[at + 1])
    doses = [ln for ln in lines if " nm: " in ln and "J/cm²" in ln]
    assert len(doses) == sum(len(p.emit) for p in protocol.phases)


def test_show_of_an_unknown_id_is_one_line() -> None:
    result = run_lllt("protocol", "show", "no-such-protocol")
    assert result.returncode == 2
    assert_no_traceback(result.stderr)
    assert len(result.stderr.strip().splitlines()) <= 2

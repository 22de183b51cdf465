"""The protocol model and its one loader: formats, field paths, every problem at once."""

from __future__ import annotations

import json

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from lllt.errors import FieldProblem, FileFormatError
from lllt.protocol import (
    DEFAULT_MAX_DURATION_FACTOR,
    MAX_FILE_BYTES,
    Phase,
    Protocol,
    dumps_protocol,
    load_protocol,
    loads_protocol,
    protocol_from_dict,
    resolve,
    shipped_dir,
)

TOML = """
format = "lllt-protocol/1"
id = "two-phase"
name = "Two phases"
references = ["a paper"]

[schedule]
min_interval = "36 h"
max_sessions_per_week = 4
course = "16 weeks"

[[phases]]
name = "warm-up"
duration = "0.5 min"
ramp = "10 s"
emit = { "655nm" = "30 W/m^2" }
zones = ["front", "top"]

[[phases]]
name = "dose"
fluence = "4 J/cm^2"
max_duration = "1.5 h"
emit = { "0.735 um" = "5 mW/cm^2", ch0 = "2 mW/cm^2" }
pulse = { frequency = "10 Hz", duty = "50 %" }
"""

DATA = {
    "format": "lllt-protocol/1",
    "id": "two-phase",
    "name": "Two phases",
    "references": ["a paper"],
    "schedule": {"min_interval": "36 h", "max_sessions_per_week": 4, "course": "16 weeks"},
    "phases": [
        {
            "name": "warm-up",
            "duration": "0.5 min",
            "ramp": "10 s",
            "emit": {"655nm": "30 W/m^2"},
            "zones": ["front", "top"],
        },
        {
            "name": "dose",
            "fluence": "4 J/cm^2",
            "max_duration": "1.5 h",
            "emit": {"0.735 um": "5 mW/cm^2", "ch0": "2 mW/cm^2"},
            "pulse": {"frequency": "10 Hz", "duty": "50 %"},
        },
    ],
}


def test_toml_yaml_and_json_load_into_the_same_model(tmp_path) -> None:
    (tmp_path / "p.toml").write_text(TOML, encoding="utf-8")
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(DATA), encoding="utf-8")
    (tmp_path / "p.yml").write_text(yaml.safe_dump(DATA), encoding="utf-8")
    (tmp_path / "p.JSON").write_text(json.dumps(DATA), encoding="utf-8")
    loaded = [load_protocol(tmp_path / n) for n in ("p.toml", "p.yaml", "p.yml", "p.JSON")]
    assert all(p == loaded[0] for p in loaded)


def test_quantities_are_stored_in_canonical_units() -> None:
    p = loads_protocol(TOML)
    warm, dose = p.phases
    assert (warm.duration, warm.ramp, warm.emit) == (30.0, 10.0, {"655nm": 3.0})
    assert dose.emit == {"735nm": 5.0, "ch0": 2.0}  # keys in their canonical spelling
    assert (dose.fluence, dose.max_duration) == (4.0, 5400.0)
    assert dose.pulse is not None and (dose.pulse.frequency, dose.pulse.duty) == (10.0, 50.0)
    assert p.schedule is not None
    assert (p.schedule.min_interval, p.schedule.course) == (129600.0, 16 * 7 * 86400.0)
    assert p.wavelengths == (655, 735)
    # 3 mW/cm² for 30 s less half of 10 s; the fluence phase gives its target
    assert p.fluence_by_wavelength() == pytest.approx({655: 3 * 25 / 1000, 735: 4.0})


def test_every_problem_of_a_file_is_reported_with_its_path() -> None:
    bad = TOML.replace('"30 W/m^2"', '"30 W"').replace('"36 h"', '"36"')
    bad = bad.replace('duty = "50 %"', 'duty = "50 %", shape = "square"')
    bad = bad.replace('name = "Two phases"', 'name = "Two phases"\ncolour = "red"')
    with pytest.raises(FileFormatError) as info:
        loads_protocol(bad, source="bad.toml")
    fields = [p.field for p in info.value.problems]
    assert sorted(fields) == sorted(
        [
            "colour",
            "schedule.min_interval",
            "phases[0].emit.655nm",
            "phases[1].pulse.shape",
        ]
    )
    assert info.value.path == "bad.toml"
    assert str(info.value).startswith("bad.toml: 4 problems")


def test_a_key_that_is_not_a_bare_word_is_quoted_in_the_path() -> None:
    bad = TOML.replace('"0.735 um" = "5 mW/cm^2"', '"0.735 um" = "5"')
    with pytest.raises(FileFormatError) as info:
        loads_protocol(bad)
    assert [p.field for p in info.value.problems] == ['phases[1].emit."0.735 um"']


def test_a_newer_format_says_upgrade_and_nothing_else() -> None:
    data = {**DATA, "format": "lllt-protocol/3", "dose_model": "x", "phases": "?"}
    with pytest.raises(FileFormatError) as info:
        protocol_from_dict(data, source="new.json")
    (problem,) = info.value.problems
    assert problem.field == "format"
    assert "lllt-protocol/3" in problem.message and "upgrade lllt" in problem.message


@pytest.mark.parametrize("fmt", ["lllt-protocol/0", "lllt-protocol/1.0", "LLLT-PROTOCOL/1", 1])
def test_an_unknown_format_says_what_is_expected(fmt: object) -> None:
    with pytest.raises(FileFormatError) as info:
        protocol_from_dict({**DATA, "format": fmt})
    assert [p.field for p in info.value.problems] == ["format"]
    assert 'expected format = "lllt-protocol/1"' in info.value.problems[0].message


def test_cross_field_rules_name_their_field() -> None:
    cases = {
        "phases[0].duration": {"name": "a", "emit": {"655nm": "1 mW/cm^2"}},
        "phases[0].max_duration": {
            "name": "a",
            "duration": "1 min",
            "max_duration": "2 min",
            "emit": {"655nm": "1 mW/cm^2"},
        },
        "phases[0].ramp": {
            "name": "a",
            # under a 30 s ramp to 1 mW/cm², 0.01 J/cm² is reached at sqrt(2 x 10 x 30) = 24.5 s
            "fluence": "0.01 J/cm^2",
            "ramp": "30 s",
            "emit": {"655nm": "1 mW/cm^2"},
        },
    }
    for field, phase in cases.items():
        with pytest.raises(FileFormatError) as info:
            protocol_from_dict({**DATA, "phases": [phase]})
        assert [p.field for p in info.value.problems] == [field]


def test_phase_names_are_unique() -> None:
    phases = [DATA["phases"][0], {**DATA["phases"][1], "name": "warm-up"}]
    with pytest.raises(FileFormatError) as info:
        protocol_from_dict({**DATA, "phases": phases})
    assert info.value.problems == [
        FieldProblem(
            "phases[1].name",
            "'warm-up' is already the name of phases[0]; phase names must be unique",
        )
    ]


def test_more_phases_than_the_wire_carries_are_refused() -> None:
    phases = [{**DATA["phases"][0], "name": f"p{i}"} for i in range(17)]
    with pytest.raises(FileFormatError) as info:
        protocol_from_dict({**DATA, "phases": phases})
    assert [p.field for p in info.value.problems] == ["phases"]
    assert "at most 16" in info.value.problems[0].message


def test_the_default_max_duration_is_documented_factor_times_expected() -> None:
    phase = Phase(name="a", fluence="0.6 J/cm^2", ramp="20 s", emit={"655nm": "2 mW/cm^2"})
    assert phase.expected_duration_s == pytest.approx(0.6 * 1000 / 2 + 10)
    assert phase.max_duration_s == pytest.approx(DEFAULT_MAX_DURATION_FACTOR * 310)


def test_building_in_code_refuses_bare_numbers_too() -> None:
    with pytest.raises(ValidationError, match="without a unit"):
        Phase(name="a", duration=1500, emit={"655nm": "3 mW/cm^2"})
    with pytest.raises(ValidationError, match="655nm"):
        Phase(name="a", duration="25 min", emit={655: "3 mW/cm^2"})


def test_models_are_frozen() -> None:
    p = loads_protocol(TOML)
    with pytest.raises(ValidationError):
        p.phases[0].ramp = 0.0  # type: ignore[misc]


@pytest.mark.parametrize("size", [MAX_FILE_BYTES + 1, 3 * MAX_FILE_BYTES])
def test_large_text_is_refused_before_parsing(size: int) -> None:
    with pytest.raises(FileFormatError, match="at most 1 MB"):
        loads_protocol(b"x" * size)


def test_a_file_that_is_missing_or_a_directory_is_one_clear_problem(tmp_path) -> None:
    with pytest.raises(FileFormatError, match="no such file"):
        load_protocol(tmp_path / "nope.toml")
    (tmp_path / "dir.toml").mkdir()
    with pytest.raises(FileFormatError, match="is a directory"):
        load_protocol(tmp_path / "dir.toml")


def test_duplicate_keys_are_refused_in_yaml_as_in_toml_and_json() -> None:
    text = "format: lllt-protocol/1\nid: a\nid: b\nname: x\nphases: []\n"
    with pytest.raises(FileFormatError, match="duplicate key 'id'"):
        loads_protocol(text, fmt="yaml")


def test_resolve_finds_shipped_protocols_by_id() -> None:
    assert resolve("aga-red-eod-25min") == shipped_dir() / "aga-red-eod-25min.toml"
    assert str(resolve("no-such-id")) == "no-such-id"


# --- round trip through the writers -----------------------------------------------------

quantity = st.floats(min_value=0.01, max_value=10.0)


@st.composite
def protocols(draw: st.DrawFn) -> Protocol:
    phases = []
    for i in range(draw(st.integers(1, 4))):
        emit = {
            f"{wl}nm": f"{draw(quantity)!r} mW/cm^2"
            for wl in draw(st.sets(st.sampled_from([630, 650, 655, 660, 735]), min_size=1))
        }
        phase: dict = {"name": f"phase {i}", "emit": emit}
        if draw(st.booleans()):
            phase["duration"] = f"{draw(st.floats(60, 3600))!r} s"
            phase["ramp"] = f"{draw(st.floats(0, 60))!r} s"
        else:
            phase["fluence"] = f"{draw(quantity)!r} J/cm^2"
        if draw(st.booleans()):
            phase["pulse"] = {
                "frequency": f"{draw(st.floats(2, 10_000))!r} Hz",
                "duty": f"{draw(st.floats(1, 100))!r} %",
            }
        if draw(st.booleans()):
            phase["zones"] = draw(st.sampled_from([["front"], ["top", "back"]]))
        phases.append(phase)
    return Protocol(
        id=draw(st.from_regex(r"[a-z0-9][a-z0-9._-]{0,20}", fullmatch=True)),
        name=draw(st.text(min_size=1, max_size=30).filter(lambda s: s.strip() == s)),
        research=draw(st.booleans()),
        notes=draw(st.none() | st.text(max_size=40)),
        schedule={"min_interval": "36 h", "max_sessions_per_week": draw(st.integers(1, 14))},
        phases=phases,
    )


@settings(max_examples=60, deadline=None)
@given(protocols(), st.sampled_from(["toml", "yaml", "json"]))
def test_written_protocols_read_back_equal(protocol: Protocol, fmt: str) -> None:
    assert loads_protocol(dumps_protocol(protocol, fmt), fmt=fmt) == protocol

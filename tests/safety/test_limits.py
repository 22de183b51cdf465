"""The default limit table and the limits file (which may only tighten it)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from lllt.errors import FileFormatError
from lllt.safety.limits import (
    DEFAULT_LIMITS,
    LIMIT_SPECS,
    DeratePolicy,
    Limits,
    format_duration,
    load_limits,
    parse_limits,
    temperature_thresholds,
)

from ._support import device

HEAD = 'format = "lllt-limits/1"\n'


def test_defaults_are_the_reference_numbers() -> None:
    d = DEFAULT_LIMITS
    # the default limits of docs/safety.md, row by row
    assert (d.warn_temp_c, d.abort_temp_c) == (41.0, 43.0)
    assert d.max_irradiance_mw_cm2 == 100.0
    assert d.max_fluence_session_j_cm2 == 10.0
    assert d.min_interval_s == 12 * 3600
    assert d.max_laser_emitter_mw == 5.0
    assert (d.min_pulse_hz, d.max_pulse_hz) == (2.0, 10_000.0)
    # derived caps follow from the per-session cap (docs/safety.md)
    assert d.max_fluence_24h_j_cm2 == 2 * d.max_fluence_session_j_cm2
    assert d.max_fluence_7d_j_cm2 == 7 * d.max_fluence_session_j_cm2
    assert d.max_sessions_per_week == 7 * 24 * 3600 // d.min_interval_s


def test_every_limit_has_a_file_key_and_a_source() -> None:
    attrs = {s.attr for s in LIMIT_SPECS}
    numeric = {name for name in Limits.__dataclass_fields__ if name not in ("path", "from_file")}
    assert attrs == numeric
    assert all(s.source for s in LIMIT_SPECS)


def test_a_file_lowers_limits_and_records_which(tmp_path: Path) -> None:
    path = tmp_path / "clinic.toml"
    path.write_text(
        HEAD
        + 'description = "Dr. X, for patient Y"\n'
        + 'max_irradiance = "20 mW/cm^2"\n'
        + 'max_fluence_per_session = "6 J/cm^2"\n'
        + 'min_interval = "2 d"\n'
        + "max_sessions_per_week = 3\n"
        + 'warn_temperature = "40 °C"\n'
        + 'max_laser_emitter_power = "4000 uW"\n'
        + 'max_session_duration = "30 min"\n',
        encoding="utf-8",
    )
    lim = load_limits(path)
    assert lim.max_irradiance_mw_cm2 == 20.0
    assert lim.max_fluence_session_j_cm2 == 6.0
    assert lim.min_interval_s == 2 * 86400
    assert lim.max_sessions_per_week == 3
    assert lim.warn_temp_c == 40.0
    assert lim.max_laser_emitter_mw == pytest.approx(4.0)
    assert lim.max_session_s == 1800.0
    assert lim.abort_temp_c == DEFAULT_LIMITS.abort_temp_c  # untouched keys keep the default
    assert lim.source_of("max_irradiance_mw_cm2") == "limits-file"
    assert lim.source_of("abort_temp_c") == "default"
    assert lim.path == str(path)


@pytest.mark.parametrize(
    ("line", "key", "default_text"),
    [
        ('max_irradiance = "150 mW/cm^2"', "max_irradiance", "100 mW/cm²"),
        ('max_fluence_per_session = "12 J/cm^2"', "max_fluence_per_session", "10 J/cm²"),
        ('max_fluence_per_24h = "30 J/cm^2"', "max_fluence_per_24h", "20 J/cm²"),
        ('max_fluence_per_7d = "100 J/cm^2"', "max_fluence_per_7d", "70 J/cm²"),
        ('min_interval = "6 h"', "min_interval", "12 h"),
        ("max_sessions_per_week = 20", "max_sessions_per_week", "14 sessions"),
        ('warn_temperature = "42 °C"', "warn_temperature", "41 °C"),
        ('abort_temperature = "45 degC"', "abort_temperature", "43 °C"),
        ('max_session_duration = "2 h"', "max_session_duration", "1 h"),
        ('max_laser_emitter_power = "7 mW"', "max_laser_emitter_power", "5 mW"),
        ('min_pulse_frequency = "1 Hz"', "min_pulse_frequency", "2 Hz"),
        ('max_pulse_frequency = "20 kHz"', "max_pulse_frequency", "10000 Hz"),
    ],
)
def test_a_file_that_raises_a_default_is_refused_naming_key_default_and_value(
    line: str, key: str, default_text: str
) -> None:
    with pytest.raises(FileFormatError) as info:
        parse_limits(HEAD + line + "\n", source="mine.toml")
    err = info.value
    assert err.exit_code == 2
    assert [p.field for p in err.problems] == [key]
    text = str(err)
    assert "mine.toml" in text
    value_text = line.split("=", 1)[1].strip().strip('"')
    assert value_text in text
    assert f"the default {default_text}" in text
    assert "may only" in text


def test_equal_to_default_in_other_units_is_not_a_raise() -> None:
    lim = parse_limits(HEAD + 'min_interval = "720 min"\nmax_irradiance = "0.1 W/cm^2"\n')
    assert lim.min_interval_s == DEFAULT_LIMITS.min_interval_s
    assert lim.max_irradiance_mw_cm2 == pytest.approx(100.0)


def test_every_problem_is_reported_at_once() -> None:
    text = (
        HEAD
        + 'max_irradiance = "150 mW/cm^2"\n'
        + "max_fluence_per_session = 5\n"  # no unit: never guessed
        + 'min_interval = "3 mW"\n'  # wrong dimension
        + "colour = 'red'\n"  # unknown key
        + 'warn_temperature = "20 °C"\n'  # implausible
    )
    with pytest.raises(FileFormatError) as info:
        parse_limits(text)
    fields = [p.field for p in info.value.problems]
    assert fields == [
        "max_irradiance",
        "max_fluence_per_session",
        "min_interval",
        "colour",
        "warn_temperature",
    ]
    assert "without a unit" in str(info.value)


def test_warning_must_stay_below_abort() -> None:
    with pytest.raises(FileFormatError, match="warning must come first"):
        parse_limits(HEAD + 'abort_temperature = "40 °C"\n')


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        ('format = "lllt-limits/2"\n', "upgrade lllt"),
        ('format = "lllt-protocol/1"\n', "expected 'lllt-limits/1'"),
        ("max_irradiance = '5 mW/cm^2'\n", "missing"),
        ("format = = 1\n", "not valid TOML"),
    ],
)
def test_bad_files_give_a_clear_format_error(text: str, expect: str) -> None:
    with pytest.raises(FileFormatError, match=expect):
        parse_limits(text)


def test_missing_file_is_a_format_error(tmp_path: Path) -> None:
    with pytest.raises(FileFormatError, match="no such file"):
        load_limits(tmp_path / "nope.toml")


def test_thresholds_subtract_the_sensor_uncertainty() -> None:
    dev = device()  # reference-cap: uncertainty 0.5 °C, cut-off 42.5 °C
    th = temperature_thresholds(DEFAULT_LIMITS, dev.limits)
    assert th.warn_c == pytest.approx(40.5)
    assert th.abort_c == pytest.approx(42.5)
    lowered = parse_limits(HEAD + 'warn_temperature = "39 °C"\nabort_temperature = "41 °C"\n')
    th = temperature_thresholds(lowered, dev.limits)
    assert (th.warn_c, th.abort_c) == pytest.approx((38.5, 40.5))


def test_abort_threshold_never_above_the_device_cutoff() -> None:
    from dataclasses import replace

    lim = replace(device().limits, cutoff_c=41.0, sensor_uncertainty_c=0.2)
    th = temperature_thresholds(DEFAULT_LIMITS, lim)
    assert th.abort_c == 41.0
    assert th.warn_c <= th.abort_c


def test_derate_policy_steps_down_to_its_floor_and_stays() -> None:
    p = DeratePolicy(interval_s=10, factor=0.9, floor_permille=250)
    seq = [1000]
    for _ in range(20):
        seq.append(p.next_permille(seq[-1]))
    assert seq[1:4] == [900, 810, 729]
    assert all(b <= a for a, b in itertools.pairwise(seq))
    assert seq[-1] == 250 and min(seq) == 250


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(45, "45 s"), (90, "2 min"), (3600, "1 h"), (43080, "11 h 58 min"), (36 * 3600, "36 h"),
     (50 * 3600, "50 h"), (80 * 3600, "3 d 8 h")],
)  # fmt: skip
def test_format_duration_rounds_up(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text

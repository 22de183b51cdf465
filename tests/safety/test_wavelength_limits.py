"""The laser limit by wavelength (IEC 60825-1 Class 3R) and the total-fluence limit.

Acceptance (issue 10): a 735 nm laser channel at 3 mW is lowered with the wavelength limit
named; a three-colour protocol above the total-fluence limit is refused with both limits
named. Each test fails when its control is removed: with a flat 5 mW laser cap the 735 nm
emitter passes, and without the total limit the three-colour plan is accepted.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from lllt.info import DeviceInfo
from lllt.safety.history import MemoryHistory
from lllt.safety.limits import DEFAULT_LIMITS, c4, laser_emitter_limit_mw, parse_limits
from lllt.safety.preflight import check

from ._support import MIN, NOW, device, make_plan, step


def laser_device(wavelength_nm: int = 735, emitter_mw: float = 3.0) -> DeviceInfo:
    """reference-cap whose far-red channels are lasers of ``emitter_mw`` at full output."""
    hello = device().hello
    channels = tuple(
        replace(c, kind="laser", wavelength_nm=wavelength_nm, emitter_max_mw=emitter_mw)
        if c.wavelength_nm == 735
        else c
        for c in hello.channels
    )
    return DeviceInfo(replace(hello, channels=channels))


@pytest.mark.parametrize(
    ("nm", "mw"),
    [(400, 5.0), (655, 5.0), (700, 5.0), (735, 2.291), (808, 3.207), (850, 3.891), (1050, 9.77)],
)
def test_class_3r_limit_by_wavelength(nm: int, mw: float) -> None:
    assert laser_emitter_limit_mw(nm) == pytest.approx(mw, rel=1e-3)


def test_c4_and_the_wavelengths_without_a_known_limit() -> None:
    assert c4(700) == 1.0 and c4(800) == pytest.approx(10**0.2)
    assert laser_emitter_limit_mw(399) is None and laser_emitter_limit_mw(1051) is None
    # a limits file's lower 400-700 nm value scales the infrared limit by the same ratio
    assert laser_emitter_limit_mw(735, 4.0) == pytest.approx(4.0 * 0.39 * c4(735))


def test_a_735_nm_laser_at_3_mW_is_lowered_with_the_wavelength_limit_named() -> None:
    dev = laser_device(735, 3.0)  # 10 mW/cm² at full output = 3 mW per laser
    plan = make_plan(dev, step(dev, {735: 10.0}, duration=10 * MIN))
    result = check(plan, dev, None, MemoryHistory(), NOW)
    (reason,) = [r for r in result.reasons if r.constraint == "laser_emitter_power"]
    assert reason.action == "tighten" and reason.source == "default"
    assert "735 nm" in reason.message and "2.29 mW" in reason.message
    assert "C4" in reason.message and "IEC 60825-1" in reason.message
    assert "visible" not in reason.message
    new = result.plan.steps[0].setpoints[0].irradiance_mw_cm2
    assert new / 10.0 * 3.0 <= laser_emitter_limit_mw(735)  # type: ignore[operator]
    assert new == pytest.approx(2.291 / 3.0 * 10.0, abs=0.011)


def test_a_visible_laser_keeps_the_5_mW_limit_and_leds_have_none() -> None:
    dev = laser_device(690, 6.0)  # 10 mW/cm² = 6 mW per laser at 690 nm
    plan = make_plan(dev, step(dev, {690: 10.0, 655: 3.0}, duration=10 * MIN))
    result = check(plan, dev, None, MemoryHistory(), NOW)
    (reason,) = [r for r in result.reasons if r.constraint == "laser_emitter_power"]
    assert "5 mW limit for lasers at 400-700 nm" in reason.message
    by_wl = {sp.wavelength_nm: sp.irradiance_mw_cm2 for sp in result.plan.steps[0].setpoints}
    assert by_wl[690] == pytest.approx(5 / 6 * 10, abs=0.011)
    assert by_wl[655] == 3.0  # LEDs (IEC 62471) get no per-emitter cap


def test_a_laser_outside_the_known_range_is_refused() -> None:
    dev = laser_device(1200, 1.0)
    plan = make_plan(dev, step(dev, {1200: 1.0}, duration=10 * MIN))
    result = check(plan, dev, None, MemoryHistory(), NOW)
    assert not result.accepted
    refused = [r for r in result.refusals if r.constraint == "laser_emitter_power"]
    assert len(refused) == 4 and "1200 nm" in refused[0].message
    assert "400-1050 nm" in refused[0].message


def test_a_limits_file_lowers_the_infrared_limit_in_proportion() -> None:
    dev = laser_device(735, 2.0)  # 2 mW per laser: within the default 2.29 mW
    plan = make_plan(dev, step(dev, {735: 10.0}, duration=10 * MIN))
    assert check(plan, dev, None, MemoryHistory(), NOW, research_ok=True).accepted
    lim = parse_limits('format = "lllt-limits/1"\nmax_laser_emitter_power = "4 mW"\n')
    result = check(plan, dev, lim, MemoryHistory(), NOW, research_ok=True)
    (reason,) = [r for r in result.reasons if r.constraint == "laser_emitter_power"]
    assert reason.source == "limits-file" and "1.83 mW" in reason.message


# --- the total over wavelengths ------------------------------------------------------------


def test_a_three_colour_session_above_the_total_is_refused_naming_both_limits() -> None:
    dev = device("led-helmet-rgb")
    # 4 mW/cm² x (1080 s - 5 s) = 4.30 J/cm² per wavelength: each within 10, 12.9 in total
    plan = make_plan(dev, step(dev, {630: 4.0, 650: 4.0, 660: 4.0}, duration=18 * MIN, ramp=10))
    result = check(plan, dev, None, MemoryHistory(), NOW, ambient_c=20.0)
    assert not result.accepted
    (reason,) = [r for r in result.refusals if r.constraint == "session_total_fluence"]
    assert reason.source == "default" and reason.limit == 10.0
    assert reason.observed == pytest.approx(3 * 4.0 * 1075 / 1000)
    assert "630 nm 4.30 + 650 nm 4.30 + 660 nm 4.30 = 12.90 J/cm²" in reason.message
    assert "10 J/cm² total per-session limit" in reason.message
    assert "within the 10 J/cm² per-wavelength limit" in reason.message
    assert "session_fluence" not in {r.constraint for r in result.refusals}


def test_the_total_is_per_zone_not_over_the_whole_cap() -> None:
    dev = device("led-helmet-rgb")
    # each zone gets one wavelength only: no zone receives more than 4.3 J/cm²
    zones = {c.zone for c in dev.channels}
    st = step(dev, {630: 4.0, 650: 4.0, 660: 4.0}, duration=18 * MIN)
    one_per_zone = tuple(
        sp for sp in st.setpoints if sp.wavelength_nm == {0: 630, 1: 650, 2: 660}.get(sp.zone)
    )
    assert len(zones) == 4 and one_per_zone
    plan = make_plan(dev, replace(st, setpoints=one_per_zone))
    result = check(plan, dev, None, MemoryHistory(), NOW, ambient_c=20.0)
    assert "session_total_fluence" not in {r.constraint for r in result.reasons}


def test_the_total_limit_is_a_key_of_the_limits_file_that_only_tightens() -> None:
    assert DEFAULT_LIMITS.max_total_fluence_session_j_cm2 == 10.0
    lim = parse_limits('format = "lllt-limits/1"\nmax_total_fluence_per_session = "5 J/cm^2"\n')
    dev = device("led-helmet-rgb")
    plan = make_plan(dev, step(dev, {630: 2.0, 650: 2.0, 660: 2.0}, duration=18 * MIN))
    assert check(plan, dev, None, MemoryHistory(), NOW).accepted  # 6.45 J/cm²: Kim 2013
    result = check(plan, dev, lim, MemoryHistory(), NOW)
    (reason,) = [r for r in result.refusals if r.constraint == "session_total_fluence"]
    assert reason.source == "limits-file" and "5 J/cm² total" in reason.message
    with pytest.raises(Exception, match="may only lower"):
        parse_limits('format = "lllt-limits/1"\nmax_total_fluence_per_session = "12 J/cm^2"\n')


def test_protocol_check_refuses_a_three_colour_file_above_the_total(tmp_path: Path) -> None:
    path = tmp_path / "rgb.toml"
    path.write_text(
        'format = "lllt-protocol/1"\nid = "rgb"\nname = "rgb"\n[[phases]]\nname = "t"\n'
        'duration = "18 min"\nramp = "10 s"\n'
        'emit = { "630nm" = "4 mW/cm^2", "650nm" = "4 mW/cm^2", "660nm" = "4 mW/cm^2" }\n',
        encoding="utf-8",
    )
    result = subprocess.run(
        [sys.executable, "-m", "lllt", "protocol", "check", str(path), "-p", "led-helmet-rgb"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Traceback" not in result.stderr
    assert result.returncode == 1, result.stdout + result.stderr
    assert "REFUSED" in result.stdout and "total per-session limit" in result.stdout

"""``lllt protocol check | list | schema`` as a user runs them (real processes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lllt.protocol import shipped_protocols

from ._support import BAD, assert_no_traceback, run_lllt


def test_check_prints_the_analysis_table() -> None:
    result = run_lllt("protocol", "check", "aga-led-rgb-daily-18min", "--profile", "led-helmet-rgb")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "aga-led-rgb-daily-18min: valid on led-helmet-rgb" in out
    assert "treatment" in out and "18 min" in out and "10 s" in out and "CW" in out
    assert "630 nm 2.15, 650 nm 2.15, 660 nm 2.15" in out  # per wavelength, never summed
    assert "at least 20 h between sessions, at most 7 per week, course 24 weeks" in out
    assert "Kim H" in out


def test_check_without_a_device_validates_and_computes_what_needs_none(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        "format: lllt-protocol/1\nid: mixed\nname: mixed keys\nphases:\n"
        "  - name: a\n    duration: 10 min\n    emit: {655nm: 3 mW/cm^2, ch1: 2 mW/cm^2}\n"
        "    pulse: {frequency: 10 Hz, duty: 50 %}\n",
        encoding="utf-8",
    )
    result = run_lllt("protocol", "check", str(path), "--json")
    assert result.returncode == 0, result.stderr
    (entry,) = json.loads(result.stdout)
    assert entry["valid"] and entry["device"] is None
    assert entry["fluence_j_cm2"] == {"655": pytest.approx(3 * 0.5 * 600 / 1000)}
    # a channel key needs a device to know its wavelength: reported by channel instead
    assert entry["phases"][0]["channel_fluence_j_cm2"] == {"ch1": pytest.approx(0.6)}
    assert entry["phases"][0]["pulse"] == {"frequency_hz": 10.0, "duty_pct": 50.0}


def test_a_valid_file_the_device_cannot_run_exits_2() -> None:
    shipped = [p for p in shipped_protocols() if p.stem == "aga-678-twice-weekly-20min"]
    result = run_lllt("protocol", "check", str(shipped[0]), "--profile", "reference-cap")
    assert result.returncode == 2
    assert_no_traceback(result.stderr)
    assert result.stderr.splitlines() == [
        f"error: {shipped[0]}: phases[0].emit.678nm: phase 'treatment': the device has no "
        "678 nm channel; its wavelengths are 655 nm, 735 nm"
    ]
    assert "not runnable on reference-cap" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--profile", "no-such-cap"], "unknown simulator profile 'no-such-cap'"),
        (["--profile", "reference-cap", "--device", "sim://reference-cap"], "not both"),
    ],
)
def test_bad_device_options_exit_2_with_one_message(args: list[str], message: str) -> None:
    result = run_lllt("protocol", "check", "aga-red-eod-25min", *args)
    assert result.returncode == 2
    assert_no_traceback(result.stderr)
    assert message in result.stderr


def test_check_against_a_simulated_device_url() -> None:
    pytest.importorskip("lllt_sim.device", reason="the in-process simulator (sim://) is absent")
    result = run_lllt(
        "protocol", "check", "aga-red-eod-25min", "--device", "sim://reference-cap", "--json"
    )
    assert_no_traceback(result.stderr)
    assert result.returncode == 0, result.stderr
    (entry,) = json.loads(result.stdout)
    assert entry["valid"] and entry["device"]["url"] == "sim://reference-cap"
    # the Lanzafame scalp dose
    assert entry["fluence_j_cm2"] == {"655": pytest.approx(0.35 * 1495 / 1000)}


def test_list_shows_every_shipped_protocol_with_its_profile() -> None:
    result = run_lllt("protocol", "list", "--json")
    assert result.returncode == 0, result.stderr
    entries = {e["id"]: e for e in json.loads(result.stdout)}
    assert set(entries) == {p.stem for p in shipped_protocols()}
    assert entries["aga-red-eod-25min"]["profile"] == "reference-cap"
    assert entries["aga-red-eod-25min"]["wavelengths_nm"] == [655]
    assert entries["aga-red-eod-25min"]["session_s"] == 1500.0
    assert entries["research-far-red-735nm"]["research"] is True
    text = run_lllt("protocol", "list").stdout
    assert "aga-678-twice-weekly-20min" in text and "laser-cap-678" in text


def test_schema_to_stdout_and_a_clear_error_for_an_unwritable_file(tmp_path: Path) -> None:
    result = run_lllt("protocol", "schema")
    assert result.returncode == 0
    assert json.loads(result.stdout)["properties"]["format"]["const"] == "lllt-protocol/1"
    result = run_lllt("protocol", "schema", "-o", str(tmp_path / "missing" / "s.json"))
    assert result.returncode == 2
    assert_no_traceback(result.stderr)
    assert "cannot write" in result.stderr


def test_valid_and_invalid_files_together_exit_2_and_report_each() -> None:
    good = shipped_protocols()[0]
    bad = BAD / "duty-over-100.toml"
    result = run_lllt("protocol", "check", str(good), str(bad), "--json")
    assert result.returncode == 2
    entries = json.loads(result.stdout)
    assert [e["valid"] for e in entries] == [True, False]
    assert len(result.stderr.splitlines()) == 1 and str(bad) in result.stderr

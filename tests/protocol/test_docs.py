"""docs/protocol-format.md: its examples load, compile and run as the text says."""

from __future__ import annotations

import builtins
import re

import pytest

from lllt.info import DeviceInfo
from lllt.plan import compile
from lllt.protocol import loads_protocol

from ._support import REPO

DOC = (REPO / "docs" / "protocol-format.md").read_text(encoding="utf-8")


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC, flags=re.S)


def test_the_complete_toml_example_is_valid_and_runs_on_the_reference_cap() -> None:
    protocol = loads_protocol(blocks("toml")[0], source="docs example")
    plan = compile(protocol, DeviceInfo.for_profile("reference-cap"))
    assert [s.name for s in plan.steps] == ["warm-up", "treatment"]
    # ch1 is the front zone's 735 nm channel; 2 J/cm² at 3 mW/cm² x 50 % is 1333 s. The
    # front and top 655 nm channels also get the warm-up: 2 mW/cm² x (120 s - 5 s)
    warm_up = 2 * (120 - 10 / 2) / 1000
    assert plan.fluence_by_wavelength() == pytest.approx({655: 2.0 + warm_up, 735: 2.0})
    assert plan.steps[1].expected_duration_s == pytest.approx(2 * 1000 / 1.5)


def test_the_yaml_example_is_valid() -> None:
    assert loads_protocol(blocks("yaml")[0], fmt="yaml").phases[0].duration == 1500.0


def test_the_python_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    (code,) = blocks("python")
    # builtins.compile: this module's name `compile` is lllt.plan.compile
    exec(builtins.compile(code, "docs/protocol-format.md", "exec"), {"__name__": "example"})
    assert "{655: 2.39, 735: 2.0}" in capsys.readouterr().out

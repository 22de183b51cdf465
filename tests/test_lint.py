"""Lint is part of the test suite, so `pytest` alone says whether a change may land."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PATHS = ["src", "simulator", "tests", "bench"]


def _ruff() -> list[str]:
    exe = shutil.which("ruff")
    if exe is None:
        candidate = Path(sys.executable).with_name("ruff")
        if not candidate.exists():
            pytest.skip("ruff is not installed (pip install -e '.[test]')")
        exe = str(candidate)
    return [exe]


def test_ruff_check() -> None:
    out = subprocess.run(
        [*_ruff(), "check", *PATHS], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_ruff_format() -> None:
    out = subprocess.run(
        [*_ruff(), "format", "--check", *PATHS],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_mypy() -> None:
    try:
        from mypy import api
    except ImportError:
        pytest.skip("mypy is not installed (pip install -e '.[test]')")
    stdout, stderr, status = api.run(["--config-file", str(ROOT / "pyproject.toml")])
    assert status == 0, stdout + stderr

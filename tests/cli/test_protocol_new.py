"""`lllt protocol new`: a commented template that passes `lllt protocol check` as written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

LLLT = [sys.executable, "-m", "lllt"]


def lllt(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(
        [*LLLT, *args], capture_output=True, text=True, timeout=60, check=False, cwd=cwd
    )
    assert "Traceback" not in out.stderr, out.stderr
    return out


@pytest.mark.parametrize(
    ("args", "profile"),
    [
        ([], "reference-cap"),
        (["--profile", "led-helmet-rgb"], "led-helmet-rgb"),
        (["--profile", "laser-cap-678"], "laser-cap-678"),
        (["--from", "aga-red-eod-25min"], "reference-cap"),
        (["--from", "aga-led-rgb-daily-18min"], "led-helmet-rgb"),
    ],
)
def test_the_template_passes_check_as_written(
    tmp_path: Path, args: list[str], profile: str
) -> None:
    out = lllt("protocol", "new", "mine.toml", *args, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert f"lllt protocol check mine.toml --profile {profile}" in out.stdout
    text = (tmp_path / "mine.toml").read_text()
    assert text.startswith("#") and 'id = "mine"' in text
    check = lllt("protocol", "check", "mine.toml", "--profile", profile, cwd=tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "valid on" in check.stdout and "accepted" in check.stdout


def test_it_never_overwrites_without_force(tmp_path: Path) -> None:
    (tmp_path / "mine.toml").write_text("keep me\n")
    out = lllt("protocol", "new", "mine.toml", cwd=tmp_path)
    assert out.returncode == 2 and "--force" in out.stderr
    assert (tmp_path / "mine.toml").read_text() == "keep me\n"
    assert lllt("protocol", "new", "mine.toml", "--force", cwd=tmp_path).returncode == 0


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["mine.yaml"], "TOML"),
        (["nowhere/mine.toml"], "does not exist"),
        (["mine.toml", "--profile", "no-such-cap"], "profile"),
        (["mine.toml", "--from", "no-such-protocol"], "no-such-protocol"),
    ],
)
def test_bad_input_is_one_message(tmp_path: Path, args: list[str], words: str) -> None:
    out = lllt("protocol", "new", *args, cwd=tmp_path)
    assert out.returncode == 2, out.stdout + out.stderr
    assert words in out.stderr

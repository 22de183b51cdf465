"""A new user's walk: the README's quick start and Python API, in order, on a fresh machine.

The checkout is copied to a temporary folder, HOME is an empty folder and LLLT_DB is
unset; the ``sh`` blocks of "Quick start" (up to "**Tests.**", which would run this very
suite) run in one bash with ``set -e``, exactly as written, then every ``python`` block of
"Python API" runs with the virtual environment's Python. A step the README does not show
fails the walk: nothing here prepares anything but the copy and the empty HOME.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
IGNORE = shutil.ignore_patterns(
    ".git", ".venv*", "__pycache__", "*.egg-info", "build", "dist", ".pytest_cache",
    ".mypy_cache", ".ruff_cache", "*.db", "*.db-wal", "*.db-shm",
)  # fmt: skip


def _section(text: str, title: str, end: str) -> str:
    start = text.index(title)
    stop = text.index(end, start + len(title))
    return text[start:stop]


def _blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, re.S)


def walk_steps() -> tuple[list[str], list[str]]:
    text = README.read_text(encoding="utf-8")
    quick = _section(text, "## Quick start", "**Tests.**")
    api = _section(text, "## Python API", "**Time.**")
    return _blocks(quick, "sh"), _blocks(api, "python")


def test_the_readme_has_a_walk() -> None:
    shell, python = walk_steps()
    joined = "\n".join(shell)
    assert "python3 -m venv" in joined and "pip install ." in joined
    assert "lllt run" in joined and "lllt history" in joined
    assert python and "PreflightRefused" in python[0]


@pytest.mark.slow
def test_a_new_users_walk(tmp_path: Path) -> None:
    checkout = tmp_path / "lllt"
    shutil.copytree(ROOT, checkout, ignore=IGNORE, symlinks=True)
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("LLLT_DB", "VIRTUAL_ENV")}
    env.update(HOME=str(home), XDG_DATA_HOME=str(home / ".local" / "share"))
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if "venv" not in p
    )
    shell, python = walk_steps()
    script = "set -euo pipefail\n" + "\n".join(shell)
    out = subprocess.run(
        ["bash", "-c", script], cwd=checkout, env=env, capture_output=True, text=True,
        timeout=900, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "Traceback" not in out.stderr, out.stderr
    assert "session 1: completed" in out.stdout
    assert (checkout / "session.png").stat().st_size > 10_000
    assert (checkout / "my-protocol.toml").exists()
    venv_python = checkout / ".venv" / "bin" / "python"
    for block in python:
        run = subprocess.run(
            [str(venv_python), "-c", block], cwd=checkout, env=env, capture_output=True,
            text=True, timeout=300, check=False,
        )  # fmt: skip
        assert run.returncode == 0, block + run.stdout + run.stderr
        assert "Traceback" not in run.stderr, run.stderr
    # the person's own log (the user data folder under the empty HOME) was never touched
    assert not (home / ".local" / "share" / "lllt").exists()

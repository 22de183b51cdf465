"""Helpers for the session tests: the real CLI in a subprocess, short protocol files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lllt_sim.harness import ServedSimulator

LLLT = [sys.executable, "-m", "lllt"]


def lllt(*args: str, timeout: float = 60.0, **kw: Any) -> subprocess.CompletedProcess[str]:
    """Run the CLI as a user would; never a traceback on stderr."""
    out = subprocess.run(
        [*LLLT, *args], capture_output=True, text=True, timeout=timeout, check=False, **kw
    )
    assert "Traceback" not in out.stderr, out.stderr
    return out


def history(db: Path) -> dict[str, Any]:
    out = lllt("history", "--db", str(db), "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def write_protocol(
    path: Path,
    *,
    duration: str | None = "5 min",
    fluence: str | None = None,
    max_duration: str | None = None,
    emit: str = '"655nm" = "3 mW/cm^2"',
    ramp: str = "0 s",
    min_interval: str = "12 h",
    pid: str = "test-protocol",
) -> Path:
    length = f'duration = "{duration}"' if fluence is None else f'fluence = "{fluence}"'
    if max_duration is not None:
        length += f'\nmax_duration = "{max_duration}"'
    path.write_text(
        f"""format = "lllt-protocol/1"
id = "{pid}"
name = "test protocol"
references = ["test"]

[schedule]
min_interval = "{min_interval}"
max_sessions_per_week = 7
course = "1 week"

[[phases]]
name = "treatment"
{length}
ramp = "{ramp}"
emit = {{ {emit} }}
zones = ["all"]
""",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def served_pty() -> Any:
    try:
        m, s = os.openpty()
    except OSError:
        pytest.skip("this machine has no pseudo-terminals")
    os.close(m)
    os.close(s)
    servers: list[ServedSimulator] = []

    def start(*args: str) -> ServedSimulator:
        srv = ServedSimulator("--pty", *args)
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        srv.stop()

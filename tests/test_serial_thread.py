"""The serial transport where the event loop has no ``add_reader`` (Windows' proactor
loop): a reader thread, forced here on Linux two ways."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lllt.device import Cap
from lllt_sim.harness import ServedSimulator

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="serves on a POSIX pty")


class NoReaderLoop(asyncio.SelectorEventLoop):
    """An event loop without reader callbacks, as on Windows."""

    def add_reader(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError

    def add_writer(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError


def test_a_loop_without_add_reader_uses_the_reader_thread() -> None:
    async def main(url: str) -> tuple[str, str, float]:
        async with Cap.connect(url) as cap:
            status = await cap.status()
            reader = cap.transport.reader  # type: ignore[attr-defined]
            return reader, cap.info.model, status.ambient

    with ServedSimulator("--pty") as served, asyncio.Runner(loop_factory=NoReaderLoop) as r:
        reader, model, ambient = r.run(main(served.url))
    assert reader == "thread"
    assert model and ambient == pytest.approx(25.0, abs=1.0)


def test_a_whole_session_through_the_reader_thread_from_the_cli(tmp_path: Path) -> None:
    proto = tmp_path / "p.toml"
    proto.write_text(
        'format = "lllt-protocol/1"\nid = "short"\nname = "short"\nreferences = ["t"]\n'
        '[schedule]\nmin_interval = "12 h"\n[[phases]]\nname = "treatment"\n'
        'duration = "2 min"\nemit = { "655nm" = "3 mW/cm^2" }\n'
    )
    env = {**os.environ, "LLLT_SERIAL_READER": "thread"}
    with ServedSimulator("--pty", "--speed", "20") as served:
        out = subprocess.run(
            [sys.executable, "-m", "lllt", "run", str(proto), "--device", served.url,
             "--db", str(tmp_path / "log.db"), "--yes"],
            capture_output=True, text=True, timeout=120, check=False, env=env,
        )  # fmt: skip
    assert "Traceback" not in out.stderr, out.stderr
    assert out.returncode == 0, out.stdout + out.stderr
    assert "session 1: completed" in out.stdout

"""Drive the real CLI on a pseudo-terminal, as a person at a terminal would."""

from __future__ import annotations

import contextlib
import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

LLLT = [sys.executable, "-m", "lllt"]


class PtyRun:
    """``lllt ARGS`` with stdin, stdout and stderr on one pseudo-terminal."""

    def __init__(self, *args: str, cwd: Path | None = None, env: dict[str, str] | None = None):
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(
            [*LLLT, *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            cwd=cwd,
            env={**os.environ, **(env or {})},
            start_new_session=True,  # the pty becomes its controlling terminal
        )
        # the slave stays open here too until the end: otherwise the child's exit hangs up
        # the terminal and Linux may discard its last output before the master reads it
        self.slave = slave
        self.output = ""

    def read_until(self, text: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            left = deadline - time.monotonic()
            if left <= 0 or not self._read(left):
                raise AssertionError(f"{text!r} not seen; output so far:\n{self.output}")
        return self.output

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return False
        try:
            data = os.read(self.master, 65536)
        except OSError:
            return False
        if not data:
            return False
        self.output += data.decode("utf-8", errors="replace")
        return True

    def send(self, text: str) -> None:
        os.write(self.master, text.encode())

    def interrupt(self) -> None:
        """Ctrl-C as the terminal sends it: SIGINT to the foreground process."""
        os.killpg(self.proc.pid, signal.SIGINT)

    def wait(self, timeout: float = 30.0) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            self._read(0.05)
        rc = self.proc.wait(max(0.1, deadline - time.monotonic()))
        while self._read(0.3):
            pass
        self._close()
        return rc

    def _close(self) -> None:
        for fd in (self.slave, self.master):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.slave = self.master = -1

    def __enter__(self) -> PtyRun:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.master >= 0:
            self._close()

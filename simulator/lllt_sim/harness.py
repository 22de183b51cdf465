"""A simulated cap served from another process, for tests and benchmarks.

``ServedSimulator("--pty", "--speed", "10")`` starts ``lllt sim serve`` in a subprocess
and reads the URL it prints (``serial:///dev/pts/N`` or ``socket://HOST:PORT``); use it as
a context manager or call ``stop()``, which interrupts the server like Ctrl-C and reaps
it. Talking to a separate process over a real pseudo-terminal or socket is the point:
nothing is shared with the host under test but bytes.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys

_URL = re.compile(r"\b((?:serial|socket|ble)://\S+)")


class ServedSimulator:
    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "lllt", "sim", "serve", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        match = _URL.search(line)
        if match is None:
            self.stop()
            raise RuntimeError(f"lllt sim serve did not say where it serves: {line!r}")
        self.url = match.group(1).rstrip(",;")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()

    def __enter__(self) -> ServedSimulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

"""Device targets for the contract suite: every test here runs against each of them.

- ``sim``: the in-process simulator on the virtual clock (``sim://...?speed=max``);
- ``pty``: ``lllt sim serve --pty`` in a subprocess, reached with ``serial://``;
- ``tcp``: ``lllt sim serve --tcp`` in a subprocess, reached with ``socket://``;
- ``--lllt-device URL`` adds a real cap (or any other URL) as a target.

Served simulators run at ``SERVE_SPEED``× real time so that plans of a few simulated
seconds finish quickly on the wall clock; in-process ones race on the virtual clock.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from lllt import clock
from lllt.device import Cap
from lllt.transport import wants_virtual_clock

SERVE_SPEED = 10.0
LLLT = [sys.executable, "-m", "lllt"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--lllt-device",
        action="append",
        default=[],
        help="also run the contract suite against this device URL (a real cap)",
    )


@dataclass
class Target:
    name: str
    url: str
    #: device seconds per wall second, to size waits on served devices
    speed: float | None

    def run(
        self, body: Callable[[Cap], Awaitable[Any]], *, timeout: float = 60.0, **kw: Any
    ) -> Any:
        """Connect, run ``await body(cap)``, close; on the loop this URL needs."""
        virtual, speed = wants_virtual_clock(self.url)

        async def main() -> Any:
            import asyncio

            async with Cap.connect(self.url, **kw) as cap:
                return await asyncio.wait_for(body(cap), timeout)

        return clock.run(main(), virtual=virtual, speed=speed)


class Server:
    """``lllt sim serve`` in a subprocess; the URL comes from its first line of output."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [*LLLT, "sim", "serve", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        match = re.search(r"\b((?:serial|socket)://\S+)", line)
        if match is None:
            self.stop()
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise RuntimeError(f"lllt sim serve did not say where it serves: {line!r} {err!r}")
        self.url = match.group(1).rstrip(",;")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()


def _can_pty() -> bool:
    try:
        master, slave = os.openpty()
    except OSError:
        return False
    os.close(master)
    os.close(slave)
    return True


@pytest.fixture(scope="session")
def pty_server() -> Iterator[Server]:
    if not _can_pty():
        pytest.skip("this machine has no pseudo-terminals")
    server = Server("--pty", "--speed", str(SERVE_SPEED), "--profile", "reference-cap")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def tcp_server() -> Iterator[Server]:
    server = Server(
        "--tcp", "127.0.0.1:0", "--speed", str(SERVE_SPEED), "--profile", "reference-cap"
    )
    yield server
    server.stop()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "target" in metafunc.fixturenames:
        names = ["sim", "pty", "tcp"]
        names += [f"device:{u}" for u in metafunc.config.getoption("--lllt-device")]
        metafunc.parametrize("target", names, indirect=True)


@pytest.fixture
def target(request: pytest.FixtureRequest) -> Target:
    name = request.param
    if name == "sim":
        return Target("sim", "sim://reference-cap?speed=max", None)
    if name == "pty":
        server = request.getfixturevalue("pty_server")
        return Target("pty", server.url, SERVE_SPEED)
    if name == "tcp":
        server = request.getfixturevalue("tcp_server")
        return Target("tcp", server.url, SERVE_SPEED)
    return Target(name, name.removeprefix("device:"), 1.0)

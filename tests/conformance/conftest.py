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
import sys
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from lllt import clock
from lllt.device import Cap
from lllt.transport import wants_virtual_clock
from lllt_sim.harness import ServedSimulator

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


#: ``lllt sim serve`` in a subprocess (kept under this name for the tests importing it)
Server = ServedSimulator


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

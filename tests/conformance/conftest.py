"""Device targets for the contract suite: every test here runs against each of them.

- ``sim``: the in-process simulator on the virtual clock (``sim://...?speed=max``);
- ``pty``: ``lllt sim serve --pty`` in a subprocess, reached with ``serial://``;
- ``tcp``: ``lllt sim serve --tcp`` in a subprocess, reached with ``socket://``;
- ``ble23``, ``ble247``: the simulator as a Bumble GATT peripheral on an in-process link,
  reached by the real BLE transport (bleak, with the Bumble backend) at ATT MTU 23 / 247;
- ``blefw23``, ``blefw247``: the firmware library (as ``fw``) behind the same Bumble GATT
  peripheral, reached by the same BLE transport (``blesim://...&device=fw``);
- ``fw``: the C firmware core as a library in this process, with the simulator's plant,
  on the virtual clock (``fw://...?speed=max``; ``make -C firmware lib`` on demand);
- ``fwhost``: the host firmware executable (``make -C firmware host``) with its C plant,
  serving its UART on TCP, reached with ``socket://``;
- ``qemu``: the Cortex-M3 firmware image (``make -C firmware qemu``) under
  ``qemu-system-arm -M mps2-an385``, UART0 on TCP, reached with ``socket://`` (its
  SysTick at ``QEMU_SPEED``× real time, an option of the image given by semihosting);
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
FWHOST_SPEED = 10.0  # tests/conftest.py serves the host firmware at this speed
QEMU_SPEED = 10.0  # ... and the QEMU image (SysTick that much faster)
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


class BleTarget(Target):
    """A ``blesim://`` target: after each test, no write or notification exceeded ATT MTU − 3
    (Bumble does not enforce the limit, so the suite does) and the MTU is the one asked for."""

    def run(
        self, body: Callable[[Cap], Awaitable[Any]], *, timeout: float = 60.0, **kw: Any
    ) -> Any:
        mtu = int(self.url.rsplit("mtu=", 1)[1])

        async def checked(cap: Cap) -> Any:
            result = await body(cap)
            transport: Any = cap.transport
            stats = transport.setup.peripheral.stats
            assert transport.att_mtu == mtu
            assert stats.writes > 0 and stats.oversize_writes == 0
            assert max(n for _, n in stats.write_sizes) <= mtu - 3
            assert all(n <= m - 3 for m, n in stats.write_sizes)
            assert stats.max_notification <= mtu - 3
            return result

        return super().run(checked, timeout=timeout, **kw)


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


#: every target the suite runs on by default
TARGETS = ["sim", "pty", "tcp", "ble23", "ble247", "fw", "blefw23", "blefw247", "fwhost", "qemu"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "target" in metafunc.fixturenames:
        names = list(TARGETS)
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
    if name in ("ble23", "ble247"):
        return BleTarget(name, f"blesim://reference-cap?speed=max&mtu={name[3:]}", None)
    if name in ("blefw23", "blefw247"):
        request.getfixturevalue("fw_library")
        url = f"blesim://reference-cap?speed=max&device=fw&mtu={name[5:]}"
        return BleTarget(name, url, None)
    if name == "tcp":
        server = request.getfixturevalue("tcp_server")
        return Target("tcp", server.url, SERVE_SPEED)
    if name == "fw":
        request.getfixturevalue("fw_library")
        return Target("fw", "fw://reference-cap?speed=max", None)
    if name == "fwhost":
        server = request.getfixturevalue("fwhost_server")
        return Target("fwhost", server.url, FWHOST_SPEED)
    if name == "qemu":
        server = request.getfixturevalue("qemu_server")
        return Target("qemu", server.url, QEMU_SPEED)
    return Target(name, name.removeprefix("device:"), 1.0)

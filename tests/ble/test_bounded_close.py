"""Closing a BLE link always returns within its bound: during the connect, during a
session, and after the peer vanished (a peer that never answers again).

The peer is the simulator's Bumble peripheral on an in-process link; "vanished" removes
its controller from the link, so nothing the host sends is ever answered and no
disconnect is ever reported (as when a cap's battery dies mid-connection).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from lllt import clock
from lllt import wire as W
from lllt.device import Cap
from lllt.errors import ConnectionFailed
from lllt.transport import parse_url
from lllt.transport.ble import CLOSE_S, BleTransport
from lllt.transport.bumble_backend import BumbleCentral
from lllt_sim.ble import LocalSetup, local_pair
from lllt_sim.device import SimDevice

SLACK = 0.5  # loop seconds on top of a bound


class LocalBle(BleTransport):
    """The real ble:// transport on a given in-process Bumble link (no OS stack)."""

    def __init__(self, url: str, setup: LocalSetup) -> None:
        super().__init__(parse_url(url))
        self.setup = setup

    async def _bumble_central(self) -> Any:
        if self._central is None:
            self._central = BumbleCentral(self.setup.central)
        return self._central


async def _peripheral(*, vanish_on_connect: bool = False) -> tuple[LocalSetup, SimDevice, Any]:
    device = SimDevice("reference-cap", clock_rate=0.0)
    setup = local_pair(device)
    task = asyncio.get_running_loop().create_task(device.run())
    await setup.peripheral.start()
    if vanish_on_connect:
        controller = setup.controllers[0]

        def vanish(_connection: Any) -> None:
            setup.link.remove_controller(controller)

        setup.peripheral.bumble.on("connection", vanish)
    return setup, device, task


async def _teardown(setup: LocalSetup, device: SimDevice, task: Any) -> None:
    device.close()
    await asyncio.wait_for(task, 2.0)


def test_connect_to_a_peer_that_never_answers_fails_within_its_timeout() -> None:
    async def main() -> tuple[float, str]:
        setup, device, task = await _peripheral(vanish_on_connect=True)
        loop = asyncio.get_running_loop()
        cap = Cap(LocalBle("ble://lllt0001?timeout=3", setup))
        t0 = loop.time()
        with pytest.raises(ConnectionFailed) as err:
            await cap.open()
        took = loop.time() - t0
        await _teardown(setup, device, task)
        return took, str(err.value)

    took, message = clock.run(main(), virtual=True, speed=None)
    assert took <= 3.0 + CLOSE_S + SLACK, took
    assert "within 3 s" in message and "lllt devices" in message


def test_cancel_during_connect_returns_within_the_close_bound() -> None:
    async def main() -> tuple[float, bool]:
        setup, device, task = await _peripheral(vanish_on_connect=True)
        loop = asyncio.get_running_loop()
        transport = LocalBle("ble://lllt0001?timeout=60", setup)
        opening = loop.create_task(Cap(transport).open())
        await asyncio.sleep(1.0)  # scanning done, connected, GATT discovery hanging
        t0 = loop.time()
        opening.cancel()  # what Ctrl-C does to the connect
        with pytest.raises(asyncio.CancelledError):
            await opening
        took = loop.time() - t0
        left = transport._client is not None or transport._writer is not None
        await _teardown(setup, device, task)
        return took, left

    took, left = clock.run(main(), virtual=True, speed=None)
    assert took <= CLOSE_S + SLACK, took
    assert not left  # nothing of the half-made connection stays behind


def test_close_during_a_session_returns_within_its_bound() -> None:
    async def main() -> tuple[float, int]:
        setup, device, task = await _peripheral()
        loop = asyncio.get_running_loop()
        cap = Cap(LocalBle("ble://lllt0001", setup))
        await cap.open()
        red = [c.id for c in cap.info.channels if c.wavelength_nm == 655]
        step = W.PlanStep(
            W.StepKind.DURATION,
            60_000,
            0,
            0.0,
            100.0,
            tuple(W.ChannelSetpoint(c, 3.0) for c in red),
        )
        plan = W.UploadPlan(Cap.new_plan_id(), W.LinkPolicy.STOP, 1000, (step,))
        await cap.upload(plan)
        await cap.start(plan.plan_id)
        await asyncio.sleep(2.0)
        t0 = loop.time()
        await cap.close()
        took = loop.time() - t0
        await asyncio.sleep(2.0)  # no heartbeats now: the lease (1 s) stops the session
        state = device.state
        await _teardown(setup, device, task)
        return took, state

    took, state = clock.run(main(), virtual=True, speed=None)
    assert took <= CLOSE_S + SLACK, took
    assert state == W.State.IDLE  # LEASE_STOP ended it: the host's close left nothing on


def test_close_after_the_peer_vanished_returns_within_its_bound() -> None:
    async def main() -> tuple[float, bool]:
        setup, device, task = await _peripheral()
        loop = asyncio.get_running_loop()
        transport = LocalBle("ble://lllt0001", setup)
        cap = Cap(transport)
        await cap.open()
        setup.link.remove_controller(setup.controllers[0])  # gone
        t0 = loop.time()
        await cap.close()
        took = loop.time() - t0
        still_open = transport.is_open
        await _teardown(setup, device, task)
        return took, still_open

    took, still_open = clock.run(main(), virtual=True, speed=None)
    assert took <= CLOSE_S + SLACK, took
    assert not still_open

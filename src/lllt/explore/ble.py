"""The explorer over Bluetooth LE: the simulated cap behind the lllt GATT peripheral.

``--device-scheme blesim`` runs every seed as ``sim`` does (the same
:class:`~lllt.explore.adapter.SimHandle`, the same ground truth), but each host run
reaches the cap through the real BLE transport (bleak with the Bumble backend, scan,
connect, MTU exchange, writes cut to ATT MTU - 3, notifications) and a Bumble GATT
peripheral on an in-process link, on the virtual clock. A new host connection is a new
radio link to the same cap; the seed's link faults act on the frames as on any link.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any, ClassVar

from lllt.explore.adapter import DeviceHandle, DeviceSpec, SimHandle
from lllt.transport import DeviceURL
from lllt.transport.ble import CLOSE_S, BleTransport

#: the ATT MTU the host asks for (the small default of BLE 4.0 links: most chunking)
MTU = 23


class _Peer:
    """What the peripheral sees as its device: the handle's cap of the moment."""

    link_kind = "ble"
    faults: tuple[Any, ...] = ()

    def __init__(self, handle: SimHandle, link: BleLink) -> None:
        self.handle = handle
        self.link = link
        self.profile = handle.device.profile
        self._send: Any = None
        self._partial = bytearray()

    def attach(self, send: Any) -> None:
        self._send = send

    def feed(self, data: bytes) -> None:
        """Writes of at most ATT MTU - 3 bytes: whole frames go on to the cap.

        A cap with a radio and a USB port decodes each link on its own, so a frame from
        a second (wired) client never lands inside half a frame from this one."""
        self._partial += data
        end = self._partial.rfind(0)
        if end < 0:
            return
        frames = bytes(self._partial[: end + 1])
        del self._partial[: end + 1]
        dev = self.handle.device
        if dev is not None and self.handle.attached is self.link and not self.link.dead:
            dev.feed(frames)

    def link_closed(self) -> None:
        if self.handle.attached is self.link:
            self.handle.detach(self.link)  # type: ignore[arg-type]

    def output(self, data: bytes) -> None:
        if self._send is not None:
            self._send(data)


class BleLink(BleTransport):
    """One host connection over a fresh in-process radio link to the handle's cap."""

    FORM: ClassVar[str] = "explore+ble://"

    def __init__(self, url: DeviceURL, handle: SimHandle) -> None:
        super().__init__(url)
        self.handle = handle
        self.dead = False  # the host process was killed: this link never works again
        self.pair = False
        self.setup: Any = None
        self._peer: _Peer | None = None
        self._reaper: asyncio.Task[None] | None = None

    def _usable(self) -> None:
        if self.dead:
            raise ConnectionError("the host process is gone")
        if self.handle.device is None:
            raise ConnectionError("the cap is switched off")

    async def _bumble_central(self) -> Any:
        from lllt.transport.bumble_backend import BumbleCentral
        from lllt_sim.ble import local_pair

        self._usable()
        await self._drop_radio()
        self._peer = _Peer(self.handle, self)
        setup = local_pair(self._peer)  # type: ignore[arg-type]
        await setup.peripheral.start()
        self.setup = setup
        self._central = BumbleCentral(setup.central)
        self.target = setup.peripheral.name
        return self._central

    async def _open(self) -> None:
        self._usable()
        try:
            await super()._open()
            self._usable()
        except BaseException:  # failed, or the host killed while connecting: no leftovers
            await self._drop_client()
            await self._drop_radio()
            raise
        self.handle.attach(self)  # type: ignore[arg-type]

    def from_device(self, data: bytes) -> None:
        """The cap's bytes, sent to the host over the radio while this link is open and alive."""
        if self.is_open and not self.dead and self._peer is not None:
            self._peer.output(data)

    async def close(self) -> None:
        """Release the radio link even when it was lost first (no writer, no peripheral
        left behind); idempotent."""
        self.is_open = False
        await self._close()

    async def _close(self) -> None:
        self.handle.detach(self)  # type: ignore[arg-type]
        await super()._close()
        await self._drop_radio()

    async def _drop_radio(self) -> None:
        setup, self.setup = self.setup, None
        self._central = None
        if setup is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(setup.peripheral.close(), CLOSE_S)

    def kill(self) -> None:
        """The host process died: the link never works again, its unsent bytes are dropped and
        its radio link is taken down in the background."""
        self.dead = True
        self.handle.detach(self)  # type: ignore[arg-type]
        self.is_open = False
        self._lost_reason = ConnectionError("the host process is gone")
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.cancel()  # a dead process writes nothing more
        self._out.clear()
        # the dead host's radio link goes down with it (as its OS would drop it)
        self._reaper = asyncio.get_running_loop().create_task(self._reap())

    async def _reap(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.disconnect(), CLOSE_S)
        await self._drop_radio()

    def replaced(self) -> None:
        """Another connection took the cap: this link is lost."""
        self._lost(ConnectionError("another connection replaced this one"))


class BleHandle(SimHandle):
    """The simulated cap of :class:`SimHandle`, reached over BLE."""

    scheme = "blesim"

    def transport(self, link: str, link_seed: int) -> Any:
        """A new host link over BLE (ATT MTU 23), with the ``link`` fault rules (seeded by
        ``link_seed``) when given; opening it replaces the previous link."""
        options = {"mtu": str(MTU)}
        if link:
            options.update(link=link, link_seed=str(link_seed))
        url = DeviceURL(f"ble://lllt-{self.spec.profile}", "ble", "explore", options)
        return BleLink(url, self)


class BleAdapter:
    """``blesim``: the simulator behind the Bumble GATT peripheral, on the virtual clock."""

    name = "blesim"

    def unavailable(self) -> str | None:
        """None, or why Bumble or the simulator's BLE peripheral cannot be imported."""
        try:
            import bumble  # noqa: F401

            import lllt_sim.ble  # noqa: F401
        except ImportError as err:
            return f"Bumble or the simulator is not installed ({err})"
        return None

    def create(self, spec: DeviceSpec, workdir: Path) -> DeviceHandle:
        """A :class:`BleHandle` for ``spec``, its state file in ``workdir``."""
        return BleHandle(spec, workdir)

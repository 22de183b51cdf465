"""The simulated cap as a Bluetooth LE peripheral, on Bumble (docs/wire-protocol.md §1.1).

``BlePeripheral`` puts a :class:`~lllt_sim.device.SimDevice` behind the lllt GATT
profile on a Bumble ``Device``: writes to RX are fed to the device as they come, and the
device's output is cut into notifications on TX of at most ATT MTU − 3 bytes (a frame
may span notifications, a notification may carry the end of one frame and the start of
the next). It also serves Device Information (0x180A) and Battery (0x180F), and
advertises its name (``lllt-`` + serial) with the service UUID every 20 ms.

Bumble does not hold a client to the negotiated size: the peripheral counts every write
longer than ATT MTU − 3 in ``stats.oversize_writes`` (and the largest in
``stats.max_write``) so that tests can hold the host to it.

``local_pair()`` builds the in-process setup the tests and benchmarks use: one Bumble
``LocalLink`` with two controllers (LE data length 251), the peripheral on one, and a
central ``Device`` on the other for the host's bleak backend (``lllt.transport.bumble``).

A ``link_drop`` fault is a real radio drop here: the peripheral disconnects and stops
advertising for the window (the device also drops every byte, as on other links), and
advertises again when it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

from lllt import bleprofile as P
from lllt_sim.device import SimDevice
from lllt_sim.link import link_state

log = logging.getLogger("lllt_sim.ble")

#: most device output held while notifications drain (then dropped, like a UART)
MAX_PENDING = 64 * 1024
LE_DATA_LENGTH = 251
_DROP_POLL_S = 0.02


@dataclass
class BleStats:
    connections: int = 0
    disconnections: int = 0
    writes: int = 0
    bytes_in: int = 0
    max_write: int = 0
    oversize_writes: int = 0
    notifications: int = 0
    bytes_out: int = 0
    max_notification: int = 0
    dropped_out: int = 0
    att_mtus: list[int] = field(default_factory=list)
    #: (connection's ATT MTU, write length) of every write, for tests that check sizes
    write_sizes: list[tuple[int, int]] = field(default_factory=list)


class BlePeripheral:
    """A SimDevice served over GATT on a powered-off Bumble ``Device`` (call ``start``)."""

    def __init__(
        self,
        device: SimDevice,
        bumble_device: Any,
        *,
        name: str | None = None,
        battery_percent: int = 87,
        record_sizes: bool = False,
        pairing: str = "sc",
    ) -> None:
        from bumble import gatt
        from bumble.pairing import PairingConfig, PairingDelegate

        self.device = device
        self.bumble = bumble_device
        #: the advertised local name (GAP device name: lllt-SERIAL)
        self.name = name or P.advertised_name(device.profile.serial)
        self.stats = BleStats()
        self._record_sizes = record_sizes
        self.connection: Any = None
        self._pending = bytearray()
        self._pump: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._dropped = False
        self._poll: asyncio.TimerHandle | None = None
        self._closed = False
        self._tasks: set[asyncio.Task[None]] = set()
        C = gatt.Characteristic
        self.tx = C(P.TX_UUID, C.Properties.NOTIFY, C.READABLE, b"")
        rx_value: Any = gatt.CharacteristicValue(write=self._on_write)
        self.rx: Any = C(P.RX_UUID, C.Properties.WRITE_WITHOUT_RESPONSE, C.WRITEABLE, rx_value)
        prof = device.profile
        fw = ".".join(str(v) for v in prof.firmware)
        info = [
            C(P.MANUFACTURER_NAME_UUID, C.Properties.READ, C.READABLE, b"lllt simulator"),
            C(P.MODEL_NUMBER_UUID, C.Properties.READ, C.READABLE, prof.model.encode()),
            C(P.SERIAL_NUMBER_UUID, C.Properties.READ, C.READABLE, prof.serial.encode()),
            C(P.FIRMWARE_REVISION_UUID, C.Properties.READ, C.READABLE, fw.encode()),
        ]
        self.battery = C(
            P.BATTERY_LEVEL_UUID,
            C.Properties.READ | C.Properties.NOTIFY,
            C.READABLE,
            bytes([max(0, min(100, battery_percent))]),
        )
        bumble_device.add_services(
            [
                gatt.Service(P.SERVICE_UUID, [self.rx, self.tx]),
                gatt.Service(P.DEVICE_INFORMATION_UUID, info),
                gatt.Service(P.BATTERY_SERVICE_UUID, [self.battery]),
            ]
        )
        bumble_device.name = P.NAME_PREFIX + device.profile.serial
        bumble_device.advertising_data = advertising_data(self.name)
        bumble_device.scan_response_data = scan_response_data(bumble_device.name)
        bumble_device.on("connection", self._on_connection)
        # Just Works (no display, no keys), bonding; "legacy" models an old peer that
        # cannot do LE Secure Connections
        bumble_device.pairing_config_factory = lambda _c: PairingConfig(
            sc=pairing != "legacy",
            mitm=False,
            bonding=True,
            delegate=PairingDelegate(PairingDelegate.IoCapability.NO_OUTPUT_NO_INPUT),
        )

    # --- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        """Power on, attach the device's output, advertise."""
        await self.bumble.power_on()
        self.device.attach(self._send)
        self.device.link_kind = "ble"  # keys are never provisioned over this link
        self._wake = asyncio.Event()
        self._pump = asyncio.get_running_loop().create_task(self._pump_loop(), name="lllt-ble")
        await self._advertise()
        if any(f.name == "link_drop" for f in getattr(self.device, "faults", ())):
            self._poll_drop()

    def _spawn(self, aw: Any) -> None:
        task = asyncio.get_running_loop().create_task(aw)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        self._closed = True
        if self._poll is not None:
            self._poll.cancel()
        for task in list(self._tasks):  # a command under way finishes first (Bumble's host
            with contextlib.suppress(Exception):  # takes one command at a time)
                await asyncio.wait_for(task, 1.0)
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._pump
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.bumble.stop_advertising(), 1.0)
        conn = self.connection
        if conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.disconnect(), 1.0)

    async def _advertise(self) -> None:
        if self._closed or self._dropped:
            return
        with contextlib.suppress(Exception):
            await self.bumble.start_advertising(
                advertising_interval_min=P.ADVERTISING_INTERVAL_MS,
                advertising_interval_max=P.ADVERTISING_INTERVAL_MS,
                auto_restart=False,
            )

    # --- connections -----------------------------------------------------------------------
    def _on_connection(self, connection: Any) -> None:
        if self._dropped or self._closed:
            self._spawn(_quietly(connection.disconnect()))
            return
        self.stats.connections += 1
        self.connection = connection
        self._pending.clear()  # nothing of an earlier connection's stream carries over
        connection.on("disconnection", lambda reason: self._on_disconnection(connection))

    def _on_disconnection(self, connection: Any) -> None:
        self.stats.disconnections += 1
        if self.connection is connection:
            self.connection = None
            self._pending.clear()
            self.device.link_closed()
        self._spawn(self._advertise())

    # --- the byte stream --------------------------------------------------------------------
    def _on_write(self, connection: Any, value: bytes) -> None:
        data = bytes(value)
        mtu = int(connection.att_mtu)
        st = self.stats
        st.writes += 1
        st.bytes_in += len(data)
        st.max_write = max(st.max_write, len(data))
        if len(data) > P.max_chunk(mtu):
            st.oversize_writes += 1
        if self._record_sizes:
            st.write_sizes.append((mtu, len(data)))
        if connection is self.connection:
            self.device.feed(data)

    def _send(self, data: bytes) -> None:
        if self.connection is None:
            self.stats.dropped_out += len(data)
            return
        if len(self._pending) + len(data) > MAX_PENDING:
            self.stats.dropped_out += len(self._pending) + len(data)
            self._pending.clear()
            return
        self._pending += data
        if self._wake is not None:
            self._wake.set()

    async def _pump_loop(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending and self.connection is not None:
                conn = self.connection
                size = P.max_chunk(int(conn.att_mtu))
                chunk = bytes(self._pending[:size])
                del self._pending[:size]
                try:
                    await self.bumble.notify_subscriber(conn, self.tx, chunk)
                except Exception as err:  # the connection went away under us
                    log.debug("notification failed: %s", err)
                    self.stats.dropped_out += len(chunk)
                    continue
                st = self.stats
                st.notifications += 1
                st.bytes_out += len(chunk)
                st.max_notification = max(st.max_notification, len(chunk))

    # --- link_drop: a real drop of the radio link -------------------------------------------
    def _poll_drop(self) -> None:
        self._poll = None
        if self._closed:
            return
        dev = self.device
        drop, _ = link_state(dev._link_windows, dev._abs_now()) if dev._link_windows else (False, 0)
        loop = asyncio.get_running_loop()
        if drop and not self._dropped:
            self._dropped = True
            self._spawn(self._drop())
        elif not drop and self._dropped:
            self._dropped = False
            self._spawn(self._advertise())
        self._poll = loop.call_later(_DROP_POLL_S, self._poll_drop)

    async def _drop(self) -> None:
        await _quietly(self.bumble.stop_advertising())
        conn = self.connection
        if conn is not None:
            await _quietly(conn.disconnect())


async def _quietly(aw: Any) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(aw, 2.0)


def advertising_data(name: str) -> bytes:
    """Flags, the lllt service UUID and the advertised name (31 bytes at most)."""
    from bumble.core import UUID, AdvertisingData

    AD = AdvertisingData
    encoded = name.encode()
    short = len(encoded) > 8  # 3 (flags) + 18 (UUID) + 2 + name <= 31
    return bytes(
        AD(
            [
                (AD.FLAGS, bytes([0x06])),  # LE general discoverable, no BR/EDR
                (AD.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS, bytes(UUID(P.SERVICE_UUID))),
                (AD.SHORTENED_LOCAL_NAME if short else AD.COMPLETE_LOCAL_NAME, encoded[:8]),
            ]
        )
    )


def scan_response_data(name: str) -> bytes:
    """The complete local name (up to 29 bytes), for active scanners."""
    from bumble.core import AdvertisingData

    return bytes(AdvertisingData([(AdvertisingData.COMPLETE_LOCAL_NAME, name.encode()[:29])]))


def make_controller(name: str, link: Any, address: str) -> Any:
    from bumble.controller import Controller

    controller = Controller(name, link=link, public_address=address)
    controller.le_acl_data_packet_length = LE_DATA_LENGTH
    return controller


def device_on(controller: Any, name: str, address: str) -> Any:
    """A Bumble ``Device`` driven by ``controller`` in this process."""
    from bumble.device import Device
    from bumble.hci import Address
    from bumble.host import Host
    from bumble.transport.common import AsyncPipeSink

    return Device(
        name=name, address=Address(address), host=Host(controller, AsyncPipeSink(controller))
    )


@dataclass
class LocalSetup:
    """A peripheral and a central on one in-process Bumble link."""

    link: Any
    peripheral: BlePeripheral
    central: Any  # a powered-off Bumble Device for the host side
    controllers: tuple[Any, ...] = ()  # (the peripheral's, the central's)

    @property
    def address(self) -> str:
        return str(self.peripheral.bumble.public_address).removesuffix("/P")


_PERIPHERAL_ADDRESS = "F0:11:11:11:11:{:02X}"
_CENTRAL_ADDRESS = "F0:22:22:22:22:{:02X}"


def local_pair(
    device: SimDevice, *, index: int = 1, record_sizes: bool = False, pairing: str = "sc"
) -> LocalSetup:
    """The simulated cap and a host-side central on a new in-process Bumble link."""
    from bumble.link import LocalLink

    link = LocalLink()
    paddr = _PERIPHERAL_ADDRESS.format(index & 0xFF)
    caddr = _CENTRAL_ADDRESS.format(index & 0xFF)
    pc = make_controller("lllt-sim", link, paddr)
    cc = make_controller("lllt-host", link, caddr)
    per = device_on(pc, "lllt-sim", paddr)
    cen = device_on(cc, "lllt-host", caddr)
    peripheral = BlePeripheral(device, per, record_sizes=record_sizes, pairing=pairing)
    return LocalSetup(link, peripheral, cen, (pc, cc))


def _tcp_no_delay(sink: Any) -> None:
    """No Nagle on a Bumble TCP HCI transport (each small HCI packet leaves at once)."""
    import socket

    transport = getattr(sink, "transport", None)
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _NoDelaySink:
    """A TCP HCI server's sink that turns Nagle off on the client's socket when it comes."""

    def __init__(self, sink: Any) -> None:
        self.sink = sink
        self._done: Any = None

    def on_packet(self, packet: bytes) -> None:
        transport = getattr(self.sink, "transport", None)
        if transport is not None and transport is not self._done:
            _tcp_no_delay(self.sink)
            self._done = transport
        self.sink.on_packet(packet)


class HciRelay:
    """A radio in this process for programs in others: a Bumble ``LocalLink`` with
    ``n`` virtual LE controllers, each behind a TCP HCI server on 127.0.0.1.

    ``lllt sim serve --ble tcp-client:127.0.0.1:PORT`` drives one as the cap, and
    ``ble://NAME?hci=tcp-client:127.0.0.1:PORT`` another as the host: they share nothing
    but HCI packets. Create with ``await HciRelay.start()``; ``await relay.close()``.
    """

    def __init__(self) -> None:
        self.ports: list[int] = []
        self._keep: list[Any] = []

    @classmethod
    async def start(cls, n: int = 2) -> HciRelay:
        import socket

        from bumble.link import LocalLink
        from bumble.transport.tcp_server import open_tcp_server_transport_with_socket

        logging.getLogger("bumble.controller").setLevel(logging.ERROR)  # "no connection" chatter
        relay = cls()
        link = LocalLink()
        for i in range(n):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sock.listen(1)
            relay.ports.append(sock.getsockname()[1])
            transport = await open_tcp_server_transport_with_socket(sock)
            controller = make_controller(f"relay{i}", link, f"F0:55:55:55:55:{i + 1:02X}")
            transport.source.set_packet_sink(controller)  # HCI from the far host to it
            controller.host = _NoDelaySink(transport.sink)  # and its events back
            relay._keep += [sock, transport, controller]
        return relay

    def spec(self, i: int) -> str:
        return f"tcp-client:127.0.0.1:{self.ports[i]}"

    async def close(self) -> None:
        import socket

        for obj in self._keep:
            if isinstance(obj, socket.socket):
                obj.close()
            elif hasattr(obj, "close"):
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(obj.close(), 2.0)
        self._keep.clear()


async def serve_ble(device: SimDevice, transport: str) -> tuple[BlePeripheral, Any]:
    """Serve ``device`` on a Bumble HCI transport (``usb:0``, ``tcp-client:HOST:PORT``, ...).

    Returns the started peripheral and the opened transport (close both when done).
    """
    from bumble.device import Device
    from bumble.hci import Address
    from bumble.transport import open_transport

    hci = await open_transport(transport)
    _tcp_no_delay(hci.sink)
    bumble_device = Device.with_hci(
        P.NAME_PREFIX + device.profile.serial,
        Address("F0:33:33:33:33:33"),
        hci.source,
        hci.sink,
    )
    peripheral = BlePeripheral(device, bumble_device)
    await peripheral.start()
    return peripheral, hci


__all__ = [
    "BlePeripheral",
    "BleStats",
    "HciRelay",
    "LocalSetup",
    "advertising_data",
    "local_pair",
    "serve_ble",
]

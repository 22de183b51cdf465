"""A bleak backend on Bumble: the host's real ``ble://`` code path without an OS stack.

bleak 3 takes ``backend=`` on ``BleakClient`` and ``BleakScanner``; these two classes
implement its backend interfaces on a Bumble central ``Device``: in-process over a
Bumble ``LocalLink`` (the tests and benchmarks, next to the simulator's peripheral), or
on any Bumble HCI transport such as a USB dongle (``ble://NAME?hci=usb:0``), which
needs neither BlueZ nor D-Bus.

What bleak would get from the OS is done here with Bumble's GATT client: the ATT MTU
exchange (the central asks for ``mtu``; the result is ``mtu_size``), discovery of
services, characteristics and descriptors, writes with and without response,
notifications, and optional pairing (LE Secure Connections, bonding).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, BaseBleakScanner
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakDeviceNotFoundError, BleakError

log = logging.getLogger("lllt.ble")

DISCONNECT_S = 2.0  # a disconnect waits this long for the peer, then gives the link up

_PROPS = (
    (0x01, "broadcast"),
    (0x02, "read"),
    (0x04, "write-without-response"),
    (0x08, "write"),
    (0x10, "notify"),
    (0x20, "indicate"),
    (0x40, "authenticated-signed-writes"),
    (0x80, "extended-properties"),
)


def tcp_no_delay(sink: Any) -> None:
    """Small HCI packets must leave at once: no Nagle on a Bumble TCP transport's socket
    (with Nagle and delayed ACKs, every request/reply over TCP HCI costs ~40 ms)."""
    import socket

    transport = getattr(sink, "transport", None)
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class BumbleCentral:
    """One Bumble central ``Device``, powered on once and shared by scanner and clients."""

    def __init__(self, device: Any, *, closer: Callable[[], Any] | None = None) -> None:
        self.device = device
        self._closer = closer
        self._powered = False
        self._lock = asyncio.Lock()

    async def ready(self) -> Any:
        """The central ``Device``, powered on at the first call."""
        async with self._lock:
            if not self._powered:
                await self.device.power_on()
                self._powered = True
        return self.device

    async def close(self) -> None:
        """Close the HCI transport this central opened, if any (within 2 s); errors are ignored."""
        if self._closer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._closer(), 2.0)

    @classmethod
    async def open(cls, spec: str) -> BumbleCentral:
        """A central on the Bumble HCI transport ``spec`` (``usb:0``, ``serial:/dev/ttyACM0``)."""
        from bumble.device import Device
        from bumble.hci import Address
        from bumble.transport import open_transport

        hci = await open_transport(spec)
        tcp_no_delay(hci.sink)
        device = Device.with_hci("lllt-host", Address("F0:44:44:44:44:44"), hci.source, hci.sink)
        return cls(device, closer=hci.close)


def _uuid(u: Any) -> str:
    return str(u.to_hex_str("-")).lower() if hasattr(u, "to_hex_str") else str(u).lower()


def _full_uuid(u: Any) -> str:
    from bleak.uuids import normalize_uuid_str

    text = _uuid(u)
    return normalize_uuid_str(text)


class BumbleScanner(BaseBleakScanner):
    """Scanning on a Bumble central: advertisements and scan responses merged by address."""

    def __init__(
        self,
        detection_callback: Any,
        service_uuids: list[str] | None,
        scanning_mode: str = "active",
        *,
        bumble: BumbleCentral,
        **kwargs: Any,
    ) -> None:
        super().__init__(detection_callback, service_uuids)
        self._central = bumble
        self._active = scanning_mode != "passive"
        self._names: dict[str, str] = {}
        self._uuids: dict[str, list[str]] = {}
        self._listening = False

    async def start(self) -> None:
        """Start scanning (active unless ``scanning_mode`` is passive); detections go to bleak."""
        device = await self._central.ready()
        self.seen_devices = {}
        if not self._listening:
            device.on("advertisement", self._on_advertisement)
            self._listening = True
        await device.start_scanning(active=self._active, filter_duplicates=False)

    async def stop(self) -> None:
        """Stop scanning; an error from the controller is ignored."""
        device = self._central.device
        if self._listening:
            device.remove_listener("advertisement", self._on_advertisement)
            self._listening = False
        with contextlib.suppress(Exception):
            await device.stop_scanning()

    def _on_advertisement(self, adv: Any) -> None:
        from bumble.core import AdvertisingData as AD

        address = str(adv.address).split("/")[0]
        data = adv.data
        name = data.get(AD.COMPLETE_LOCAL_NAME)
        if name is not None:
            self._names[address] = name if isinstance(name, str) else bytes(name).decode()
        elif address not in self._names:
            short = data.get(AD.SHORTENED_LOCAL_NAME)
            if short is not None:
                self._names[address] = short if isinstance(short, str) else bytes(short).decode()
        uuids = []
        for kind in (
            AD.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
            AD.INCOMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
            AD.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
            AD.INCOMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
        ):
            for u in data.get(kind) or ():
                uuids.append(_full_uuid(u))
        if uuids:
            self._uuids[address] = uuids
        service_uuids = self._uuids.get(address, [])
        if not self.is_allowed_uuid(service_uuids):
            return
        local_name = self._names.get(address)
        ad = AdvertisementData(
            local_name=local_name,
            manufacturer_data={},
            service_data={},
            service_uuids=service_uuids,
            tx_power=None,
            rssi=int(adv.rssi),
            platform_data=(adv,),
        )
        bd = self.create_or_update_device(
            address, address, local_name, {"bumble_address": adv.address}, ad
        )
        self.call_detection_callbacks(bd, ad)


class BumbleClient(BaseBleakClient):
    """bleak's client interface on a Bumble central (``BleakClient(..., backend=BumbleClient,
    bumble=central, mtu=247)``)."""

    def __init__(
        self,
        address_or_ble_device: BLEDevice | str,
        *,
        disconnected_callback: Callable[[], None] | None = None,
        timeout: float = 10.0,
        bumble: BumbleCentral,
        mtu: int = 247,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            address_or_ble_device, disconnected_callback=disconnected_callback, timeout=timeout
        )
        self._central = bumble
        self._mtu = mtu
        self._peer_address: Any = None
        if isinstance(address_or_ble_device, BLEDevice) and isinstance(
            address_or_ble_device.details, dict
        ):
            self._peer_address = address_or_ble_device.details.get("bumble_address")
        self.connection: Any = None
        self._peer: Any = None
        self._closing = False
        self._name = ""
        self.security: tuple[bool, bool, bool] | None = None

    @property
    def name(self) -> str:
        """The peer's name, or its address until the name is known."""
        return self._name or str(self.address)

    @property
    def mtu_size(self) -> int:
        """The ATT MTU of the connection (23, the default, before one)."""
        return int(self.connection.att_mtu) if self.connection is not None else 23

    @property
    def is_connected(self) -> bool:
        """True while connected."""
        return self.connection is not None

    async def connect(self, pair: bool, **kwargs: Any) -> None:
        """Connect within ``timeout`` seconds, pair first when ``pair`` (:meth:`pair`), ask for the
        ATT MTU and discover services, characteristics and descriptors. A failed connection
        raises TimeoutError or BleakDeviceNotFoundError; a failure after it disconnects and
        re-raises."""
        from bumble.device import Peer
        from bumble.hci import Address

        device = await self._central.ready()
        timeout = float(kwargs.get("timeout", self._timeout))
        target = self._peer_address or Address(str(self.address))
        try:
            connection = await asyncio.wait_for(device.connect(target), timeout)
        except TimeoutError:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(device.cancel_connection(), 1.0)
            raise
        except Exception as err:  # HCI errors: not found, rejected
            raise BleakDeviceNotFoundError(str(self.address), f"connect failed: {err}") from err
        self.connection = connection
        self._closing = False
        connection.on("disconnection", self._on_disconnection)
        try:
            if pair:
                await self.pair()
            peer = Peer(connection)
            await peer.request_mtu(self._mtu)
            await peer.discover_services()
            collection = BleakGATTServiceCollection()
            for sp in peer.services:
                await sp.discover_characteristics()
                service = BleakGATTService(sp, sp.handle, _full_uuid(sp.uuid))
                collection.add_service(service)
                for cp in sp.characteristics:
                    await cp.discover_descriptors()
                    props: Any = [name for bit, name in _PROPS if cp.properties & bit]
                    char = BleakGATTCharacteristic(
                        cp, cp.handle, _full_uuid(cp.uuid), props, self._max_write, service
                    )
                    collection.add_characteristic(char)
                    for dp in cp.descriptors:
                        collection.add_descriptor(
                            BleakGATTDescriptor(dp, dp.handle, _full_uuid(dp.type), char)
                        )
            self._peer = peer
            self.services = collection
        except BaseException:
            await self.disconnect()
            raise

    def _max_write(self) -> int:
        return self.mtu_size - 3

    def _on_disconnection(self, reason: int) -> None:
        self.connection = None
        self._peer = None
        if not self._closing and self._disconnected_callback is not None:
            self._disconnected_callback()

    async def disconnect(self) -> None:
        """Disconnect, waiting at most ``DISCONNECT_S`` for the peer; never raises, and does not
        call the disconnected callback."""
        connection = self.connection
        self._closing = True
        if connection is None:
            return
        try:
            await asyncio.wait_for(connection.disconnect(), DISCONNECT_S)
        except (TimeoutError, Exception) as err:  # a peer that vanished never answers
            log.debug("BLE disconnect did not complete: %s", err)
        finally:
            self.connection = None
            self._peer = None

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        """LE Secure Connections with bonding; a peer that pairs only the legacy way is
        refused (Bumble falls back to legacy pairing silently, so the result is checked)."""
        from bumble.pairing import PairingConfig, PairingDelegate

        connection = self.connection
        if connection is None:
            raise BleakError("not connected")
        device = self._central.device
        device.pairing_config_factory = lambda _c: PairingConfig(
            sc=True,
            mitm=False,  # a cap has no display or keys: Just Works, encrypted
            bonding=True,
            delegate=PairingDelegate(PairingDelegate.IoCapability.NO_OUTPUT_NO_INPUT),
        )
        try:
            await asyncio.wait_for(connection.pair(), self._timeout)
        except TimeoutError:
            raise BleakError("pairing did not complete") from None
        except Exception as err:
            raise BleakError(f"pairing failed: {err}") from err
        #: (secure connections, authenticated against a man in the middle, encrypted)
        self.security = (
            bool(connection.sc),
            bool(connection.authenticated),
            bool(connection.is_encrypted),
        )
        if not connection.sc or not connection.is_encrypted:
            raise BleakError(
                "the peer paired with legacy pairing only (no LE Secure Connections): refused"
            )

    async def unpair(self) -> None:
        """Forget the connected peer's bond (its keys in the keystore); errors are ignored."""
        device = self._central.device
        if device.keystore is not None and self.connection is not None:
            with contextlib.suppress(Exception):
                await device.keystore.delete(str(self.connection.peer_address))

    async def read_gatt_char(
        self, characteristic: BleakGATTCharacteristic, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        """The characteristic's value, always read from the peer (``use_cached`` is ignored)."""
        return bytearray(await characteristic.obj.read_value())

    async def read_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        """The descriptor's value, always read from the peer (``use_cached`` is ignored)."""
        return bytearray(await descriptor.obj.read_value())

    async def write_gatt_char(
        self, characteristic: BleakGATTCharacteristic, data: Any, response: bool
    ) -> None:
        """Write ``data``, with or without response; BleakError when not connected."""
        if self.connection is None:
            raise BleakError("not connected")
        await characteristic.obj.write_value(bytes(data), with_response=response)

    async def write_gatt_descriptor(self, descriptor: BleakGATTDescriptor, data: Any) -> None:
        """Write ``data`` to the descriptor, with response."""
        await descriptor.obj.write_value(bytes(data), with_response=True)

    async def start_notify(
        self, characteristic: BleakGATTCharacteristic, callback: NotifyCallback, **kwargs: Any
    ) -> None:
        """Subscribe to the characteristic; each value goes to ``callback`` as a bytearray."""
        await characteristic.obj.subscribe(lambda value: callback(bytearray(value)))

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        """Unsubscribe from the characteristic; errors are ignored."""
        with contextlib.suppress(Exception):
            await characteristic.obj.unsubscribe()


__all__ = ["BumbleCentral", "BumbleClient", "BumbleScanner", "tcp_no_delay"]

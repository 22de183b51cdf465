"""``ble://ADDRESS`` and ``ble://NAME``: the byte stream over the lllt GATT service.

The host finds the cap by scanning for the lllt service UUID (matching the address or
the advertised name), connects through bleak-retry-connector, subscribes to TX and
writes RX without response, cut to the negotiated maximum write size
(docs/wire-protocol.md §1.1). Everything has a bound: finding and connecting together
take at most ``timeout`` seconds (default 20), closing at most ``CLOSE_S``; a peer that
stops answering never hangs the host. An unsolicited disconnect is reported to the
client as a lost link, so :class:`lllt.device.Cap` reconnects and reconciles.

The OS stack is used through bleak (BlueZ over D-Bus on Linux, CoreBluetooth, WinRT).
``hci=SPEC`` uses a Bumble HCI transport instead (``usb:0`` for a USB dongle), through
the Bumble backend for bleak in :mod:`lllt.transport.bumble_backend`; ``mtu=`` then
sets the ATT MTU the host asks for.

``blesim://PROFILE`` (:class:`BleSimTransport`) is the same transport against the
simulated cap served as a Bumble peripheral on an in-process link: what the tests and
benchmarks use to run the real BLE code path without a radio.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from typing import Any, ClassVar

from lllt import bleprofile as P
from lllt.errors import ConnectionFailed, URLError
from lllt.transport import DeviceURL
from lllt.transport.base import Transport

log = logging.getLogger("lllt.ble")

CONNECT_S = 20.0  # default bound on finding + connecting
CLOSE_S = 3.0  # bound on a close, whatever the peer does
_ADDRESS = re.compile(r"^([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}$|^[0-9A-Fa-f-]{36}$")

NO_BLUETOOTH_ADVICE = (
    "This machine's Bluetooth is not usable from here: check that it has an adapter, "
    "that it is switched on, and (on Linux) that BlueZ and D-Bus run "
    "(`systemctl status bluetooth`); or use a USB dongle with ?hci=usb:0."
)


class BluetoothUnavailable(ConnectionFailed):
    """No adapter, no D-Bus or no BlueZ: BLE cannot be used on this machine."""

    default_advice = NO_BLUETOOTH_ADVICE


class BleTransport(Transport):
    """``ble://ADDRESS`` or ``ble://NAME``: a cap over the lllt GATT service, through the OS
    stack (bleak) or, with ``hci=``, a Bumble controller; options in ``OPTIONS``."""

    OPTIONS: ClassVar[dict[str, str]] = {
        "timeout": "seconds to find and connect, default 20",
        "hci": "a Bumble HCI transport instead of the OS stack, e.g. usb:0",
        "mtu": "ATT MTU to ask for with hci=, 23 to 517, default 247",
        "adapter": "the OS adapter to use (Linux: hci0)",
        "pair": "yes or no: LE Secure Connections pairing with bonding (default: yes with hci=)",
    }
    FORM: ClassVar[str] = "ble://ADDRESS or ble://NAME[?timeout=20&hci=usb:0]"

    def __init__(self, url: DeviceURL) -> None:
        super().__init__(url)
        self.target = url.target.strip("/")
        if not self.target:
            raise URLError(f"{url.url!r} names no device", advice=f"Expected {self.FORM}.")
        self.by_address = bool(_ADDRESS.match(self.target))
        self.timeout = _number(url, "timeout", CONNECT_S, 0.1, 600.0)
        self.mtu = int(_number(url, "mtu", P.ATT_MAX_MTU, P.ATT_DEFAULT_MTU, 517))
        self.hci = url.option("hci")
        self.adapter = url.option("adapter")
        pair = url.option("pair")
        if pair not in (None, "yes", "no"):
            raise URLError(f"pair={pair!r} in {url.url!r} is not yes or no")
        # on the OS stack pairing is the system's business (its Bluetooth settings)
        self.pair = pair == "yes" if pair is not None else self.hci is not None
        self._central: Any = None
        self._client: Any = None
        self._rx: Any = None
        self._chunk = P.max_chunk(P.ATT_DEFAULT_MTU)
        self._out = bytearray()
        self._wake: asyncio.Event | None = None
        self._writer: asyncio.Task[None] | None = None
        #: the negotiated ATT MTU of the open connection (23 until known)
        self.att_mtu = P.ATT_DEFAULT_MTU
        self.writes = 0
        self.max_write = 0

    # --- backends ---------------------------------------------------------------------------
    async def _bumble_central(self) -> Any:
        """The Bumble central for ``hci=``, or None for the OS stack."""
        if self.hci is None:
            return None
        if self._central is None:
            from lllt.transport.bumble_backend import BumbleCentral

            try:
                self._central = await BumbleCentral.open(self.hci)
            except Exception as err:
                raise BluetoothUnavailable(
                    f"cannot open the Bluetooth controller hci={self.hci}: {err}",
                    advice="Check the dongle and the transport name (usb:0, "
                    "serial:/dev/ttyACM0); see Bumble's transport documentation.",
                ) from err
        return self._central

    def _backend_kwargs(self, central: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        if central is not None:
            from lllt.transport.bumble_backend import BumbleClient, BumbleScanner

            return (
                {"backend": BumbleScanner, "bumble": central},
                {"backend": BumbleClient, "bumble": central, "mtu": self.mtu},
            )
        bluez = {"adapter": self.adapter} if self.adapter else {}
        return ({"bluez": bluez} if bluez else {}), ({"bluez": bluez} if bluez else {})

    # --- open -------------------------------------------------------------------------------
    async def _open(self) -> None:
        try:
            from bleak.exc import BleakError
        except ImportError:
            raise ConnectionFailed(
                "ble:// needs the Bluetooth extra", advice="pip install 'lllt[ble]'"
            ) from None
        try:
            async with asyncio.timeout(self.timeout):
                await self._connect()
        except TimeoutError:
            await self._drop_client()
            what = self._what()
            raise ConnectionFailed(
                f"no lllt cap with the {what} could be reached within {self.timeout:g} s",
                advice="Switch the cap on and bring it closer; `lllt devices` lists the caps "
                "in range; raise ?timeout= for a slow adapter.",
            ) from None
        except BleakError as err:
            await self._drop_client()
            what = self._what()
            text = str(err)
            if "legacy pairing" in text:
                raise ConnectionFailed(
                    f"refused the cap with the {what}: it offers only legacy BLE pairing",
                    advice="lllt pairs with LE Secure Connections only; update the cap's "
                    "firmware, or use the cable (serial://).",
                ) from err
            if _no_bluetooth(text):
                raise BluetoothUnavailable(f"Bluetooth is not available: {text}") from err
            raise ConnectionFailed(
                f"cannot connect to the cap with the {what}: {text}",
                advice="Switch the cap off and on; if it was paired before, forget it in the "
                "system's Bluetooth settings and try again.",
            ) from err
        except (OSError, EOFError) as err:  # no D-Bus socket, no BlueZ, adapter gone
            await self._drop_client()
            raise BluetoothUnavailable(f"Bluetooth is not available: {err}") from err
        except BaseException:  # cancelled (Ctrl-C) or our own error: leave nothing behind
            await self._drop_client()
            raise

    def _what(self) -> str:
        return f"address {self.target}" if self.by_address else f"name {self.target!r}"

    async def _connect(self) -> None:
        from bleak import BleakClient, BleakScanner
        from bleak_retry_connector import establish_connection

        central = await self._bumble_central()
        scan_kw, client_kw = self._backend_kwargs(central)
        target = self.target.lower()

        def match(device: Any, adv: Any) -> bool:
            if self.by_address:
                return bool(str(device.address).lower() == target)
            return (adv.local_name or device.name or "").lower() == target

        device = await BleakScanner.find_device_by_filter(
            match, timeout=self.timeout, service_uuids=[P.SERVICE_UUID], **scan_kw
        )
        if device is None:
            raise TimeoutError
        client = await establish_connection(
            BleakClient,
            device,
            self.target,
            disconnected_callback=self._on_disconnect,
            max_attempts=3,
            pair=self.pair,
            **client_kw,
        )
        self._client = client
        rx = client.services.get_characteristic(P.RX_UUID)
        tx = client.services.get_characteristic(P.TX_UUID)
        if rx is None or tx is None:
            raise ConnectionFailed(
                f"{self.target} is not an lllt cap: it has no lllt service",
                advice="Check the address; `lllt devices` lists the lllt caps in range.",
            )
        self._rx = rx
        self.att_mtu = int(client.mtu_size)
        self._chunk = max(1, int(rx.max_write_without_response_size))
        self._out.clear()
        self._wake = asyncio.Event()
        await client.start_notify(tx, self._on_notify)
        self._writer = asyncio.get_running_loop().create_task(
            self._write_loop(client, rx), name=f"lllt-ble-write:{self.target}"
        )

    # --- the byte stream ---------------------------------------------------------------------
    def _on_notify(self, _char: Any, data: bytearray) -> None:
        if self.is_open:
            self._received(bytes(data))

    def _write(self, data: bytes) -> None:
        self._out += data
        if self._wake is not None:
            self._wake.set()

    async def _write_loop(self, client: Any, rx: Any) -> None:
        assert self._wake is not None
        wake = self._wake
        try:
            while True:
                await wake.wait()
                wake.clear()
                while self._out:
                    size = self._chunk
                    chunk = bytes(self._out[:size])
                    del self._out[:size]
                    self.writes += 1
                    self.max_write = max(self.max_write, len(chunk))
                    await client.write_gatt_char(rx, chunk, response=False)
        except asyncio.CancelledError:
            raise
        except Exception as err:  # the link went away between two writes
            log.debug("BLE write failed: %s", err)
            if client is self._client:
                self._lost(ConnectionError(f"writing over Bluetooth failed: {err}"))

    def _on_disconnect(self, client: Any) -> None:
        if client is self._client and self.is_open:
            self._client = None
            if self._writer is not None:
                self._writer.cancel()
            self._lost(ConnectionError("the Bluetooth link dropped"))

    # --- close -------------------------------------------------------------------------------
    async def _close(self) -> None:
        await self._drop_client()
        central, self._central = self._central, None
        if central is not None and self.hci is not None:
            await central.close()  # the HCI transport (a dongle) is ours: let it go

    async def _drop_client(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.cancel()
        client, self._client = self._client, None
        self._out.clear()
        if client is not None:
            try:
                await asyncio.wait_for(_disconnect(client), CLOSE_S)
            except (TimeoutError, Exception) as err:  # the peer vanished: give up, bounded
                log.debug("BLE close did not complete within %s s: %s", CLOSE_S, err)

    def describe(self) -> str:
        """The URL and the ATT MTU of the open connection."""
        return f"{self.url.url} (ATT MTU {self.att_mtu})"


async def _disconnect(client: Any) -> None:
    with contextlib.suppress(Exception):
        await client.disconnect()


async def scan(
    seconds: float = 3.0, *, central: Any = None
) -> tuple[list[dict[str, Any]], str | None]:
    """lllt caps advertising in range: (caps, None), or ([], why BLE is not usable here).

    Scans for the lllt service UUID for ``seconds`` (the whole call is bounded by
    ``seconds`` + 2 s); with ``central`` (a :class:`BumbleCentral`), on that Bumble
    controller instead of the OS stack. Never raises for a missing adapter, D-Bus or
    BlueZ: bleak raises ``BleakError``, ``FileNotFoundError`` or another ``OSError`` there,
    and the reason comes back as text.
    """
    try:
        from bleak import BleakScanner
        from bleak.exc import BleakError
    except ImportError:
        return [], "not scanned: install the Bluetooth extra (pip install 'lllt[ble]')"
    kw: dict[str, Any] = {}
    if central is not None:
        from lllt.transport.bumble_backend import BumbleScanner

        kw = {"backend": BumbleScanner, "bumble": central}
    try:
        async with asyncio.timeout(seconds + 2.0):
            found = await BleakScanner.discover(
                timeout=seconds, service_uuids=[P.SERVICE_UUID], return_adv=True, **kw
            )
    except TimeoutError:
        return [], f"not available: the Bluetooth scan did not end within {seconds + 2:g} s"
    except (BleakError, OSError, EOFError) as err:
        reason = str(err) or type(err).__name__
        if isinstance(err, FileNotFoundError) or "dbus" in reason.lower():
            reason = "no D-Bus system bus (BlueZ is not running)"
        return [], f"not available here ({reason}); serial and simulators are listed above"
    caps: list[dict[str, Any]] = []
    for device, adv in found.values():
        name = adv.local_name or device.name or ""
        caps.append(
            {
                "url": f"ble://{device.address}",
                "address": str(device.address),
                "name": name,
                "rssi": adv.rssi,
            }
        )
    caps.sort(key=lambda c: -(c["rssi"] if c["rssi"] is not None else -999))
    return caps, None


def _no_bluetooth(text: str) -> bool:
    t = text.lower()
    return any(
        s in t
        for s in (
            "no bluetooth adapters",
            "bluetooth device is turned off",
            "org.freedesktop.dbus",
            "not authorized",
            "bluez",
            "no such file",
        )
    )


def _number(url: DeviceURL, name: str, default: float, low: float, high: float) -> float:
    text = url.option(name)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not low <= value <= high:
        raise URLError(f"{name}={text!r} in {url.url!r} is not a number from {low:g} to {high:g}")
    return value


class BleSimTransport(BleTransport):
    """``blesim://PROFILE?mtu=23``: the simulated cap as a Bumble peripheral, in-process.

    The simulator runs on this event loop behind the lllt GATT profile on a Bumble
    ``LocalLink``; the host reaches it through the real BLE code above (scan, connect,
    MTU exchange, chunked writes, notifications) with the Bumble backend for bleak. Like
    ``sim://``, it runs in lockstep on lllt's virtual clock (``speed=max`` or N).
    """

    OPTIONS: ClassVar[dict[str, str]] = {
        "mtu": "ATT MTU the host asks for, 23 to 517, default 247",
        "timeout": "seconds to find and connect, default 20",
        "speed": "max or N x real time, default 1",
        "seed": "integer, default 0",
        "faults": "e.g. link_drop@5s+3s",
        "ambient": "ambient temperature in degC, default 25",
        "key": "device key in hex (default: the development key)",
        "state": "file keeping the simulated device's records between runs",
        "button": "held: the cap's button is held",
        "pair": "yes or no (default yes): LE Secure Connections pairing with bonding",
        "pairing": "what the simulated cap offers: sc (default) or legacy",
        "device": "sim (default: the simulator) or fw (the C firmware library, as fw://)",
    }
    FORM: ClassVar[str] = "blesim://PROFILE[?mtu=23|247&speed=max&seed=N&faults=SPEC&device=fw]"
    _SIM_OPTIONS = ("speed", "seed", "faults", "ambient", "key", "state", "button")

    def __init__(self, url: DeviceURL) -> None:
        from lllt.transport.sim import SimTransport

        profile = url.target.strip("/")
        kind = url.option("device", "sim")
        if kind not in ("sim", "fw"):
            raise URLError(
                f"device={kind} in {url.url!r} is not sim or fw",
                advice="device=sim serves the simulator; device=fw the firmware library.",
            )
        sim_url = DeviceURL(
            f"{kind}://{profile}",
            kind,
            profile,
            {k: v for k, v in url.options.items() if k in self._SIM_OPTIONS},
        )
        if kind == "fw":
            from lllt.transport.fw import FwTransport

            self._sim: SimTransport = FwTransport(sim_url)
            self._sim.link_kind = "ble"  # type: ignore[attr-defined]
        else:
            self._sim = SimTransport(sim_url)  # checks the simulator's options
        ble_url = DeviceURL(
            url.url,
            url.scheme,
            url.target,
            {k: v for k, v in url.options.items() if k not in self._SIM_OPTIONS and k != "device"},
        )
        unknown = set(url.options) - set(self.OPTIONS) - set(self.COMMON_OPTIONS)
        if unknown:
            raise URLError(
                f"unknown option(s) {', '.join(sorted(unknown))} in {url.url!r}",
                advice=f"Expected {self.FORM}.",
            )
        super().__init__(ble_url)
        self.url = url
        if url.option("pairing", "sc") not in ("sc", "legacy"):
            raise URLError(f"pairing= in {url.url!r} is sc or legacy")
        if url.option("pair") is None:
            self.pair = True
        self.setup: Any = None
        self._served: list[Any] = []

    async def _bumble_central(self) -> Any:
        if self.setup is None:
            from lllt.transport.bumble_backend import BumbleCentral
            from lllt_sim.ble import local_pair

            await self._sim.open()
            setup = local_pair(
                self._sim.device, record_sizes=True, pairing=self.url.option("pairing") or "sc"
            )
            await setup.peripheral.start()
            self.setup = setup
            self._central = BumbleCentral(setup.central)
            self.target = setup.peripheral.name
        return self._central

    async def reconnect(self) -> None:
        """Drop the radio link and connect again; the simulated cap stays up."""
        self.is_open = False
        await self._drop_client()
        await self.open()

    async def _close(self) -> None:
        await self._drop_client()
        setup, self.setup = self.setup, None
        if setup is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(setup.peripheral.close(), CLOSE_S)
        self._central = None
        await self._sim.close()

    @property
    def device(self) -> Any:
        """The simulated device (after open)."""
        return self._sim.device


__all__ = [
    "CLOSE_S",
    "CONNECT_S",
    "BleSimTransport",
    "BleTransport",
    "BluetoothUnavailable",
    "scan",
]

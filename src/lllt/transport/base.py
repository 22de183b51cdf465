"""The transport base class: the client talks to it; a subclass only moves bytes.

The base owns the public methods (open, close, write, the closed-port check, byte
counting and the hand-off of received bytes to the client); a subclass fills the hooks
``_open``, ``_close`` and ``_write`` and calls ``_received`` / ``_lost`` (python-can's
``BusABC.recv`` → ``_recv_internal`` pattern). Received bytes are *pushed* to the
client's ``on_data`` callback as they arrive: no queue hop per frame, so a simulated
session at 10 Hz telemetry costs microseconds per frame.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

from lllt.errors import LinkLost, NotConnected, URLError
from lllt.transport import DeviceURL

if TYPE_CHECKING:
    from lllt.linkfault import LinkFaults


def _ignore_data(data: bytes) -> None:
    pass


def _ignore_lost(exc: BaseException | None) -> None:
    pass


class Transport(ABC):
    """The byte link to one device, one subclass per URL scheme. ``OPTIONS`` are the URL
    options it takes (name -> help) besides ``COMMON_OPTIONS``, and ``FORM`` its URL form;
    an unknown option is a URLError. ``bytes_in`` and ``bytes_out`` count the traffic, and
    a ``link=`` option puts the link fault layer (:mod:`lllt.linkfault`) in its path."""

    #: URL options this transport accepts (name -> help); anything else is an error
    OPTIONS: ClassVar[dict[str, str]] = {}
    FORM: ClassVar[str] = ""

    #: options every transport takes: the link fault layer (``lllt.linkfault``)
    COMMON_OPTIONS: ClassVar[dict[str, str]] = {
        "link": "link faults, e.g. drop,to=host,type=STARTED,n=1",
        "link_seed": "seed of the link faults' draws",
    }

    def __init__(self, url: DeviceURL) -> None:
        unknown = set(url.options) - set(self.OPTIONS) - set(self.COMMON_OPTIONS)
        if unknown:
            allowed = ", ".join(f"{k} ({v})" for k, v in self.OPTIONS.items()) or "none"
            raise URLError(
                f"unknown option(s) {', '.join(sorted(unknown))} in {url.url!r}",
                advice=f"Expected {self.FORM}; options: {allowed}.",
            )
        self.url = url
        self.is_open = False
        self.bytes_in = 0
        self.bytes_out = 0
        self._on_data: Callable[[bytes], None] = _ignore_data
        self._on_lost: Callable[[BaseException | None], None] = _ignore_lost
        self._lost_reason: BaseException | None = None
        self.link_faults: LinkFaults | None = None
        self._opened_at = 0.0
        spec = url.options.get("link")
        if spec is not None:
            from lllt.linkfault import LinkFaults

            seed_text = url.options.get("link_seed", "0")
            if not seed_text.isdigit():
                raise URLError(f"link_seed={seed_text!r} in {url.url!r} is not a whole number")
            self.link_faults = LinkFaults.parse(spec, seed=int(seed_text))

    # --- what the client calls -------------------------------------------------------
    def set_receiver(
        self, on_data: Callable[[bytes], None], on_lost: Callable[[BaseException | None], None]
    ) -> None:
        """Where received bytes go (``on_data``), and whom to tell when the link is lost
        (``on_lost``, with the cause, or None when the device closed it)."""
        self._on_data = on_data
        self._on_lost = on_lost

    async def open(self) -> None:
        """Open the link; nothing happens if it is open. A link that cannot be opened raises an
        LlltError (ConnectionFailed, mostly)."""
        if self.is_open:
            return
        await self._open()
        self.is_open = True
        self._lost_reason = None
        if self.link_faults is not None:
            import asyncio

            self.link_faults.reset()
            self._opened_at = asyncio.get_running_loop().time()

    async def close(self) -> None:
        """Close the link; nothing happens if it is closed. ``on_lost`` is not called."""
        if not self.is_open:
            return
        self.is_open = False
        await self._close()

    async def reconnect(self) -> None:
        """Drop the link and open it again (the device itself is not reset)."""
        await self.close()
        await self.open()

    def write(self, data: bytes) -> None:
        """Queue bytes for the device; never blocks."""
        if not self.is_open:
            if self._lost_reason is not None:
                raise LinkLost(f"the link to {self.url.url} is lost: {self._lost_reason}")
            raise NotConnected(f"{self.url.url} is not open")
        self.bytes_out += len(data)
        if self.link_faults is None:
            self._write(data)
        else:
            self._through_faults(data, "device")

    @property
    def clock_rate_hint(self) -> float | None:
        """Device seconds per host second when the transport knows it (None: ask HELLO)."""
        return None

    def describe(self) -> str:
        """The link in words, for messages: its URL (a subclass may add what it knows)."""
        return self.url.url

    # --- what subclasses call ----------------------------------------------------------
    def _received(self, data: bytes) -> None:
        self.bytes_in += len(data)
        if self.link_faults is None:
            self._on_data(data)
        else:
            self._through_faults(data, "host")

    def _through_faults(self, data: bytes, to: str) -> None:
        import asyncio

        faults = self.link_faults
        assert faults is not None
        loop = asyncio.get_running_loop()
        deliver = self._write if to == "device" else self._on_data
        for v in faults.process(data, to, loop.time() - self._opened_at):
            for _ in range(v.copies):
                if v.delay_s > 0:
                    loop.call_later(v.delay_s, self._late, deliver, v.data)
                else:
                    deliver(v.data)
        if faults.cut and self.is_open:
            faults.cut = False
            self._lost(ConnectionError("the link was cut (link fault)"))

    def _late(self, deliver: Callable[[bytes], None], data: bytes) -> None:
        if self.is_open:
            deliver(data)

    def _lost(self, exc: BaseException | None) -> None:
        if not self.is_open:
            return
        self.is_open = False
        self._lost_reason = exc or ConnectionError("closed by the device")
        self._on_lost(exc)

    # --- hooks ---------------------------------------------------------------------------
    @abstractmethod
    async def _open(self) -> None: ...

    @abstractmethod
    async def _close(self) -> None: ...

    @abstractmethod
    def _write(self, data: bytes) -> None: ...

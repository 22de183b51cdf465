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
from typing import ClassVar

from lllt.errors import LinkLost, NotConnected, URLError
from lllt.transport import DeviceURL


def _ignore_data(data: bytes) -> None:
    pass


def _ignore_lost(exc: BaseException | None) -> None:
    pass


class Transport(ABC):
    #: URL options this transport accepts (name -> help); anything else is an error
    OPTIONS: ClassVar[dict[str, str]] = {}
    FORM: ClassVar[str] = ""

    def __init__(self, url: DeviceURL) -> None:
        unknown = set(url.options) - set(self.OPTIONS)
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

    # --- what the client calls -------------------------------------------------------
    def set_receiver(
        self, on_data: Callable[[bytes], None], on_lost: Callable[[BaseException | None], None]
    ) -> None:
        self._on_data = on_data
        self._on_lost = on_lost

    async def open(self) -> None:
        if self.is_open:
            return
        await self._open()
        self.is_open = True
        self._lost_reason = None

    async def close(self) -> None:
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
        self._write(data)

    @property
    def clock_rate_hint(self) -> float | None:
        """Device seconds per host second when the transport knows it (None: ask HELLO)."""
        return None

    def describe(self) -> str:
        return self.url.url

    # --- what subclasses call ----------------------------------------------------------
    def _received(self, data: bytes) -> None:
        self.bytes_in += len(data)
        self._on_data(data)

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

"""``socket://HOST:PORT``: the byte stream over TCP (a served simulator, a network bridge)."""

from __future__ import annotations

import asyncio
import socket as _socket
from typing import ClassVar

from lllt.errors import ConnectionFailed, URLError
from lllt.transport import DeviceURL
from lllt.transport.base import Transport


class _Protocol(asyncio.Protocol):
    def __init__(self, owner: SocketTransport) -> None:
        self.owner = owner

    def data_received(self, data: bytes) -> None:
        self.owner._received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner._lost(exc)


class SocketTransport(Transport):
    """``socket://HOST:PORT``: the byte stream over TCP, Nagle off; connecting waits at most
    5 s."""

    OPTIONS: ClassVar[dict[str, str]] = {}
    FORM: ClassVar[str] = "socket://HOST:PORT"

    def __init__(self, url: DeviceURL) -> None:
        super().__init__(url)
        host, sep, port = url.target.rstrip("/").rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise URLError(
                f"{url.url!r} does not name a host and port", advice=f"Expected {self.FORM}."
            )
        self.host = host.strip("[]")
        self.port = int(port)
        self._transport: asyncio.Transport | None = None

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            transport, _ = await asyncio.wait_for(
                loop.create_connection(lambda: _Protocol(self), self.host, self.port), 5.0
            )
        except (OSError, TimeoutError) as err:
            raise ConnectionFailed(
                f"nothing answers at {self.host}:{self.port} ({err or 'timed out'})",
                advice="Check that the device or `lllt sim serve --tcp` is running there.",
            ) from err
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
        self._transport = transport  # type: ignore[assignment]

    def _write(self, data: bytes) -> None:
        assert self._transport is not None
        self._transport.write(data)

    async def _close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None

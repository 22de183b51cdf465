"""``lllt link proxy``: the link fault layer between a host and any TCP or pty device.

The proxy listens on a TCP port; each client that connects gets its own connection to the
upstream device (``socket://HOST:PORT``, or ``serial:///dev/...`` for a pty or serial
port, opened raw) and every frame between them passes through one
:class:`lllt.linkfault.LinkFaults`: the rules' counts and draws run on across
connections, and their times count from the start of the proxy. A ``cut`` closes the
client's connection and the upstream one; the next client starts afresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass

from lllt.errors import InvalidInput, LinkLost
from lllt.linkfault import LinkFaults


@dataclass
class _Upstream:
    write: Callable[[bytes], None]
    close: Callable[[], None]


async def _open_socket(
    target: str, on_data: Callable[[bytes], None], on_lost: Callable[[], None]
) -> _Upstream:
    host, _, port = target.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit():
        raise InvalidInput(f"upstream socket://{target} is not socket://HOST:PORT")
    loop = asyncio.get_running_loop()

    class _P(asyncio.Protocol):
        def data_received(self, data: bytes) -> None:
            on_data(data)

        def connection_lost(self, exc: BaseException | None) -> None:
            on_lost()

    try:
        transport, _ = await loop.create_connection(_P, host, int(port))
    except OSError as err:
        raise LinkLost(
            f"cannot reach the upstream device socket://{target}: {err.strerror or err}"
        ) from None
    with contextlib.suppress(OSError, AttributeError):
        import socket

        sock = transport.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return _Upstream(transport.write, transport.close)


async def _open_tty(
    path: str, on_data: Callable[[bytes], None], on_lost: Callable[[], None]
) -> _Upstream:
    import termios
    import tty

    try:
        fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError as err:
        raise LinkLost(f"cannot open the upstream device {path}: {err.strerror or err}") from None
    with contextlib.suppress(termios.error):
        tty.setraw(fd)
    loop = asyncio.get_running_loop()
    closed = False

    def readable() -> None:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            on_data(data)
        else:
            close()
            on_lost()

    def write(data: bytes) -> None:
        view = memoryview(data)
        while view and not closed:
            try:
                n = os.write(fd, view)
            except BlockingIOError:
                continue
            view = view[n:]

    def close() -> None:
        nonlocal closed
        if not closed:
            closed = True
            loop.remove_reader(fd)
            os.close(fd)

    loop.add_reader(fd, readable)
    return _Upstream(write, close)


async def open_upstream(
    url: str, on_data: Callable[[bytes], None], on_lost: Callable[[], None]
) -> _Upstream:
    """Connect to the upstream device, ``socket://HOST:PORT`` or ``serial:///dev/PATH`` (a pty
    or serial port, opened raw): received bytes go to ``on_data``, and ``on_lost()`` is
    called when it closes. InvalidInput for another URL, LinkLost when it cannot be reached."""
    if url.startswith("socket://"):
        return await _open_socket(url[len("socket://") :].split("?")[0], on_data, on_lost)
    if url.startswith("serial://"):
        return await _open_tty(url[len("serial://") :].split("?")[0], on_data, on_lost)
    raise InvalidInput(
        f"the proxy's upstream {url!r} is not socket://HOST:PORT or serial:///dev/PATH"
    )


class LinkProxy:
    """Serve ``listen`` and relay each client to ``upstream`` through ``faults``."""

    def __init__(self, upstream: str, faults: LinkFaults) -> None:
        self.upstream = upstream
        self.faults = faults
        self.connections = 0
        self._t0 = 0.0
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> tuple[str, int]:
        """Listen on ``host``:``port`` (0: any free port) and return the address bound;
        InvalidInput when it cannot. The rules' times count from now."""
        loop = asyncio.get_running_loop()
        self._t0 = loop.time()
        try:
            self._server = await asyncio.start_server(self._client, host, port)
        except OSError as err:
            raise InvalidInput(f"cannot listen on {host}:{port}: {err.strerror or err}") from None
        sockname = self._server.sockets[0].getsockname()
        return str(sockname[0]), int(sockname[1])

    def close(self) -> None:
        """Stop listening; connections already made run on until they end."""
        if self._server is not None:
            self._server.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        import socket

        loop = asyncio.get_running_loop()
        with contextlib.suppress(OSError, AttributeError):
            writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.connections += 1
        self.faults.reset()
        done = asyncio.Event()

        def to_client(data: bytes) -> None:
            if not writer.is_closing():
                writer.write(data)

        def late(deliver: Callable[[bytes], None], data: bytes) -> None:
            if not done.is_set():
                deliver(data)

        def relay(data: bytes, to: str, deliver: Callable[[bytes], None]) -> None:
            for v in self.faults.process(data, to, loop.time() - self._t0):
                for _ in range(v.copies):
                    if v.delay_s > 0:
                        loop.call_later(v.delay_s, late, deliver, v.data)
                    else:
                        deliver(v.data)
            if self.faults.cut:
                done.set()

        try:
            up = await open_upstream(self.upstream, lambda d: relay(d, "host", to_client), done.set)
        except (InvalidInput, LinkLost):
            writer.close()
            return

        async def pump() -> None:
            while not done.is_set():
                data = await reader.read(65536)
                if not data:
                    break
                relay(data, "device", up.write)
            done.set()

        task = loop.create_task(pump())
        await done.wait()
        task.cancel()
        up.close()
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


__all__ = ["LinkProxy", "open_upstream"]

"""Serve a simulated cap behind a pseudo-terminal or a TCP port, so any serial client
(pyserial, a terminal program, the lllt host with ``serial://`` or ``socket://``) can talk
to it.

Both pump bytes with the event loop's reader callbacks: a request is fed to the device the
moment it arrives, and the device answers from inside ``feed()``, so a served simulator
replies in tens of microseconds. The device itself runs on the same loop (``await
device.run()``); the caller picks the loop, e.g. ``lllt.clock.VirtualClockLoop(speed=N)``
for N× real time (``lllt sim serve`` does this).

Output the client does not read is dropped beyond a bounded buffer and counted, as a UART
would drop it: telemetry is a stream of samples, not a queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
import tty
from dataclasses import dataclass, field

from lllt_sim.device import SimDevice

#: most output held for a client that does not read (then it is dropped)
MAX_PENDING = 64 * 1024


@dataclass
class LinkStats:
    bytes_in: int = 0
    bytes_out: int = 0
    dropped_out: int = 0
    clients: int = 0


@dataclass
class Served:
    """Where a device is served; ``close()`` stops serving (the device keeps running)."""

    url: str
    path: str | None = None  # the pseudo-terminal (or the link to it)
    host: str | None = None
    port: int | None = None
    stats: LinkStats = field(default_factory=LinkStats)
    _closers: list[object] = field(default_factory=list, repr=False)

    def close(self) -> None:
        while self._closers:
            closer = self._closers.pop()
            closer()  # type: ignore[operator]


async def serve_pty(device: SimDevice, *, link_path: str | None = None) -> Served:
    """Open a pseudo-terminal pair and pump its master to and from ``device``.

    Returns where it serves: ``served.path`` is the slave (``/dev/pts/N``), or
    ``link_path`` when given (a symbolic link made to the slave, removed on close).
    """
    loop = asyncio.get_running_loop()
    master, slave = os.openpty()
    # raw mode on the slave: no echo, no line discipline; bytes pass as they are. The slave
    # stays open here too, so that a client closing it never hangs up the master.
    tty.setraw(slave)
    os.set_blocking(master, False)
    path = os.ttyname(slave)
    shown = path
    stats = LinkStats()
    pending = bytearray()
    writing = False

    def flush() -> None:
        nonlocal writing
        try:
            n = os.write(master, pending)
        except BlockingIOError:
            n = 0
        except OSError:
            n = len(pending)  # the pty is gone: nothing more to write
        del pending[:n]
        stats.bytes_out += n
        if pending and not writing:
            loop.add_writer(master, flush)
            writing = True
        elif not pending and writing:
            loop.remove_writer(master)
            writing = False

    def send(data: bytes) -> None:
        if len(pending) + len(data) > MAX_PENDING:
            stats.dropped_out += len(pending) + len(data)  # nobody is reading
            pending.clear()
            return
        pending.extend(data)
        if not writing:
            flush()

    def readable() -> None:
        try:
            data = os.read(master, 65536)
        except BlockingIOError:
            return
        except OSError as err:
            if err.errno == errno.EIO:
                return  # no client on the slave right now
            raise
        if data:
            stats.bytes_in += len(data)
            device.feed(data)

    if link_path is not None:
        _replace_link(link_path, path)
        shown = link_path
    device.attach(send)
    loop.add_reader(master, readable)
    served = Served(url=f"serial://{shown}", path=shown, stats=stats)

    def close() -> None:
        loop.remove_reader(master)
        if writing:
            loop.remove_writer(master)
        for fd in (master, slave):
            with contextlib.suppress(OSError):
                os.close(fd)
        if link_path is not None:
            with contextlib.suppress(OSError):
                if os.path.islink(link_path):
                    os.unlink(link_path)

    served._closers.append(close)
    return served


def _replace_link(link_path: str, target: str) -> None:
    """Point ``link_path`` at ``target``; an existing symlink is replaced, a file is not."""
    if os.path.lexists(link_path) and not os.path.islink(link_path):
        raise FileExistsError(f"{link_path} exists and is not a symbolic link")
    tmp = f"{link_path}.{os.getpid()}.tmp"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    os.symlink(target, tmp)
    os.replace(tmp, link_path)


class _Client(asyncio.Protocol):
    def __init__(self, server: _TcpServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            # small frames must leave at once, not wait for Nagle
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.connected(self)

    def data_received(self, data: bytes) -> None:
        if self.server.current is self:
            self.server.stats.bytes_in += len(data)
            self.server.device.feed(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.server.current is self:
            self.server.current = None


class _TcpServer:
    """One client at a time: a new connection replaces the old one."""

    def __init__(self, device: SimDevice, stats: LinkStats) -> None:
        self.device = device
        self.stats = stats
        self.current: _Client | None = None

    def connected(self, client: _Client) -> None:
        old = self.current
        self.current = client
        self.stats.clients += 1
        if old is not None and old.transport is not None:
            old.transport.close()

    def send(self, data: bytes) -> None:
        client = self.current
        if client is None or client.transport is None or client.transport.is_closing():
            self.stats.dropped_out += len(data)
            return
        if client.transport.get_write_buffer_size() > MAX_PENDING:
            self.stats.dropped_out += len(data)  # the client stopped reading
            return
        client.transport.write(data)
        self.stats.bytes_out += len(data)


async def serve_tcp(device: SimDevice, host: str = "127.0.0.1", port: int = 0) -> Served:
    """Listen on ``host:port`` (0: a free port) and pump one client at a time to ``device``."""
    loop = asyncio.get_running_loop()
    stats = LinkStats()
    tcp = _TcpServer(device, stats)
    server = await loop.create_server(lambda: _Client(tcp), host, port)
    real_port = server.sockets[0].getsockname()[1]
    device.attach(tcp.send)
    shown = f"[{host}]" if ":" in host else host
    served = Served(url=f"socket://{shown}:{real_port}", host=host, port=real_port, stats=stats)

    def close() -> None:
        server.close()
        if tcp.current is not None and tcp.current.transport is not None:
            tcp.current.transport.close()

    served._closers.append(close)
    return served


__all__ = ["Served", "serve_pty", "serve_tcp"]

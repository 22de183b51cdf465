"""``serial://PATH[?baud=115200]``: a UART, USB CDC port or pseudo-terminal via pyserial.

pyserial opens and configures the port (raw mode, baud rate, exclusive lock); the bytes
then move through the file descriptor with the event loop's reader callbacks, so a
reply is handed to the client the moment it arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
from typing import Any, ClassVar

from lllt.errors import ConnectionFailed, URLError
from lllt.transport import DeviceURL
from lllt.transport.base import Transport

_BAUDS = (9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600, 1000000, 2000000)


class SerialTransport(Transport):
    OPTIONS: ClassVar[dict[str, str]] = {"baud": "bits per second, default 115200"}
    FORM: ClassVar[str] = "serial:///dev/ttyACM0[?baud=115200]"

    def __init__(self, url: DeviceURL) -> None:
        super().__init__(url)
        self.path = url.target
        if not self.path:
            raise URLError(f"{url.url!r} names no port", advice=f"Expected {self.FORM}.")
        baud = url.option("baud", "115200") or ""
        if not baud.isdigit() or int(baud) not in _BAUDS:
            raise URLError(
                f"baud={baud!r} in {url.url!r} is not a supported rate",
                advice="Use one of " + ", ".join(map(str, _BAUDS)) + ".",
            )
        self.baud = int(baud)
        self._serial: Any = None
        self._fd = -1
        self._out = bytearray()
        self._loop: asyncio.AbstractEventLoop | None = None

    async def _open(self) -> None:
        import serial  # pyserial, imported only when a serial URL is opened

        try:
            ser = serial.Serial(self.path, self.baud, timeout=0, write_timeout=0, exclusive=True)
        except (serial.SerialException, OSError, ValueError) as err:
            cause = err.__cause__ or err
            missing = isinstance(cause, FileNotFoundError) or getattr(cause, "errno", None) in (
                errno.ENOENT,
                errno.ENXIO,
                errno.ENODEV,
            )
            reason = "there is no such port" if missing else str(err)
            raise ConnectionFailed(
                f"cannot open serial port {self.path}: {reason}",
                advice="Check the cable and the path; `lllt devices` lists the serial ports here.",
            ) from err
        self._serial = ser
        self._fd = ser.fileno()
        os.set_blocking(self._fd, False)
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._fd, self._readable)

    def _readable(self) -> None:
        try:
            data = os.read(self._fd, 65536)
        except BlockingIOError:
            return
        except OSError as err:  # EIO: the other end of a pty closed; a USB port unplugged
            self._drop(err)
            return
        if not data:
            self._drop(None)
            return
        self._received(data)

    def _write(self, data: bytes) -> None:
        if self._out:
            self._out += data
            return
        try:
            n = os.write(self._fd, data)
        except BlockingIOError:
            n = 0
        except OSError as err:
            self._drop(err)
            raise ConnectionFailed(f"writing to {self.path} failed: {err}") from err
        if n < len(data):
            self._out += data[n:]
            assert self._loop is not None
            self._loop.add_writer(self._fd, self._writable)

    def _writable(self) -> None:
        try:
            n = os.write(self._fd, self._out)
        except BlockingIOError:
            return
        except OSError as err:
            self._drop(err)
            return
        del self._out[:n]
        if not self._out and self._loop is not None:
            self._loop.remove_writer(self._fd)

    def _drop(self, err: BaseException | None) -> None:
        self._detach()
        self._lost(err)

    def _detach(self) -> None:
        if self._loop is not None and self._fd >= 0:
            self._loop.remove_reader(self._fd)
            self._loop.remove_writer(self._fd)
        if self._serial is not None:
            with contextlib.suppress(OSError):
                self._serial.close()
        self._serial = None
        self._fd = -1

    async def _close(self) -> None:
        self._detach()

"""``serial://PATH[?baud=115200]``: a UART, USB CDC port or pseudo-terminal via pyserial.

pyserial opens and configures the port (raw mode, baud rate, exclusive lock); the bytes
then move through the file descriptor with the event loop's reader callbacks, so a
reply is handed to the client the moment it arrives.

Where the event loop has no reader callbacks (Windows' proactor loop) or the port has no
file descriptor (Windows COM ports), a reader thread blocks in pyserial's ``read`` and
hands each chunk to the loop with ``call_soon_threadsafe``; writes go through pyserial.
``LLLT_SERIAL_READER=thread`` forces that path anywhere (the tests use it on Linux).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import threading
from typing import Any, ClassVar

from lllt.errors import ConnectionFailed, URLError
from lllt.transport import DeviceURL
from lllt.transport.base import Transport

_BAUDS = (9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600, 1000000, 2000000)


class SerialTransport(Transport):
    """``serial://PATH[?baud=N]``: a UART, USB CDC port or pseudo-terminal, opened through
    pyserial in raw mode with an exclusive lock, at ``baud`` bits per second (default
    115200)."""

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
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        #: "fd" (event loop reader callbacks) or "thread" (a reader thread), once open
        self.reader = ""

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
        self._loop = asyncio.get_running_loop()
        if os.environ.get("LLLT_SERIAL_READER", "").lower() != "thread":
            try:
                fd = ser.fileno()
                self._loop.add_reader(fd, self._readable)
            except (NotImplementedError, AttributeError, OSError, ValueError):
                pass  # no reader callbacks here (Windows): the thread below
            else:
                self._fd = fd
                os.set_blocking(fd, False)
                self.reader = "fd"
                return
        self._start_thread(ser)

    # --- the reader thread (no loop.add_reader) ---------------------------------------------
    def _start_thread(self, ser: Any) -> None:
        ser.timeout = 0.05  # a blocking read that wakes up to see a close
        ser.write_timeout = 2.0
        self.reader = "thread"
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._read_loop, args=(ser,), name=f"lllt-serial:{self.path}", daemon=True
        )
        self._thread.start()

    def _read_loop(self, ser: Any) -> None:
        loop = self._loop
        assert loop is not None
        while not self._stop.is_set():
            try:
                data = ser.read(max(1, ser.in_waiting))
            except Exception as err:  # SerialException, OSError: unplugged, pty closed
                if not self._stop.is_set():
                    with contextlib.suppress(RuntimeError):  # the loop is closed
                        loop.call_soon_threadsafe(self._drop, err)
                return
            if data and not self._stop.is_set():
                try:
                    loop.call_soon_threadsafe(self._received, bytes(data))
                except RuntimeError:  # the loop is closed
                    return

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
        if self.reader == "thread":
            try:
                self._serial.write(data)
            except Exception as err:
                self._drop(err)
                raise ConnectionFailed(f"writing to {self.path} failed: {err}") from err
            return
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
        self._stop.set()
        thread, self._thread = self._thread, None
        if self._serial is not None and thread is not None:
            with contextlib.suppress(Exception):
                self._serial.cancel_read()
        if thread is not None and thread is not threading.current_thread():
            thread.join(1.0)
        if self._serial is not None:
            with contextlib.suppress(OSError):
                self._serial.close()
        self._serial = None
        self._fd = -1

    async def _close(self) -> None:
        self._detach()

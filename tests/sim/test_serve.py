"""Serving the simulator on a pseudo-terminal and on TCP, in-process and through
``lllt sim serve``; and the command's refusals of bad options."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from lllt import clock
from lllt import wire as W
from lllt.cli import app
from lllt.cli._app import run_app
from lllt_sim.device import SimDevice
from lllt_sim.serve import serve_pty, serve_tcp

pty_only = pytest.mark.skipif(not hasattr(os, "openpty"), reason="no POSIX pseudo-terminals")


def _frames_until(read: object, want: int, *, seq: int, timeout: float) -> list[W.Message]:
    """Read with ``read()`` until the reply to ``seq`` and ``want`` telemetry frames came."""
    dec = W.FrameDecoder()
    msgs: list[W.Message] = []
    replied = False
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        data = read()  # type: ignore[operator]
        for frame in dec.feed(data):
            msgs.append(W.decode_message(frame))
            replied = replied or (frame.seq == seq and frame.type < W.MsgType.TELEMETRY)
        if replied and sum(isinstance(m, W.Telemetry) for m in msgs) >= want:
            return msgs
    raise AssertionError(f"timed out: got {msgs}")


# --- in process, on the virtual clock paced at 20x ---------------------------------------


@pty_only
def test_serve_pty_answers_on_the_terminal() -> None:
    async def main() -> None:
        dev = SimDevice("reference-cap", clock_rate=20.0)
        served = await serve_pty(dev)
        assert served.url == f"serial://{served.path}"
        task = asyncio.get_running_loop().create_task(dev.run())
        fd = os.open(served.path or "", os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            os.write(fd, b"\x00" + W.encode_message(W.Hello(), 3))
            out = bytearray()
            dec = W.FrameDecoder()
            msgs: list[W.Message] = []
            loop = asyncio.get_running_loop()
            reader_done = loop.create_future()

            def readable() -> None:
                try:
                    data = os.read(fd, 4096)
                except BlockingIOError:
                    return
                out.extend(data)
                msgs.extend(W.decode_message(f) for f in dec.feed(data))
                if sum(isinstance(m, W.Telemetry) for m in msgs) >= 5 and not reader_done.done():
                    reader_done.set_result(None)

            loop.add_reader(fd, readable)
            await asyncio.wait_for(reader_done, 30)
            loop.remove_reader(fd)
            info = [m for m in msgs if isinstance(m, W.HelloInfo)]
            assert info and info[0].clock_rate == 20.0
            tel = [m for m in msgs if isinstance(m, W.Telemetry)]
            assert [t.time_ms for t in tel[:3]] == [100, 200, 300]  # nothing echoed or lost
        finally:
            os.close(fd)
            dev.close()
            await task
            served.close()
        assert served.stats.bytes_in > 0 and served.stats.bytes_out > 0

    clock.run(main(), virtual=True, speed=20)


@pty_only
def test_serve_pty_link_is_made_and_removed(tmp_path: object) -> None:
    link = os.path.join(str(tmp_path), "cap")

    async def main() -> None:
        dev = SimDevice("reference-cap")
        served = await serve_pty(dev, link_path=link)
        assert served.url == f"serial://{link}"
        assert os.path.islink(link) and os.readlink(link).startswith("/dev/")
        served.close()
        assert not os.path.lexists(link)

    clock.run(main(), virtual=True, speed=1)


def test_serve_tcp_one_client_at_a_time() -> None:
    async def main() -> None:
        dev = SimDevice("reference-cap", clock_rate=20.0)
        served = await serve_tcp(dev, "127.0.0.1", 0)
        assert served.port and served.url == f"socket://127.0.0.1:{served.port}"
        task = asyncio.get_running_loop().create_task(dev.run())
        try:
            r1, w1 = await asyncio.open_connection("127.0.0.1", served.port)
            w1.write(W.encode_message(W.Hello(), 1))
            await w1.drain()
            first = await r1.readuntil(b"\x00")
            assert first  # something came back on the first connection
            r2, w2 = await asyncio.open_connection("127.0.0.1", served.port)
            w2.write(W.encode_message(W.GetStatus(), 2))
            await w2.drain()
            dec = W.FrameDecoder()
            got: list[W.Frame] = []
            while not any(f.seq == 2 and f.type == W.MsgType.STATUS for f in got):
                got += dec.feed(await r2.read(4096))
            # the server closed the first connection when the second came
            await asyncio.wait_for(r1.read(-1), 5)
            assert r1.at_eof()
            w2.close()
            w1.close()
        finally:
            dev.close()
            await task
            served.close()
        assert served.stats.clients == 2

    clock.run(main(), virtual=True, speed=20)


# --- lllt sim serve -----------------------------------------------------------------------


def _serve(*args: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "lllt", "sim", "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    return proc, line


def _stop(proc: subprocess.Popen[str], sig: int = signal.SIGINT) -> tuple[int, str]:
    """Stop the server with ``sig``; its exit code and stderr."""
    proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    return proc.returncode, err


def test_cli_serves_tcp_until_interrupted() -> None:
    proc, line = _serve("--tcp", "127.0.0.1:0", "--speed", "20", "--seed", "3")
    try:
        m = re.search(
            r"serving reference-cap at socket://127\.0\.0\.1:(\d+) \(speed 20x, seed 3\)", line
        )
        assert m, line
        with socket.create_connection(("127.0.0.1", int(m[1])), timeout=10) as s:
            s.sendall(b"\x00" + W.encode_message(W.Hello(), 9))

            def read() -> bytes:
                return s.recv(65536)

            msgs = _frames_until(read, 3, seq=9, timeout=20)
        info = next(m for m in msgs if isinstance(m, W.HelloInfo))
        assert info.clock_rate == 20.0 and info.model == "lllt reference cap"
    finally:
        code, err = _stop(proc)
    assert code == 0, err


@pty_only
def test_cli_serves_a_pty_until_terminated() -> None:
    serial = pytest.importorskip("serial")
    proc, line = _serve("--pty", "--speed", "20")
    try:
        m = re.search(r"serving reference-cap at serial://(/\S+) \(speed 20x, seed 0\)", line)
        assert m, line
        port = serial.Serial(m[1], 115200, timeout=0.2)
        try:
            port.write(b"\x00" + W.encode_message(W.Hello(), 4))
            msgs = _frames_until(lambda: port.read(65536), 3, seq=4, timeout=20)
        finally:
            port.close()
        assert any(isinstance(m, W.HelloInfo) for m in msgs)
    finally:
        code, err = _stop(proc, signal.SIGTERM)
    assert code == 0, err


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ([], "exactly one of --pty, --tcp HOST:PORT and --ble"),
        (["--pty", "--tcp", "127.0.0.1:1"], "exactly one of"),
        (["--tcp", "localhost"], "HOST:PORT"),
        (["--tcp", "127.0.0.1:70000"], "HOST:PORT"),
        (["--pty", "--speed", "max"], "in-process simulator only"),
        (["--pty", "--speed", "-3"], "is not a speed"),
        (["--pty", "--faults", "overtemp@soon"], "name[:arg][@time][+duration]"),
        (["--pty", "--faults", "led_open:42"], "no channel 42"),
        (["--pty", "--profile", "nope"], "reference-cap"),
        (["--pty", "--key", "00ff"], "64 hexadecimal digits"),
        (["--pty", "--ambient", "90"], "between -20 and 50"),
        (["--tcp", "127.0.0.1:0", "--link", "/tmp/x"], "--link goes with --pty"),
    ],
)
def test_bad_options_exit_2_with_the_expected_form(
    args: list[str], words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_app(app, ["sim", "serve", *args]) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err

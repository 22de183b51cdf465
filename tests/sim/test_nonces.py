"""Wire 1.1, finding 10 of issue 7: nonces never repeat across restarts, so a captured
authenticated exchange replayed to a restarted device starts nothing."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time

from lllt import wire as W
from lllt_sim.device import SimDevice

from ._support import red

KEY = bytes(range(32))  # a provisioned key: not the development key


def _serve(*args: str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "lllt", "sim", "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    m = re.search(r"socket://127\.0\.0\.1:(\d+)", line)
    if not m:
        proc.kill()
        raise AssertionError(f"no address in {line!r}: {proc.communicate()[1]}")
    return proc, int(m[1])


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()


class _Conn:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.settimeout(0.2)
        self.dec = W.FrameDecoder()
        self.got: list[tuple[W.Frame, W.Message]] = []

    def exchange(self, data: bytes, seq: int, timeout: float = 10.0) -> W.Message:
        """Send ``data`` and return the first reply carrying ``seq``."""
        self.sock.sendall(data)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for f, m in self.got:
                if f.seq == seq and W.MsgType.ACK <= f.type < W.MsgType.TELEMETRY:
                    self.got.remove((f, m))
                    return m
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                break
            for frame in self.dec.feed(chunk):
                msg = W.decode_message(frame)
                if frame.type < W.MsgType.TELEMETRY:
                    self.got.append((frame, msg))
                elif isinstance(msg, W.Telemetry):
                    assert not msg.flags & W.TelemetryFlag.EMITTING or self.emit_ok
        raise AssertionError(f"no reply to seq {seq}")

    emit_ok = True

    def close(self) -> None:
        self.sock.close()


def test_captured_exchange_replayed_to_a_restarted_keyed_simulator_starts_nothing() -> None:
    args = ("--tcp", "127.0.0.1:0", "--key", KEY.hex(), "--speed", "1")
    proc, port = _serve(*args)
    try:
        conn = _Conn(port)
        hello = b"\x00" + W.encode_message(W.Hello(), 1)
        info = conn.exchange(hello, 1)
        assert isinstance(info, W.HelloInfo)
        assert not info.capabilities & W.Capability.DEV_KEY
        auth = W.AuthState(KEY, info.nonce)
        upload = W.encode_message(red(1.0, 60.0), 2, auth=auth)
        start = W.encode_message(W.Start(1), 3, auth=auth)
        assert isinstance(conn.exchange(upload, 2), W.Ack)
        started = conn.exchange(start, 3)
        assert isinstance(started, W.Started) and started.result == W.StartResult.STARTED
        assert isinstance(conn.exchange(W.encode_message(W.Abort(W.AbortReason.USER), 4), 4), W.Ack)
        conn.close()
    finally:
        _stop(proc)
    first_nonce = info.nonce

    proc, port = _serve(*args)  # the restarted device
    try:
        conn = _Conn(port)
        conn.emit_ok = False  # no sample may show the emitters on
        info2 = conn.exchange(hello, 1)  # the captured bytes, verbatim
        assert isinstance(info2, W.HelloInfo)
        assert info2.nonce != first_nonce
        refused = conn.exchange(upload, 2)
        assert isinstance(refused, W.Nack) and refused.code == W.NackCode.AUTH_FAILED
        refused = conn.exchange(start, 3)
        assert isinstance(refused, W.Nack)
        assert refused.code in (W.NackCode.AUTH_FAILED, W.NackCode.NO_PLAN)
        status = conn.exchange(W.encode_message(W.GetStatus(), 5), 5)
        assert isinstance(status, W.Status)
        assert status.state == W.State.IDLE and status.plan_id == 0
        assert not status.flags & W.TelemetryFlag.EMITTING
        records = conn.exchange(W.encode_message(W.GetRecords(), 6), 6)
        assert isinstance(records, W.Records) and records.records == ()
        conn.close()
    finally:
        _stop(proc)


def _nonce(dev: SimDevice) -> bytes:
    dev.attach(lambda b: None)
    return dev.hello_info().nonce


def test_a_keyed_device_draws_nonces_from_the_os() -> None:
    # same seed, same boot count: only an OS source makes these differ
    assert _nonce(SimDevice(seed=0, key=KEY)) != _nonce(SimDevice(seed=0, key=KEY))


def test_a_dev_key_simulator_is_reproducible_but_mixes_in_the_boot_count(tmp_path) -> None:
    assert _nonce(SimDevice(seed=5)) == _nonce(SimDevice(seed=5))
    state = str(tmp_path / "state.json")
    first = SimDevice(seed=5, state_file=state)
    n1, b1 = _nonce(first), first.boot_count
    first.close()
    again = SimDevice(seed=5, state_file=state)
    n2, b2 = _nonce(again), again.boot_count
    again.close()
    assert b2 == b1 + 1
    assert n1 != n2

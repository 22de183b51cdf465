"""The Cap client against a scripted fake device: versions, retries, NACKs, lost links."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable
from typing import ClassVar

import pytest

from lllt import clock
from lllt import wire as W
from lllt.device import Cap
from lllt.errors import (
    AuthError,
    DeviceTimeout,
    LinkLost,
    RefusedByDevice,
    Rejected,
    VersionMismatch,
)
from lllt.transport import DeviceURL
from lllt.transport.base import Transport
from lllt_sim.profiles import load_profile

HELLO = load_profile("reference-cap").hello_info(nonce=bytes(16))

Handler = Callable[["FakeTransport", W.Frame], None]


class FakeTransport(Transport):
    """A device that answers with ``handler(transport, frame)``; replies via ``reply()``."""

    OPTIONS: ClassVar[dict[str, str]] = {}

    def __init__(self, handler: Handler) -> None:
        super().__init__(DeviceURL("fake://dev", "fake", "dev"))
        self.handler = handler
        self.decoder = W.FrameDecoder()
        self.seen: list[W.Frame] = []

    async def _open(self) -> None:
        pass

    async def _close(self) -> None:
        pass

    def _write(self, data: bytes) -> None:
        for frame in self.decoder.feed(data):
            self.seen.append(frame)
            self.handler(self, frame)

    def reply(self, msg: W.Message, seq: int) -> None:
        self.raw(W.encode_frame(msg.TYPE, seq, msg.payload()))

    def raw(self, data: bytes) -> None:
        asyncio.get_running_loop().call_soon(self._received, data)


def hello_then(handler: Handler | None = None) -> Handler:
    def handle(t: FakeTransport, frame: W.Frame) -> None:
        if frame.type == W.MsgType.HELLO:
            t.reply(HELLO, frame.seq)
        elif handler is not None:
            handler(t, frame)

    return handle


def run(handler: Handler, body: Callable[[Cap], object], **kw: object) -> FakeTransport:
    transport = FakeTransport(handler)

    async def main() -> None:
        cap = Cap(transport, **kw)  # type: ignore[arg-type]
        await cap.open()
        try:
            await body(cap)  # type: ignore[misc]
        finally:
            await cap.close()

    clock.run(main(), virtual=True)
    return transport


def test_newer_device_major_is_refused_with_upgrade_advice() -> None:
    def handler(t: FakeTransport, frame: W.Frame) -> None:
        # any HELLO_INFO starts with major, minor; the rest may be anything
        t.raw(W.encode_frame(W.MsgType.HELLO_INFO, frame.seq, b"\x02\x03future", version=2))

    with pytest.raises(VersionMismatch) as exc:
        run(handler, lambda cap: asyncio.sleep(0))
    assert "2.3" in str(exc.value) and "Upgrade lllt" in str(exc.value)
    assert exc.value.exit_code == 3


def test_older_device_major_says_upgrade_firmware() -> None:
    def handler(t: FakeTransport, frame: W.Frame) -> None:
        t.raw(W.encode_frame(W.MsgType.HELLO_INFO, frame.seq, b"\x00\x09", version=0))

    with pytest.raises(VersionMismatch) as exc:
        run(handler, lambda cap: asyncio.sleep(0))
    assert "firmware" in str(exc.value)


def test_silent_device_times_out_with_advice() -> None:
    t0 = []

    def handler(t: FakeTransport, frame: W.Frame) -> None:
        t0.append(asyncio.get_running_loop().time())

    with pytest.raises(DeviceTimeout) as exc:
        run(handler, lambda cap: asyncio.sleep(0), timeout=0.5, retries=2)
    assert "nothing answered" in str(exc.value)
    assert exc.value.exit_code == 3
    assert len(t0) == 3  # one try and two retries
    assert t0[1] - t0[0] == pytest.approx(0.5)


def test_retry_resends_the_same_frame_and_succeeds() -> None:
    calls: list[W.Frame] = []

    def handler(t: FakeTransport, frame: W.Frame) -> None:
        calls.append(frame)
        if len(calls) >= 2:  # the first request is lost
            t.reply(W.Ack(), frame.seq)

    async def body(cap: Cap) -> None:
        await cap.pause()
        assert cap.counters.retries == 1

    run(hello_then(handler), body)
    assert len(calls) == 2 and calls[0] == calls[1]  # same seq, same bytes


def test_a_late_hello_info_is_not_taken_for_the_retried_hellos_nonce() -> None:
    # Every HELLO the device reads draws a new nonce. When the first HELLO_INFO is only
    # late, a host that retried with the same seq took that stale nonce and signed every
    # request with it; the device, holding the newer nonce, refused them all.
    key = bytes(range(32))
    device: dict[str, object] = {"hellos": []}

    def handler(t: FakeTransport, frame: W.Frame) -> None:
        loop = asyncio.get_running_loop()
        if frame.type == W.MsgType.HELLO:
            hellos = device["hellos"]
            assert isinstance(hellos, list)
            hellos.append(frame.seq)
            nonce = bytes([len(hellos)]) * 16
            device["nonce"] = nonce
            info = load_profile("reference-cap").hello_info(nonce=nonce)
            # a slow device: the first answer comes after the 1 s deadline, and before the
            # answer to the retry
            late = 1.2 if len(hellos) == 1 else 0.5
            loop.call_later(late, t.reply, info, frame.seq)
            return
        nonce = device["nonce"]
        assert isinstance(nonce, bytes)
        if W.verify_auth(key, nonce, frame) is None:
            t.reply(W.Nack(W.NackCode.AUTH_FAILED, 0, 0, 0, "wrong authentication tag"), frame.seq)
        else:
            t.reply(W.Ack(), frame.seq)

    async def body(cap: Cap) -> None:
        await cap.request(W.Heartbeat(), sign=True)  # signed with the nonce the device holds
        await asyncio.sleep(1.0)  # the late HELLO_INFO arrives, and changes nothing
        await cap.request(W.Heartbeat(), sign=True)
        assert cap.counters.unexpected == 1  # that late answer, dropped
        assert cap.counters.retries == 1

    run(handler, body, key=key, timeout=1.0)
    hellos = device["hellos"]
    assert isinstance(hellos, list) and len(hellos) == 2 and hellos[0] != hellos[1]


def test_a_hello_duplicated_on_the_link_costs_one_more_hello_not_the_session() -> None:
    # Differential seed 5523: a link that duplicates frames delivered HELLO twice; the
    # device drew a nonce for each and answered both, the host took the first answer,
    # and its signed START was refused (AuthError: the run failed). A signed request
    # refused with AUTH_FAILED now gets one new HELLO and one more try.
    key = bytes(range(32))
    device: dict[str, object] = {"hellos": 0, "refused": 0}

    def handler(t: FakeTransport, frame: W.Frame) -> None:
        if frame.type == W.MsgType.HELLO:
            copies = 2 if device["hellos"] == 0 else 1  # the first HELLO arrives twice
            for _ in range(copies):
                n = int(device["hellos"]) + 1  # type: ignore[call-overload]
                device["hellos"] = n
                device["nonce"] = bytes([n]) * 16
                t.reply(load_profile("reference-cap").hello_info(nonce=bytes([n]) * 16), frame.seq)
            return
        nonce = device["nonce"]
        assert isinstance(nonce, bytes)
        if W.verify_auth(key, nonce, frame) is None:
            device["refused"] = int(device["refused"]) + 1  # type: ignore[call-overload]
            t.reply(W.Nack(W.NackCode.AUTH_FAILED, 0, 0, 0, "wrong authentication tag"), frame.seq)
        else:
            t.reply(W.Ack(), frame.seq)

    async def body(cap: Cap) -> None:
        await cap.request(W.Heartbeat(), sign=True)
        await cap.request(W.Heartbeat(), sign=True)  # and the conversation goes on

    run(handler, body, key=key)
    assert device["hellos"] == 3 and device["refused"] == 1

    tries: list[int] = []

    def wrong_key(t: FakeTransport, frame: W.Frame) -> None:
        if frame.type == W.MsgType.HELLO:
            t.reply(HELLO, frame.seq)
        else:
            tries.append(frame.seq)
            t.reply(W.Nack(W.NackCode.AUTH_FAILED, 0, 0, 0, "wrong authentication tag"), frame.seq)

    async def signed(cap: Cap) -> None:
        await cap.request(W.Heartbeat(), sign=True)

    with pytest.raises(AuthError):  # a wrong key is still an AuthError, after one more try
        run(wrong_key, signed, key=key)
    assert len(tries) == 2


def test_safety_nack_becomes_refused_by_device_with_fields() -> None:
    def handler(t: FakeTransport, frame: W.Frame) -> None:
        t.reply(W.Nack(W.NackCode.LIMIT_IRRADIANCE, 3, 1000, 1250, "max 10"), frame.seq)

    async def body(cap: Cap) -> None:
        with pytest.raises(RefusedByDevice) as exc:
            await cap.upload(W.UploadPlan(5, W.LinkPolicy.FINISH, 1000, ()))
        err = exc.value
        assert (err.code, err.channel, err.limit, err.observed) == (
            W.NackCode.LIMIT_IRRADIANCE,
            3,
            1000,
            1250,
        )
        assert err.exit_code == 1 and "max 10" in str(err)

    run(hello_then(handler), body)


def test_other_nack_is_rejected_and_unknown_codes_are_kept() -> None:
    def handler(t: FakeTransport, frame: W.Frame) -> None:
        t.reply(W.Nack(200, 0xFF, 0, 0, ""), frame.seq)  # type: ignore[arg-type]

    async def body(cap: Cap) -> None:
        with pytest.raises(Rejected) as exc:
            await cap.pause()
        assert exc.value.code == 200 and "200" in str(exc.value)

    run(hello_then(handler), body)


def test_energy_request_without_key_is_refused_before_sending() -> None:
    hello = load_profile("reference-cap").hello_info(
        capabilities=W.Capability.AUTH_REQUIRED  # no DEV_KEY: no key can be assumed
    )

    def handler(t: FakeTransport, frame: W.Frame) -> None:
        if frame.type == W.MsgType.HELLO:
            t.reply(hello, frame.seq)

    async def body(cap: Cap) -> None:
        with pytest.raises(AuthError):
            await cap.start(9)

    t = run(handler, body)
    assert [f.type for f in t.seen] == [W.MsgType.HELLO]


def test_wrong_reply_type_is_malformed() -> None:
    from lllt.errors import MalformedReply

    def handler(t: FakeTransport, frame: W.Frame) -> None:
        t.reply(W.Ack(), frame.seq)  # GET_STATUS must get STATUS

    async def body(cap: Cap) -> None:
        with pytest.raises(MalformedReply):
            await cap.status()

    run(hello_then(handler), body)


def test_lost_link_fails_waiting_requests_and_streams() -> None:
    def handler(t: FakeTransport, frame: W.Frame) -> None:
        asyncio.get_running_loop().call_later(0.2, t._lost, OSError(5, "Input/output error"))

    async def body(cap: Cap) -> None:
        sub = cap.telemetry()
        with pytest.raises(LinkLost):
            await cap.pause()
        with pytest.raises(LinkLost):
            await sub.get(1.0)
        with pytest.raises(LinkLost):
            await cap.status()

    run(hello_then(handler), body, timeout=5.0)


def test_garbage_and_lost_telemetry_are_counted() -> None:
    def handler(t: FakeTransport, frame: W.Frame) -> None:
        tel = W.Telemetry(
            0, 1, W.State.IDLE, 255, 0, W.TelemetryFlag(0), 1000, 5000, 0, 0, (), (), (), (), None
        )
        loop = asyncio.get_running_loop()
        loop.call_soon(t._received, b"\x13\x37 noise \x00")
        loop.call_soon(t._received, W.encode_frame(W.MsgType.TELEMETRY, 10, tel.payload()))
        loop.call_soon(t._received, W.encode_frame(W.MsgType.TELEMETRY, 14, tel.payload()))
        loop.call_soon(t._received, W.encode_frame(W.MsgType.TELEMETRY, 15, b"\x01"))
        t.reply(W.Ack(), frame.seq)

    async def body(cap: Cap) -> None:
        await cap.heartbeat()
        await asyncio.sleep(0.01)
        stats = cap.link_stats()
        assert stats["bytes_dropped"] == len(b"\x13\x37 noise \x00")
        assert stats["malformed"] == 1
        assert stats["lost_unsolicited"] == 3 + 0  # seq 11, 12, 13 never came
        assert cap.last_telemetry is not None

    run(hello_then(handler), body)


# --- wire 1.1, finding 11 of issue 7: when the host signs with the development key -------

_CAPS = W.Capability


def _hello_with(caps: W.Capability) -> W.HelloInfo:
    return load_profile("reference-cap").hello_info(nonce=bytes(16), capabilities=caps)


@pytest.fixture
def no_stored_key(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    monkeypatch.delenv("LLLT_KEY", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))  # no keys.toml


def test_dev_key_device_that_is_not_simulated_gets_no_key(
    no_stored_key: None, caplog: pytest.LogCaptureFixture
) -> None:
    from lllt.device import resolve_key

    board = _hello_with(_CAPS.AUTH_REQUIRED | _CAPS.DEV_KEY)
    assert resolve_key(board) is None
    assert resolve_key(_hello_with(_CAPS.AUTH_REQUIRED | _CAPS.SIMULATED)) is None
    assert "development key" not in caplog.text


def test_simulator_with_dev_key_gets_the_dev_key_without_warning(
    no_stored_key: None, caplog: pytest.LogCaptureFixture
) -> None:
    from lllt.device import resolve_key

    sim = _hello_with(_CAPS.AUTH_REQUIRED | _CAPS.SIMULATED | _CAPS.DEV_KEY)
    assert resolve_key(sim) == W.DEVELOPMENT_KEY
    assert "development key" not in caplog.text


def test_explicit_dev_key_signs_a_board_and_warns(
    no_stored_key: None, caplog: pytest.LogCaptureFixture
) -> None:
    from lllt.device import resolve_key

    board = _hello_with(_CAPS.AUTH_REQUIRED | _CAPS.DEV_KEY)
    with caplog.at_level("WARNING", logger="lllt"):
        assert resolve_key(board, dev_key=True) == W.DEVELOPMENT_KEY
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "published development key" in warnings[0].getMessage()
    assert board.serial in warnings[0].getMessage()
    # a device that does not accept the development key never gets it, even when asked
    assert resolve_key(_hello_with(_CAPS.AUTH_REQUIRED), dev_key=True) is None
    # an explicit key always wins
    assert resolve_key(board, "00" * 32, dev_key=True) == bytes(32)


def _run_cli(tmp_path: object, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "LLLT_KEY"}
    env["XDG_CONFIG_HOME"] = str(tmp_path)
    device = ("--device", "sim://reference-cap?speed=max", "--yes", "--db", f"{tmp_path}/l.db")
    out = subprocess.run(
        [sys.executable, "-m", "lllt", "run", "aga-red-eod-25min", *device, *extra],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )
    assert "Traceback" not in out.stderr, out.stderr
    return out


def test_cli_run_with_dev_key_prints_the_warning(tmp_path: object) -> None:
    out = _run_cli(tmp_path, "--dev-key")
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stderr.splitlines() if "published development key" in line]
    assert len(lines) == 1 and lines[0].startswith("warning: --dev-key")


def test_cli_run_without_dev_key_prints_no_warning(tmp_path: object) -> None:
    out = _run_cli(tmp_path)
    assert out.returncode == 0, out.stderr
    assert "development key" not in out.stderr


# --- Subscription.take_inline: a consumer that takes messages as they arrive -----------------


def _telemetry_frames(seqs: range) -> list[bytes]:
    tel = W.Telemetry(
        0, 1, W.State.IDLE, 255, 0, W.TelemetryFlag(0), 1000, 5000, 0, 0, (), (), (), (), None
    )
    return [W.encode_frame(W.MsgType.TELEMETRY, s, tel.payload()) for s in seqs]


def test_take_inline_takes_while_the_consumer_waits_and_buffers_in_order_otherwise() -> None:
    """Messages that arrive while the consumer waits on an empty buffer go to the taker as
    they come; what it returns is what ``get`` gives; while the consumer is busy messages
    are buffered, and ``get`` gives them in order without the taker."""
    taken: list[int] = []

    def handler(t: FakeTransport, frame: W.Frame) -> None:
        loop = asyncio.get_running_loop()
        for k, data in enumerate(_telemetry_frames(range(20, 26))):
            loop.call_later(0.01 * (k + 1), t._received, data)
        t.reply(W.Ack(), frame.seq)

    async def body(cap: Cap) -> None:
        sub = cap.telemetry()
        seqs: dict[int, int] = {}

        def take(msg: object) -> object:
            seq = cap._unsolicited_seq
            assert seq is not None
            taken.append(seq)
            seqs[id(msg)] = seq
            return msg if seq in (22, 25) else None  # hand two of them over

        sub.take_inline(take)
        await cap.heartbeat()
        first = await sub.get(1.0)  # 20 and 21 taken inline; 22 handed over
        assert taken == [20, 21, 22] and seqs[id(first)] == 22
        await asyncio.sleep(0.035)  # busy: 23, 24, 25 arrive and are buffered
        assert taken == [20, 21, 22] and sub.pending() == 3
        await sub.get(1.0)
        await sub.get(1.0)
        await sub.get(1.0)
        assert taken == [20, 21, 22] and sub.pending() == 0
        sub.take_inline(None)

    run(hello_then(handler), body)


def test_what_the_inline_taker_raises_is_raised_by_get() -> None:
    def handler(t: FakeTransport, frame: W.Frame) -> None:
        loop = asyncio.get_running_loop()
        loop.call_later(0.01, t._received, _telemetry_frames(range(5, 6))[0])
        t.reply(W.Ack(), frame.seq)

    async def body(cap: Cap) -> None:
        sub = cap.telemetry()

        def take(msg: object) -> object:
            raise ZeroDivisionError("a bug in the consumer")

        sub.take_inline(take)
        await cap.heartbeat()
        with pytest.raises(ZeroDivisionError, match="a bug in the consumer"):
            await sub.get(1.0)

    run(hello_then(handler), body)

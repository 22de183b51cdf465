"""A minimal host for the simulator tests: raw wire frames in, decoded messages out.

The simulator is tested on its own, without the host client (``lllt.device``): a test
builds requests with ``lllt.wire``, feeds them to a :class:`SimDevice` and reads what the
device sent back, with the loop time at which each message arrived. Everything runs on
lllt's virtual clock, so a 25-minute session takes a fraction of a second.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from lllt import clock
from lllt import wire as W
from lllt_sim.device import SimDevice

T = TypeVar("T")

ALL_RED = (0, 2, 4, 6)  # reference-cap: the 655 nm channel of each zone
ALL_FARRED = (1, 3, 5, 7)


@dataclass
class Received:
    t: float  # loop seconds since the host was made
    frame: W.Frame
    msg: W.Message


class Host:
    """Feeds requests to a device and records every message it sends, with its time."""

    def __init__(self, dev: SimDevice) -> None:
        self.dev = dev
        self.loop = asyncio.get_running_loop()
        self.t0 = self.loop.time()
        self.decoder = W.FrameDecoder()
        self.received: list[Received] = []
        self.raw = bytearray()
        self.seq = 0x1000
        self.last_status: W.Status | None = None
        self.auth: W.AuthState | None = None
        self.key = W.DEVELOPMENT_KEY
        self.task: asyncio.Task[None] | None = None
        self.last_tel: W.Telemetry | None = None
        #: False on a corrupting link, where a frame may pass its CRC and still not parse
        self.strict = True
        self.malformed = 0
        dev.attach(self._recv)

    def _recv(self, data: bytes) -> None:
        self.raw += data
        for frame in self.decoder.feed(data):
            try:
                msg = W.decode_message(frame)
            except W.WireError:
                if self.strict:
                    raise  # the device sent something malformed: fail the test
                self.malformed += 1
                continue
            self.received.append(Received(self.loop.time() - self.t0, frame, msg))
            if frame.type == W.MsgType.TELEMETRY:
                assert isinstance(msg, W.Telemetry)
                self.last_tel = msg

    def start(self) -> None:
        self.task = self.loop.create_task(self.dev.run())

    async def stop(self) -> None:
        self.dev.close()
        if self.task is not None:
            await self.task

    # --- requests ----------------------------------------------------------------------
    def request(self, msg: W.Message, *, sign: bool = False, seq: int | None = None) -> W.Message:
        """Send one request and return its reply (replies are immediate)."""
        if seq is None:
            self.seq = (self.seq + 1) & 0xFFFF
            seq = self.seq
        auth = self.auth if sign else None
        if sign and auth is None:
            raise AssertionError("HELLO first: no nonce to sign with")
        return self.request_raw(W.encode_message(msg, seq, auth=auth), seq)

    def send(self, msg: W.Message, *, sign: bool = False) -> None:
        """Send a request and do not wait for the reply (on a lossy link)."""
        self.seq = (self.seq + 1) & 0xFFFF
        self.dev.feed(W.encode_message(msg, self.seq, auth=self.auth if sign else None))

    def request_raw(self, data: bytes, seq: int) -> W.Message:
        before = len(self.received)
        self.dev.feed(data)
        replies = [
            r.msg
            for r in self.received[before:]
            if r.frame.seq == seq and W.MsgType.ACK <= r.frame.type < W.MsgType.TELEMETRY
        ]
        if len(replies) == 2 and isinstance(replies[1], W.Status):
            # wire 1.1: ABORT is answered with ACK, then a STATUS with the same seq
            assert isinstance(replies[0], W.Ack), replies
            self.last_status = replies[1]
            return replies[0]
        assert len(replies) == 1, f"expected one reply with seq {seq}, got {replies}"
        return replies[0]

    def hello(self) -> W.HelloInfo:
        info = self.request(W.Hello())
        assert isinstance(info, W.HelloInfo)
        self.auth = W.AuthState(self.key, info.nonce)
        return info

    def upload(self, plan: W.UploadPlan) -> W.Message:
        return self.request(plan, sign=True)

    def start_plan(self, plan: W.UploadPlan) -> W.Started:
        reply = self.upload(plan)
        assert isinstance(reply, W.Ack), reply
        started = self.request(W.Start(plan.plan_id), sign=True)
        assert isinstance(started, W.Started), started
        return started

    def status(self) -> W.Status:
        st = self.request(W.GetStatus())
        assert isinstance(st, W.Status)
        return st

    def records(self, n: int = W.MAX_RECORDS) -> tuple[W.SessionRecord, ...]:
        rec = self.request(W.GetRecords(n))
        assert isinstance(rec, W.Records)
        return rec.records

    # --- what came back -------------------------------------------------------------------
    def telemetry(self) -> list[W.Telemetry]:
        return [
            r.msg
            for r in self.received
            if isinstance(r.msg, W.Telemetry) and r.frame.type == W.MsgType.TELEMETRY
        ]

    def events(self, kind: W.EventKind | None = None) -> list[W.Event]:
        return [
            r.msg
            for r in self.received
            if isinstance(r.msg, W.Event) and (kind is None or r.msg.kind == kind)
        ]

    def last_telemetry(self) -> W.Telemetry:
        assert self.last_tel is not None, "no telemetry yet"
        return self.last_tel

    def session_end(self) -> W.Event:
        ends = self.events(W.EventKind.SESSION_END)
        assert len(ends) == 1, f"expected one SESSION_END, got {ends}"
        return ends[0]

    async def until(self, pred: Callable[[], bool], timeout_s: float, step_s: float = 0.1) -> None:
        """Sleep on the loop clock until ``pred()`` (fails after ``timeout_s``)."""
        end = self.loop.time() + timeout_s
        while True:
            await asyncio.sleep(step_s)
            if pred():
                return
            if self.loop.time() >= end:
                raise AssertionError(f"condition not met within {timeout_s} s")


def simulate(
    body: Callable[[Host], Awaitable[T]], *, speed: float | None = None, **device: Any
) -> T:
    """Run ``body(host)`` against a fresh device on the virtual clock; checks the device
    met no internal error."""

    async def main() -> T:
        dev = SimDevice(**{"profile": "reference-cap", **device})
        host = Host(dev)
        host.start()
        try:
            result = await body(host)
        finally:
            await host.stop()
        assert dev.stats["internal_errors"] == 0, dev.last_error
        return result

    return clock.run(main(), virtual=True, speed=speed)


def step(
    duration_s: float,
    emit: dict[int, float],
    *,
    ramp_s: float = 0.0,
    pulse_hz: float = 0.0,
    duty_pct: float = 100.0,
    targets: dict[int, float] | None = None,
    max_s: float | None = None,
) -> W.PlanStep:
    """A DURATION step, or a FLUENCE step when ``targets`` (J/cm² per channel) is given."""
    if targets is None:
        sps = tuple(W.ChannelSetpoint(c, v) for c, v in emit.items())
        return W.PlanStep(
            W.StepKind.DURATION,
            round(duration_s * 1000),
            round(ramp_s * 1000),
            pulse_hz,
            duty_pct,
            sps,
        )
    sps = tuple(W.ChannelSetpoint(c, v, targets[c]) for c, v in emit.items())
    return W.PlanStep(
        W.StepKind.FLUENCE,
        round((max_s or duration_s) * 1000),
        round(ramp_s * 1000),
        pulse_hz,
        duty_pct,
        sps,
    )


def plan(
    *steps: W.PlanStep,
    plan_id: int = 1,
    policy: W.LinkPolicy = W.LinkPolicy.FINISH,
    lease_ms: int = 600_000,
) -> W.UploadPlan:
    return W.UploadPlan(plan_id, policy, lease_ms, tuple(steps))


def red(irr: float, duration_s: float, **kw: Any) -> W.UploadPlan:
    """All four 655 nm channels at ``irr`` for ``duration_s``."""
    return plan(step(duration_s, dict.fromkeys(ALL_RED, irr)), **kw)

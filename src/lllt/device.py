"""The device client: ``Cap`` speaks wire protocol v1 to one cap over any transport.

::

    async with Cap.connect("sim://reference-cap?speed=max") as cap:
        print(cap.info.model, [c.wavelength_nm for c in cap.info.channels])
        plan_id = await cap.upload(plan.to_wire(cap.new_plan_id()))
        await cap.start(plan_id)              # lease renewal starts in the background
        async for t in cap.telemetry():       # or cap.events(), cap.stream()
            ...

``Cap`` owns the conversation: the handshake and version check, sequence numbers,
request deadlines and retries (a retry resends the same frame with the same sequence
number, which the device answers from its reply memory without executing twice),
authentication of energy-adding requests, the lease heartbeat, and fan-out of telemetry
and events to subscribers. Every failure is a :class:`lllt.errors.LlltError`.
``SyncCap`` wraps it for scripts and notebooks with bounded waits.

Timing follows the running event loop's clock (see :mod:`lllt.clock`), so a simulated
device under the virtual clock exercises the same deadlines at any speed. Deadlines that
are in device time (lease, telemetry period) are converted with the device's stated
clock rate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import threading
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from typing import Any, TypeVar

from lllt import clock, wire
from lllt.errors import (
    AuthError,
    DeviceError,
    DeviceTimeout,
    InvalidInput,
    LinkLost,
    MalformedReply,
    NotConnected,
    RefusedByDevice,
    Rejected,
    VersionMismatch,
)
from lllt.info import DeviceInfo
from lllt.transport import make_transport, parse_url, wants_virtual_clock
from lllt.transport.base import Transport

T = TypeVar("T")
W = wire

DEFAULT_TIMEOUT = 1.0  # seconds per attempt
DEFAULT_RETRIES = 2  # resends after the first attempt
DEFAULT_LEASE_MS = 3000

#: replies each request type may get besides NACK
_REPLIES: dict[int, tuple[int, ...]] = {
    W.MsgType.HELLO: (W.MsgType.HELLO_INFO,),
    W.MsgType.START: (W.MsgType.STARTED,),
    W.MsgType.GET_STATUS: (W.MsgType.STATUS,),
    W.MsgType.GET_RECORDS: (W.MsgType.RECORDS,),
    W.MsgType.RECORD_ACCESS: (W.MsgType.ACK, W.MsgType.RECORD_COUNT),
    # wire 1.1: ACK, then a STATUS with the same seq; when the ACK is lost the STATUS answers
    W.MsgType.ABORT: (W.MsgType.ACK, W.MsgType.STATUS),
}

_SAFETY_NACKS = {
    W.NackCode.LIMIT_IRRADIANCE,
    W.NackCode.LIMIT_DURATION,
    W.NackCode.LIMIT_FLUENCE,
    W.NackCode.TOO_HOT,
    W.NackCode.HEAD_NOT_PRESENT,
    W.NackCode.FAULT_LATCHED,
    W.NackCode.PULSE_RANGE,
}

_NACK_ADVICE = {
    W.NackCode.LIMIT_IRRADIANCE: "The plan asks for more than the device allows; lower it.",
    W.NackCode.LIMIT_DURATION: "The plan is longer than the device's longest session.",
    W.NackCode.LIMIT_FLUENCE: "The plan's dose is above the device's per-session maximum.",
    W.NackCode.TOO_HOT: "Let the scalp cool down for a few minutes, then start again.",
    W.NackCode.HEAD_NOT_PRESENT: "Put the cap on, then start again.",
    W.NackCode.FAULT_LATCHED: "The device has a latched fault; check it, then clear it.",
    W.NackCode.AUTH_REQUIRED: AuthError.default_advice,
    W.NackCode.AUTH_FAILED: AuthError.default_advice,
    W.NackCode.VERSION: "The device speaks another protocol version; upgrade lllt or the cap.",
    W.NackCode.BUSY: "Try again in a moment.",
}


# --- keys ------------------------------------------------------------------------------


def resolve_key(
    hello: wire.HelloInfo, key: bytes | str | None = None, *, dev_key: bool = False
) -> bytes | None:
    """The key to sign energy-adding requests with, or None.

    Order: the explicit ``key``; ``LLLT_KEY`` (hex); ``keys.toml`` in the user config
    directory (``"SERIAL" = "HEX"``); the published development key only when the device
    says both DEV_KEY and SIMULATED (a simulator), or when ``dev_key`` asks for it
    explicitly (a development board; a warning is logged). "No key given" never means
    "the development key" for a device that might be on a head.
    """
    if isinstance(key, bytes):
        return key
    text = key or os.environ.get("LLLT_KEY")
    if text:
        try:
            return bytes.fromhex(text)
        except ValueError:
            raise InvalidInput("the device key must be hexadecimal (64 hex digits)") from None
    stored = _key_from_file(hello.serial)
    if stored is not None:
        return stored
    if hello.capabilities & W.Capability.DEV_KEY:
        if hello.capabilities & W.Capability.SIMULATED:
            return W.DEVELOPMENT_KEY
        if dev_key:
            logging.getLogger("lllt").warning(
                "using the published development key with %s (%s): anyone can sign requests "
                "for it; never use it on a cap that is worn",
                hello.serial,
                hello.model,
            )
            return W.DEVELOPMENT_KEY
    return None


def _key_from_file(serial: str) -> bytes | None:
    from lllt import keys

    return keys.load().get(serial)


# --- subscriptions -----------------------------------------------------------------------


class Subscription(AsyncIterator[Any]):
    """An ordered, buffered stream of device messages for one consumer.

    Iterate with ``async for`` or call ``get(timeout)``. When the consumer falls more
    than ``maxlen`` messages behind, the oldest are dropped and counted in ``dropped``.
    The stream ends with LinkLost if the link drops, and stops when closed.
    """

    def __init__(self, cap: Cap, types: frozenset[int], maxlen: int) -> None:
        self._cap = cap
        self.types = types
        self._items: deque[Any] = deque()
        self._maxlen = maxlen
        self._waiter: asyncio.Future[None] | None = None
        self._error: BaseException | None = None
        self._closed = False
        self._inline: Callable[[Any], Any] | None = None
        self.dropped = 0

    def take_inline(self, fn: Callable[[Any], Any] | None) -> None:
        """Let ``fn(message)`` take messages as they arrive, while the consumer waits in
        :meth:`get` on an empty buffer (None: stop).

        ``fn`` runs synchronously in the receive path, exactly where the consumer would
        next have run, and returns None when it has dealt with the message, or what
        :meth:`get` is to return in its stead (the message itself, or the consumer's
        verdict on it). A message that arrives while the consumer is busy, or behind
        others, is buffered as usual, so messages are taken in order, one at a time.
        What ``fn`` raises ends the stream with that error, raised by :meth:`get`.
        This saves a wake-up of the consumer's task per message: a session's telemetry.
        """
        self._inline = fn

    def _push(self, item: Any) -> None:
        items = self._items
        waiter = self._waiter
        inline = self._inline
        if inline is not None and not items and waiter is not None and not waiter.done():
            try:
                item = inline(item)
            except Exception as err:  # the consumer's bug: its get() raises it
                self._fail(err)
                return
            if item is None:
                return
        items.append(item)
        if len(items) > self._maxlen:
            items.popleft()
            self.dropped += 1
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def put(self, item: Any) -> None:
        """Queue ``item`` as the stream's next message, as if the cap had sent it: for the
        consumer's own watchdog, whose verdict must reach the loop that reads this stream
        in order with the frames."""
        self._push(item)

    def _fail(self, exc: BaseException) -> None:
        self._error = exc
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def pending(self) -> int:
        """How many messages wait in the buffer."""
        return len(self._items)

    def get_nowait(self) -> Any | None:
        """The next buffered message, or None when there is none; never waits."""
        return self._items.popleft() if self._items else None

    async def get(self, timeout: float | None = None) -> Any:
        """The next message; DeviceTimeout after ``timeout`` seconds of loop time."""
        while not self._items:
            if self._error is not None:
                raise self._error
            if self._closed:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                if timeout is None:
                    await self._waiter
                else:
                    await asyncio.wait_for(self._waiter, timeout)
            except TimeoutError:
                raise DeviceTimeout(
                    f"no message from {self._cap.url} within {timeout:g} s"
                ) from None
            finally:
                self._waiter = None
        return self._items.popleft()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Any:
        return await self.get()

    def close(self) -> None:
        """End the stream: the cap stops feeding it, and once the buffer is empty ``get`` (and
        ``async for``) ends with StopAsyncIteration."""
        self._closed = True
        self._cap._unsubscribe(self)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- the client ----------------------------------------------------------------------------


class Cap:
    """An open conversation with one cap. Create with ``Cap.connect(url)``."""

    def __init__(
        self,
        transport: Transport,
        *,
        key: bytes | str | None = None,
        dev_key: bool = False,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
    ) -> None:
        self.transport = transport
        self._dev_key = dev_key
        self.url = transport.url.url
        self.timeout = timeout
        self.retries = retries
        self._key_arg = key
        self._decoder = W.FrameDecoder()
        self.counters = W.LinkCounters()
        self._seq = secrets.randbelow(0x10000)
        self._hello_seq: int | None = None  # the seq of the HELLO whose answer was taken
        self._pending: dict[int, tuple[asyncio.Future[W.Message], int]] = {}
        self._subs: list[Subscription] = []
        self._listeners: list[Callable[[W.Message], None]] = []
        self._hello: W.HelloInfo | None = None
        self._info: DeviceInfo | None = None
        self._auth: W.AuthState | None = None
        self._lost: BaseException | None = None
        self._unsolicited_seq: int | None = None
        self.lost_unsolicited = 0
        self.last_telemetry: W.Telemetry | None = None
        self.rebooted = False
        self._lease_ms = DEFAULT_LEASE_MS
        self._session_plan: int | None = None
        self._heartbeat: asyncio.Task[None] | None = None

    # --- opening and closing ------------------------------------------------------------
    @classmethod
    def connect(cls, url: str, **kwargs: Any) -> _Connect:
        """Open a device URL and handshake: ``async with Cap.connect(url) as cap`` or
        ``cap = await Cap.connect(url)`` (then ``await cap.close()``)."""
        return _Connect(cls, url, kwargs)

    async def open(self) -> None:
        """Open the transport and handshake (``Cap.connect`` does this); a failed handshake closes
        the transport again and raises."""
        self.transport.set_receiver(self._on_data, self._on_lost)
        await self.transport.open()
        self._lost = None
        try:
            await self.handshake()
        except BaseException:
            await self.transport.close()
            raise

    async def close(self) -> None:
        """Stop the lease heartbeat, end every subscription and close the link. A running session
        is not aborted: with no more heartbeats its lease runs out and the device applies the
        plan's link policy."""
        self._stop_heartbeat()
        for sub in list(self._subs):
            sub.close()
        await self.transport.close()

    async def reconnect(self) -> None:
        """Drop and reopen the link, then handshake again (a new nonce, same device)."""
        self._stop_heartbeat()
        serial = self._hello.serial if self._hello else None
        self.transport.set_receiver(self._on_data, self._on_lost)
        await self.transport.reconnect()
        self._decoder.reset()
        self._unsolicited_seq = None
        self._lost = None
        await self.handshake()
        if serial is not None and self.info.serial != serial:
            raise DeviceError(
                f"reconnected to a different device ({self.info.serial}, expected {serial})"
            )

    async def handshake(self) -> None:
        """HELLO again on the open link (after a device reboot: a new nonce)."""
        self.transport.write(b"\x00")  # end any partial frame the device holds
        try:
            reply = await self._hello_exchange()
        except DeviceTimeout:
            garbage = self._decoder.stats.bytes_dropped + self.counters.malformed
            heard = f" ({garbage} bytes of garbage came back and were dropped)" if garbage else ""
            raise DeviceTimeout(
                f"nothing answered the lllt handshake at {self.url}{heard}",
                advice="Check that an lllt cap (or `lllt sim serve`) is at that address and "
                "switched on; a serial port also needs the right baud rate.",
                bytes_dropped=self._decoder.stats.bytes_dropped,
            ) from None
        assert isinstance(reply, W.HelloInfo)
        self._accept_hello(reply)

    async def _hello_exchange(self) -> W.Message:
        """HELLO, retried as a new request each time (a new seq), answered by the newest.

        Every HELLO the device reads draws a new nonce, so a retry cannot be the same frame
        again (§4 of the wire protocol): when the first HELLO_INFO is merely late, the
        device has already replaced the nonce it carries. Each try has its own seq; only
        the answer to the newest HELLO is taken, and a late answer to an earlier one is
        counted unexpected and dropped. Each try waits twice as long as the one before,
        so a device that is merely slow (a loaded emulator) is still heard.
        """
        for attempt in range(self.retries):
            try:
                return await self._hello_once(self.timeout * 2**attempt)
            except DeviceTimeout:
                self.counters.retries += 1
        return await self._hello_once(self.timeout * 2**self.retries)

    async def _hello_once(self, wait: float) -> W.Message:
        self._hello_seq = (self._seq + 1) & 0xFFFF  # the seq request() takes, at once
        return await self.request(W.Hello(), retries=0, timeout=wait)

    def _later_hello_info(self, hello: W.HelloInfo) -> None:
        """Another HELLO_INFO for the HELLO taken: the link delivered that HELLO twice and
        the device drew a second nonce, which is the one it holds now."""
        if self._auth is not None and hello.nonce != self._auth.nonce:
            key = self._auth.key
            self._hello = hello
            self._auth = W.AuthState(key, hello.nonce)

    def _accept_hello(self, hello: W.HelloInfo) -> None:
        if hello.major != W.PROTOCOL_MAJOR:
            raise _version_error(hello.major, hello.minor)
        self._hello = hello
        self._info = DeviceInfo(hello)
        self.rebooted = False
        key = resolve_key(hello, self._key_arg, dev_key=self._dev_key)
        self._auth = W.AuthState(key, hello.nonce) if key is not None else None

    # --- what the device is ---------------------------------------------------------------
    @property
    def info(self) -> DeviceInfo:
        """What the device said it is at the handshake; NotConnected before it."""
        if self._info is None:
            raise NotConnected(f"{self.url} has not completed the handshake")
        return self._info

    @property
    def connected(self) -> bool:
        """True while the link is open and not lost, and the handshake is done."""
        return self.transport.is_open and self._lost is None and self._info is not None

    @property
    def clock_rate(self) -> float:
        """Device seconds per loop second (1 for real caps and lockstep simulators)."""
        rate = self.info.hello.clock_rate
        return rate if rate > 0 else 1.0

    def host_seconds(self, device_ms: float) -> float:
        """Loop seconds that ``device_ms`` of device time take."""
        return device_ms / 1000.0 / self.clock_rate

    def link_stats(self) -> dict[str, int]:
        """Link counters: the frame decoder's (frames, bytes dropped, bad frames by cause), then
        ``malformed``, ``unexpected``, ``retries``, ``lost_unsolicited``, ``bytes_in`` and
        ``bytes_out``."""
        stats = self._decoder.stats.as_dict()
        stats.update(
            malformed=self.counters.malformed,
            unexpected=self.counters.unexpected,
            retries=self.counters.retries,
            lost_unsolicited=self.lost_unsolicited,
            bytes_in=self.transport.bytes_in,
            bytes_out=self.transport.bytes_out,
        )
        return stats

    # --- requests -----------------------------------------------------------------------------
    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0xFFFF
        return self._seq

    async def request(
        self,
        msg: W.Message,
        *,
        sign: bool = False,
        timeout: float | None = None,
        retries: int | None = None,
    ) -> W.Message:
        """Send one request and return its reply; NACK raises Rejected (or a subclass).

        A signed request refused with AUTH_FAILED is sent once more after a new HELLO:
        the nonce it was signed with may be stale (a HELLO duplicated on the link drew a
        second nonce after the one this host took). A refused request was not executed,
        so the second try is safe; a wrong key fails again and raises AuthError.
        """
        reply = await self._exchange(msg, sign=sign, timeout=timeout, retries=retries)
        if isinstance(reply, W.Nack) and sign and reply.code == W.NackCode.AUTH_FAILED:
            await self._renew_nonce()
            reply = await self._exchange(msg, sign=sign, timeout=timeout, retries=retries)
        if isinstance(reply, W.Nack):
            raise self._nack_error(msg, reply)
        expected = _REPLIES.get(msg.TYPE, (W.MsgType.ACK,))
        if reply.TYPE not in expected:
            raise MalformedReply(
                f"{self.url} answered {msg.TYPE.name} with {reply.TYPE.name}",
                advice="The device does not follow the protocol; update its firmware.",
            )
        return reply

    async def _renew_nonce(self) -> None:
        """HELLO again on the open link for a fresh nonce: the same device, the same
        state (a reboot seen before stays seen)."""
        serial, rebooted = self.info.serial, self.rebooted
        await self.handshake()
        self.rebooted = self.rebooted or rebooted
        if self.info.serial != serial:
            raise DeviceError(
                f"{self.url} is now another device ({self.info.serial}, was {serial})"
            )

    async def _exchange(
        self,
        msg: W.Message,
        *,
        sign: bool,
        timeout: float | None,
        retries: int | None,
    ) -> W.Message:
        """One request and whatever answers it (a NACK included), with retries."""
        if self._lost is not None:
            raise LinkLost(f"the link to {self.url} is lost: {self._lost}")
        seq = self._next_seq()
        auth = None
        if sign:
            if self._auth is None:
                raise AuthError(
                    f"{self.info.serial} needs its key for {msg.TYPE.name}, and none is known",
                    code=W.NackCode.AUTH_REQUIRED,
                )
            auth = self._auth
        frame = W.encode_message(msg, seq, auth=auth)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[W.Message] = loop.create_future()
        self._pending[seq] = (fut, msg.TYPE)
        wait = self.timeout if timeout is None else timeout
        tries = 1 + (self.retries if retries is None else retries)
        attempts = 1
        timer: asyncio.TimerHandle | None = None

        def expire() -> None:
            # one timer per attempt, no task per request: a reply costs microseconds
            nonlocal attempts, timer
            if fut.done():
                return
            if attempts >= tries:
                fut.set_exception(
                    DeviceTimeout(
                        f"{msg.TYPE.name} got no reply from {self.url} "
                        f"within {wait:g} s ({tries} tries)"
                    )
                )
                return
            attempts += 1
            self.counters.retries += 1
            try:
                self.transport.write(frame)  # the same frame: the device deduplicates it
            except DeviceError as err:
                fut.set_exception(err)
                return
            timer = loop.call_later(wait, expire)

        timer = loop.call_later(wait, expire)
        try:
            self.transport.write(frame)
            await fut
        finally:
            if timer is not None:
                timer.cancel()
            self._pending.pop(seq, None)
        return fut.result()

    def _nack_error(self, request: W.Message, nack: W.Nack) -> Rejected:
        code = nack.code
        text = code.text if isinstance(code, W.NackCode) else f"refusal code {code}"
        message = f"the device refused {request.TYPE.name}: {text}"
        if nack.detail:
            message += f" ({nack.detail})"
        if code in (W.NackCode.AUTH_REQUIRED, W.NackCode.AUTH_FAILED):
            cls: type[Rejected] = AuthError
        elif code in _SAFETY_NACKS:
            cls = RefusedByDevice
        else:
            cls = Rejected
        channel = None if nack.channel == W.NO_INDEX else nack.channel
        return cls(
            message,
            advice=_NACK_ADVICE.get(code, ""),  # type: ignore[call-overload]
            code=code,
            channel=channel,
            limit=nack.limit,
            observed=nack.observed,
        )

    # --- the commands -------------------------------------------------------------------------
    @staticmethod
    def new_plan_id() -> int:
        """A random plan id, 1 to 2^31 - 1, for the next upload."""
        return 1 + secrets.randbelow(2**31 - 1)

    async def upload(self, plan: W.UploadPlan) -> int:
        """Send a plan (the device checks it against its hard limits); returns its id."""
        await self.request(plan, sign=True)
        self._lease_ms = plan.lease_ms
        return plan.plan_id

    async def start(self, plan_id: int) -> W.Started:
        """Start the loaded plan; idempotent by plan id. Starts the lease heartbeat."""
        reply = await self.request(W.Start(plan_id), sign=True)
        assert isinstance(reply, W.Started)
        if reply.result != W.StartResult.ALREADY_FINISHED:
            self._session_plan = plan_id
            self._start_heartbeat()
        return reply

    async def pause(self) -> None:
        """Pause the running session: emitters off from the next control tick, step time stopped
        (needs no key)."""
        await self.request(W.Pause())

    async def resume(self) -> None:
        """Resume a session paused by the host (a signed request)."""
        await self.request(W.Resume(), sign=True)

    async def abort(self, reason: W.AbortReason = W.AbortReason.USER) -> None:
        """Emitters off and end the session; always accepted by the device."""
        try:
            reply = await self.request(W.Abort(reason))
            if isinstance(reply, W.Status):
                self._push_status(reply)
        finally:
            self._stop_heartbeat()

    async def heartbeat(self) -> None:
        """Renew the session's lease once. The client already does this in the background after
        :meth:`start`."""
        await self.request(W.Heartbeat())

    async def set_telemetry_rate(self, hz: float) -> None:
        """Telemetry samples per second of device time (0 turns telemetry off)."""
        period = 0 if hz <= 0 else max(1, round(1000.0 / hz))
        await self.request(W.SetTelemetry(period))

    async def derate(self, permille: int) -> None:
        """Scale every setpoint of the running session to permille/1000."""
        await self.request(W.Derate(permille), sign=self._auth is not None)

    async def status(self) -> W.Status:
        """A STATUS sample taken now (GET_STATUS), laid out like telemetry."""
        reply = await self.request(W.GetStatus())
        assert isinstance(reply, W.Status)
        return reply

    async def records(self, max_count: int = W.MAX_RECORDS) -> tuple[W.SessionRecord, ...]:
        """The device's session records (GET_RECORDS), newest first, at most ``max_count``; a
        running session is among them with outcome RUNNING."""
        reply = await self.request(W.GetRecords(max_count))
        assert isinstance(reply, W.Records)
        return reply.records

    async def clear_fault(self) -> None:
        """Clear a latched fault; the device refuses (Rejected) while its cause remains."""
        await self.request(W.ClearFault())

    async def provision_key(self, key: bytes) -> None:
        """Give the device a new 32-byte key (wired link, provisioning state only)."""
        if len(key) != W.KEY_SIZE:
            raise InvalidInput(f"a device key is {W.KEY_SIZE} bytes, not {len(key)}")
        await self.request(W.ProvisionKey(key))

    # --- record access ------------------------------------------------------------------------
    async def record_count(self, from_seq: int = 0) -> int:
        """How many records the device holds with sequence number ``from_seq`` or later."""
        reply = await self.request(W.RecordAccess(W.RecordOp.COUNT, from_seq))
        assert isinstance(reply, W.RecordCount)
        return reply.count

    async def report_records(
        self, from_seq: int = 0, *, per_record_timeout: float = 2.0
    ) -> AsyncIterator[W.Record]:
        """The records with sequence number ``from_seq`` or later, oldest first.

        One report at a time (the device answers BUSY to a second); the wait for each
        record is ``per_record_timeout`` host seconds, restarted at every record, after
        which the report is aborted and DeviceTimeout raised. A lost link raises LinkLost:
        resume with ``from_seq`` = the last sequence number received + 1.
        """
        types = frozenset({W.MsgType.RECORD, W.MsgType.RECORDS_END})
        with self._subscribe(types, 10_000) as sub:
            await self.request(W.RecordAccess(W.RecordOp.REPORT, from_seq))
            wait = per_record_timeout + self.host_seconds(100)
            while True:
                try:
                    msg = await sub.get(wait)
                except DeviceTimeout:
                    with contextlib.suppress(DeviceError):
                        await self.request(W.RecordAccess(W.RecordOp.ABORT), retries=0)
                    raise DeviceTimeout(
                        f"the record report from {self.url} stalled: no record within {wait:g} s"
                    ) from None
                if isinstance(msg, W.RecordsEnd):
                    return
                assert isinstance(msg, W.Record)
                yield msg

    async def session_records(self) -> tuple[W.SessionRecord, ...]:
        """Every record the device holds, newest first: by record access when the device
        has it, else GET_RECORDS."""
        try:
            got = [r async for r in self.report_records(0)]
        except Rejected as err:
            if err.code != W.NackCode.UNKNOWN_TYPE:
                raise
            return await self.records()
        return tuple(r.record for r in reversed(got))

    # --- lease heartbeat ----------------------------------------------------------------------
    def _start_heartbeat(self) -> None:
        if self._heartbeat is None or self._heartbeat.done():
            self._heartbeat = asyncio.get_running_loop().create_task(
                self._heartbeat_loop(), name=f"lllt-heartbeat:{self.url}"
            )

    def _stop_heartbeat(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            self._heartbeat = None
        self._session_plan = None

    async def _heartbeat_loop(self) -> None:
        # renew at a third of the lease so that one lost heartbeat never expires it
        period = self.host_seconds(self._lease_ms / 3.0)
        while True:
            await asyncio.sleep(period)
            try:
                # a lost heartbeat is resent within the period, so one bad frame on a noisy
                # link never costs the lease
                await self.request(W.Heartbeat(), timeout=period / 4, retries=2)
            except DeviceTimeout:
                continue
            except (DeviceError, InvalidInput):
                return

    # --- telemetry and events -----------------------------------------------------------------
    def telemetry(self, maxlen: int = 100_000) -> Subscription:
        """A new :class:`Subscription` to telemetry samples (and the STATUS a device sends after
        ABORT), buffering at most ``maxlen``."""
        return self._subscribe(frozenset({W.MsgType.TELEMETRY}), maxlen)

    def events(self, maxlen: int = 100_000) -> Subscription:
        """A new :class:`Subscription` to the device's events, buffering at most ``maxlen``."""
        return self._subscribe(frozenset({W.MsgType.EVENT}), maxlen)

    def stream(self, maxlen: int = 100_000) -> Subscription:
        """Telemetry and events in the order the device sent them."""
        return self._subscribe(frozenset({W.MsgType.TELEMETRY, W.MsgType.EVENT}), maxlen)

    def _subscribe(self, types: frozenset[int], maxlen: int) -> Subscription:
        sub = Subscription(self, types, maxlen)
        if self._lost is not None:
            sub._fail(LinkLost(f"the link to {self.url} is lost"))
        self._subs.append(sub)
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        if sub in self._subs:
            self._subs.remove(sub)

    def add_listener(self, fn: Callable[[W.Message], None]) -> None:
        """Call ``fn(message)`` synchronously for every telemetry frame and event."""
        self._listeners.append(fn)

    def remove_listener(self, fn: Callable[[W.Message], None]) -> None:
        """Stop calling ``fn``; nothing happens if it was never added."""
        if fn in self._listeners:
            self._listeners.remove(fn)

    # --- receive path (called by the transport) ---------------------------------------------
    def _on_data(self, data: bytes) -> None:
        for frame in self._decoder.feed(data):
            if frame.version != W.PROTOCOL_MAJOR:
                self._foreign_version(frame)
                continue
            try:
                msg = W.decode_message(frame)
            except W.WireError:
                self.counters.malformed += 1
                continue
            if frame.type >= 0x60:
                self._unsolicited(frame.seq, msg)
                continue
            entry = self._pending.get(frame.seq)
            if entry is None or entry[0].done():
                if isinstance(msg, W.HelloInfo) and frame.seq == self._hello_seq:
                    self._later_hello_info(msg)
                    continue
                if isinstance(msg, W.Status):
                    # wire 1.1: the STATUS a device sends right after ABORT (and after a
                    # session ends) is a sample like telemetry: the proof of "emitters off"
                    self._push_status(msg)
                    continue
                self.counters.unexpected += 1  # a late answer to a retried request
                continue
            fut, _ = entry
            fut.set_result(msg)

    def _unsolicited(self, seq: int, msg: W.Message) -> None:
        last = self._unsolicited_seq
        if last is not None:
            gap = (seq - last - 1) & 0xFFFF
            if 0 < gap < 0x8000:
                self.lost_unsolicited += gap
        self._unsolicited_seq = seq
        if msg.TYPE in (W.MsgType.RECORD, W.MsgType.RECORDS_END):
            for sub in self._subs:  # a record-access report: only for who asked for it
                if msg.TYPE in sub.types:
                    sub._push(msg)
            return
        if msg.TYPE == W.MsgType.TELEMETRY:
            self.last_telemetry = msg  # type: ignore[assignment]
        else:
            assert isinstance(msg, W.Event)
            if msg.kind == W.EventKind.BOOT:
                # the device restarted: its nonce and our lease are gone; HELLO again
                self.rebooted = True
                self._auth = None
                self._stop_heartbeat()
            elif msg.kind == W.EventKind.SESSION_END and (
                self._session_plan is None or msg.limit == self._session_plan
            ):
                self._stop_heartbeat()
        for sub in self._subs:
            if msg.TYPE in sub.types:
                sub._push(msg)
        for fn in self._listeners:
            fn(msg)

    def _push_status(self, msg: W.Status) -> None:
        self.last_telemetry = msg
        for sub in self._subs:
            if W.MsgType.TELEMETRY in sub.types:
                sub._push(msg)

    def _foreign_version(self, frame: W.Frame) -> None:
        # HELLO_INFO of any version starts with major, minor: enough to say who upgrades
        if frame.type == W.MsgType.HELLO_INFO and len(frame.payload) >= 2:
            entry = self._pending.get(frame.seq)
            if entry is not None and not entry[0].done():
                entry[0].set_exception(_version_error(frame.payload[0], frame.payload[1]))
                return
        self.counters.unexpected += 1

    def _on_lost(self, exc: BaseException | None) -> None:
        reason = exc or ConnectionError("closed by the device")
        self._lost = reason
        error = LinkLost(f"the link to {self.url} was lost: {reason}")
        for fut, _ in self._pending.values():
            if not fut.done():
                fut.set_exception(error)
        for sub in self._subs:
            sub._fail(error)
        self._stop_heartbeat()


async def fetch_records(
    cap: Cap,
    from_seq: int = 0,
    *,
    reconnect_s: float = 30.0,
    per_record_timeout: float = 2.0,
) -> list[W.Record]:
    """Every record from ``from_seq`` on, oldest first, across link drops.

    A report cut by a lost link is resumed after a reconnect (within ``reconnect_s``
    host seconds) from the last sequence number received + 1, so the result has no gap
    the device did not have and no duplicate.
    """
    loop = asyncio.get_running_loop()
    got: list[W.Record] = []
    next_seq = from_seq
    deadline: float | None = None
    while True:
        try:
            async for rec in cap.report_records(next_seq, per_record_timeout=per_record_timeout):
                if got and rec.seq <= got[-1].seq:
                    continue  # never twice
                got.append(rec)
                next_seq = rec.seq + 1
            return got
        except LinkLost:
            if deadline is None:
                deadline = loop.time() + reconnect_s
            while True:
                left = deadline - loop.time()
                if left <= 0:
                    raise
                try:
                    await asyncio.wait_for(cap.reconnect(), left)
                    break
                except (DeviceError, TimeoutError, OSError):
                    await asyncio.sleep(min(0.5, max(0.0, deadline - loop.time())))


def _version_error(major: int, minor: int) -> VersionMismatch:
    ours = f"{W.PROTOCOL_MAJOR}.{W.PROTOCOL_MINOR}"
    theirs = f"{major}.{minor}"
    if major > W.PROTOCOL_MAJOR:
        advice = "Upgrade lllt (pip install --upgrade lllt) to talk to this cap."
    else:
        advice = "Upgrade the cap's firmware to a release speaking protocol " + ours + "."
    return VersionMismatch(
        f"the cap speaks wire protocol {theirs}; this lllt speaks {ours}",
        advice=advice,
        device_version=theirs,
        host_version=ours,
    )


class _Connect:
    """``Cap.connect(url)``: awaitable, and an async context manager that closes."""

    def __init__(self, cls: type[Cap], url: str, kwargs: dict[str, Any]) -> None:
        self._cap = cls(make_transport(url), **kwargs)

    async def _open(self) -> Cap:
        await self._cap.open()
        return self._cap

    def __await__(self) -> Any:
        return self._open().__await__()

    async def __aenter__(self) -> Cap:
        return await self._open()

    async def __aexit__(self, *exc: object) -> None:
        await self._cap.close()


# --- synchronous facade ----------------------------------------------------------------------


class _Runner:
    """Runs coroutines for SyncCap: inline on a virtual clock, or on a loop thread."""

    def __init__(self, virtual: bool, speed: float | None) -> None:
        self.virtual = virtual
        if virtual:
            # lockstep: simulated time passes only while a call runs
            self.loop: asyncio.AbstractEventLoop = clock.VirtualClockLoop(speed)
            self._thread: threading.Thread | None = None
        else:
            self.loop = asyncio.new_event_loop()
            self._thread = threading.Thread(
                target=self.loop.run_forever, name="lllt-sync", daemon=True
            )
            self._thread.start()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        if self._thread is None:
            return self.loop.run_until_complete(_bounded(coro, timeout))
        fut = asyncio.run_coroutine_threadsafe(_bounded(coro, timeout), self.loop)
        try:
            return fut.result(timeout + 1.0)
        except TimeoutError:
            fut.cancel()
            raise DeviceTimeout(f"no answer within {timeout:g} s") from None

    def close(self) -> None:
        if self._thread is not None:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5.0)
        self.loop.close()


async def _bounded(coro: Awaitable[T], timeout: float) -> T:
    try:
        return await asyncio.wait_for(coro, timeout)
    except DeviceTimeout:
        raise  # already says what did not answer
    except TimeoutError:
        raise DeviceTimeout(f"no answer within {timeout:g} s") from None


class SyncCap:
    """Blocking wrapper of :class:`Cap` for scripts; every call waits at most ``timeout``.

    ``sim://`` devices run in lockstep: simulated time passes only inside calls, so a
    script can think as long as it likes between two calls without the lease expiring.
    """

    def __init__(self, url: str, *, timeout: float = 10.0, **kwargs: Any) -> None:
        virtual, speed = wants_virtual_clock(parse_url(url))
        self.timeout = timeout
        self._runner = _Runner(virtual, speed)
        try:
            self.cap: Cap = self._runner.call(_open_cap(url, kwargs), timeout)
        except BaseException:
            self._runner.close()
            raise

    @classmethod
    def connect(cls, url: str, *, timeout: float = 10.0, **kwargs: Any) -> SyncCap:
        """The same as ``SyncCap(url, timeout=..., **kwargs)``: open and handshake."""
        return cls(url, timeout=timeout, **kwargs)

    def __enter__(self) -> SyncCap:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the cap and stop its event loop. A running session is not aborted (see
        :meth:`Cap.close`)."""
        try:
            self._runner.call(self.cap.close(), self.timeout)
        finally:
            self._runner.close()

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return self._runner.call(coro, self.timeout if timeout is None else timeout)

    @property
    def info(self) -> DeviceInfo:
        """What the device said it is at the handshake (:attr:`Cap.info`)."""
        return self.cap.info

    def upload(self, plan: W.UploadPlan) -> int:
        """Send a plan and return its id (:meth:`Cap.upload`)."""
        return self._call(self.cap.upload(plan))

    def start(self, plan_id: int) -> W.Started:
        """Start the loaded plan and its lease heartbeat (:meth:`Cap.start`)."""
        return self._call(self.cap.start(plan_id))

    def pause(self) -> None:
        """Pause the running session (:meth:`Cap.pause`)."""
        self._call(self.cap.pause())

    def resume(self) -> None:
        """Resume a session paused by the host (:meth:`Cap.resume`)."""
        self._call(self.cap.resume())

    def abort(self, reason: W.AbortReason = W.AbortReason.USER) -> None:
        """Emitters off and end the session (:meth:`Cap.abort`)."""
        self._call(self.cap.abort(reason))

    def status(self) -> W.Status:
        """A STATUS sample taken now (:meth:`Cap.status`)."""
        return self._call(self.cap.status())

    def records(self) -> tuple[W.SessionRecord, ...]:
        """The device's session records, newest first (:meth:`Cap.records`)."""
        return self._call(self.cap.records())

    def derate(self, permille: int) -> None:
        """Scale the running session's setpoints to ``permille``/1000 (:meth:`Cap.derate`)."""
        self._call(self.cap.derate(permille))

    def set_telemetry_rate(self, hz: float) -> None:
        """Telemetry samples per second, 0 for none (:meth:`Cap.set_telemetry_rate`)."""
        self._call(self.cap.set_telemetry_rate(hz))

    def clear_fault(self) -> None:
        """Clear a latched fault (:meth:`Cap.clear_fault`)."""
        self._call(self.cap.clear_fault())

    def stream(self, *, timeout: float | None = None) -> Iterator[W.Message]:
        """Telemetry and events as they come; each wait is bounded by ``timeout``."""
        sub = self.cap.stream()
        wait = self.timeout if timeout is None else timeout
        try:
            while True:
                try:
                    yield self._call(sub.get(wait), wait + 1.0)
                except StopAsyncIteration:
                    return
        finally:
            sub.close()

    def telemetry(self, *, timeout: float | None = None) -> Iterator[W.Telemetry]:
        """The telemetry samples of :meth:`stream` (events left out); each wait is bounded by
        ``timeout`` seconds, after which DeviceTimeout is raised."""
        for msg in self.stream(timeout=timeout):
            if isinstance(msg, W.Telemetry):
                yield msg

    def run(self, coro_fn: Callable[[Cap], Coroutine[Any, Any, T]], timeout: float) -> T:
        """Run ``await coro_fn(cap)`` on the cap's loop, bounded by ``timeout``."""
        return self._call(coro_fn(self.cap), timeout)


async def _open_cap(url: str, kwargs: dict[str, Any]) -> Cap:
    return await Cap.connect(url, **kwargs)


def fetch_device_info(url: str, *, timeout: float = 10.0) -> DeviceInfo:
    """Connect, handshake, and return what the device says it is (blocking)."""
    with SyncCap(url, timeout=timeout) as cap:
        return cap.info

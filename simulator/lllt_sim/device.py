"""The simulated cap as the host sees it: wire protocol v1 on a byte link, on the loop clock.

``SimDevice`` is a device, not part of the host: it imports only the wire codec from
``lllt`` and implements, independently of the host, what the firmware does on the wire
(docs/wire-protocol.md): framing, the request/reply rules (every NACK check, dedup of
retried requests, HMAC authentication with the development key or a provisioned one),
telemetry, events and session records. What happens at each control tick (physics, plan,
interlocks, faults) is :class:`lllt_sim.engine.Engine`, which this class extends.

Time. The device clock is the running event loop's ``loop.time()`` (device ms since the
first contact, rounded to the ms). Replies are immediate: ``feed()`` first brings the
simulation up to the current tick (so STATUS is current), answers at once, and sends
the events the request caused after the reply; effects on outputs start at the next
10 ms tick. Between requests the device wakes only when something is observable (a
telemetry sample, an event): it computes ahead to that moment speculatively and adopts
the result when the timer fires, unless a request arrived meanwhile, in which case it
recomputes from its last committed state. It never sleeps on the wall clock.

Determinism. Nonces and byte corruption are seeded too: with the same requests at the
same device times, the bytes sent are identical at every loop speed.
"""

from __future__ import annotations

import asyncio
import os
import random
import struct
from collections import OrderedDict
from collections.abc import Callable, Iterable

from lllt import wire
from lllt_sim import plans
from lllt_sim.engine import (
    INF,
    NORM,
    SAT,
    TOO_HOT_MARGIN_Q,
    UNITS_PER_UJ,
    Engine,
    _Cfg,
    _i32,
    _Phys,
)
from lllt_sim.faults import Fault
from lllt_sim.link import Corrupter, device_timer, encode_frame, link_state
from lllt_sim.profiles import Profile, default_capabilities
from lllt_sim.records import Record

S = wire.State
IL = wire.Interlock
EK = wire.EventKind
NC = wire.NackCode
TF = wire.TelemetryFlag

TEL_DEFAULT_MS = 100
HORIZON_TICKS = 100  # look ahead at most 1 s when no telemetry is due: a request re-plans this far
DEDUP_SIZE = 8

# telemetry flags as plain ints: IntFlag arithmetic is slow on the per-sample path
_HEARTBEAT = int(wire.MsgType.HEARTBEAT)
_F_HEAD = int(TF.HEAD_PRESENT)
_F_LEASE_ACTIVE = int(TF.LEASE_ACTIVE)
_F_LEASE_EXPIRED = int(TF.LEASE_EXPIRED)
_F_PAUSED_HOST = int(TF.PAUSED_BY_HOST)
_F_PAUSED_HEAD = int(TF.PAUSED_HEAD_OFF)
_F_DERATED = int(TF.DERATED)
_F_EMITTING = int(TF.EMITTING)
_F_AUTHENTICATED = int(TF.AUTHENTICATED)
_F_RAMPING = int(TF.RAMPING)


class SimDevice(Engine):
    """A simulated lllt cap speaking wire protocol v1 (see the module docstring)."""

    def __init__(
        self,
        profile: str | Profile = "reference-cap",
        *,
        seed: int = 0,
        faults: str | Iterable[Fault] = (),
        ambient_c: float = 25.0,
        key: bytes | None = None,
        clock_rate: float = 0.0,
        state_file: str | None = None,
        button_held: bool = False,
    ) -> None:
        if key is not None and not key:
            raise ValueError("a device key must not be empty")
        super().__init__(
            profile, seed=seed, faults=faults, ambient_c=ambient_c, state_file=state_file
        )
        self.clock_rate = float(clock_rate)
        self._init_keys(key, button_held)
        self._init_telemetry()
        self._init_auth(key)
        self._init_link()
        self._persist()

    def _init_keys(self, key: bytes | None, button_held: bool) -> None:
        """The device key, when it takes a new one, and the capabilities that follow."""
        self._key = key if key is not None else wire.DEVELOPMENT_KEY
        #: a device with its own key takes a new one only while its button is held; a
        #: fresh device (development key only) takes one at any time. Both: wired link only
        self._provisioned = key is not None
        self.button_held = button_held
        caps = default_capabilities()
        if key is not None:
            caps &= ~wire.Capability.DEV_KEY  # a provisioned key: the published one is refused
        self.capabilities = caps
        self._auth_required = bool(caps & wire.Capability.AUTH_REQUIRED)

    def _init_telemetry(self) -> None:
        """Telemetry (layout, schedule) and RECORD_ACCESS reports (none in progress)."""
        self._report: list[Record] = []  # records still to send in a RECORD_ACCESS report
        self._report_sent = 0
        self._report_last = 0
        self._report_timer: asyncio.TimerHandle | None = None
        self._ambient_q = round(self.ambient_c * 100)
        self._min_tel_ms = -(-1000 // max(1, self.limits.max_telemetry_hz))
        self._tel_struct = struct.Struct("<IHBBIHHHIIBB" + "HHI" * self.n_ch + "h" * (self.n_z + 1))
        self._tel_period = TEL_DEFAULT_MS
        self._tel_due: int | None = TEL_DEFAULT_MS

    def _init_auth(self, key: bytes | None) -> None:
        """Nonces (seeded on the development key), the request counter and the dedup cache."""
        # wire 1.1: nonces unique across power cycles. A device with its own key draws them
        # from the OS; one on the published development key stays reproducible from its
        # seed, with the boot count (kept in the state file) mixed in
        self._os_nonces = key is not None
        self._nonce_rng = random.Random(f"{self.seed}:{self.boot_count}:nonce")
        self._end_sample = False
        self._nonce = self._new_nonce()
        self._last_counter = 0
        self._authed = False
        self._dedup: OrderedDict[tuple[int, int, int], bytes] = OrderedDict()

    def _init_link(self) -> None:
        """The byte link (decoder, seeded corrupters, outbox) and the loop scheduling."""
        #: the kind of link the host is on: "wired" (USB serial, TCP, in-process) or "ble"
        #: (set by whoever serves the device over Bluetooth)
        self.link_kind = "wired"
        self._send: Callable[[bytes], None] | None = None
        self._decoder = wire.FrameDecoder()
        self._corrupt_in = Corrupter(f"{self.seed}:corrupt-in")
        self._corrupt_out = Corrupter(f"{self.seed}:corrupt-out")
        self._seq = 0
        self._outbox: list[bytes] | None = None
        self._busy = False
        self._inbox: list[bytes] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._t0 = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._spec: tuple[_Phys, _Cfg, bool] | None = None
        self._closed = False
        self._stopped: asyncio.Future[None] | None = None
        counters = (
            "frames_in",
            "frames_out",
            "bytes_in",
            "bytes_out",
            "requests",
            "nacks",
            "dedup_hits",
            "malformed",
            "unexpected",
            "telemetry",
            "dropped_in",
            "dropped_out",
            "wakeups",
            "send_errors",
            "internal_errors",
        )
        self._stats.update(dict.fromkeys(counters, 0))

    # --- public API -----------------------------------------------------------------------

    def attach(self, send: Callable[[bytes], None]) -> None:
        """Where the device's output bytes go (called synchronously, from the loop)."""
        self._send = send

    def feed(self, data: bytes) -> None:
        """Bytes from the host, in any chunking. Never raises."""
        if self._closed or not data:
            return
        if self._busy:  # re-entered from our own send callback: handle after this call
            self._inbox.append(bytes(data))
            return
        self._busy = True
        replan = False
        try:
            self._anchor()
            while True:
                replan |= self._feed_one(bytes(data))
                if not self._inbox:
                    break
                data = self._inbox.pop(0)
        except Exception as err:  # a device never dies of its input; count and carry on
            self._internal_error(err)
            replan = True
        finally:
            self._busy = False
        if replan:
            self._schedule()

    async def run(self) -> None:
        """Device main loop on the running loop; returns when :meth:`close` is called."""
        loop = asyncio.get_running_loop()
        self._anchor()
        if self._closed:
            return
        self._stopped = loop.create_future()
        self._schedule()
        try:
            await self._stopped
        finally:
            self._cancel_timer()
            self._closed = True
            self._persist()

    def close(self) -> None:
        """Stop the device: no more output, :meth:`run` returns."""
        if not self._closed:
            self._persist()
        self._closed = True
        self._cancel_timer()
        self.link_closed()
        if self._stopped is not None and not self._stopped.done():
            self._stopped.set_result(None)

    @property
    def stats(self) -> dict[str, int]:
        out = dict(self._stats)
        out["corrupted_in"] = self._corrupt_in.flipped
        out["corrupted_out"] = self._corrupt_out.flipped
        for k, v in self._decoder.stats.as_dict().items():
            out[f"decoder_{k}"] = v
        return out

    @property
    def state(self) -> wire.State:
        return self._state

    @property
    def now_ms(self) -> int:
        """Device time: ms since the last boot."""
        return self._abs_now() - self._boot_tick * self.tick_ms

    @property
    def records(self) -> tuple[wire.SessionRecord, ...]:
        """Session records, newest first, the running one with its live counters."""
        return tuple(self._record_now(r).to_wire() for r in self._records)

    @property
    def temperatures(self) -> tuple[float, ...]:
        """Scalp-contact temperature per zone (the model's, without sensor noise)."""
        return tuple(self._ph.ts)

    @property
    def board_temperatures(self) -> tuple[float, ...]:
        return tuple(self._ph.tb)

    def hello_info(self) -> wire.HelloInfo:
        """What the device answers to HELLO now (the current nonce included)."""
        return self.profile.hello_info(
            nonce=self._nonce,
            boot_count=self.boot_count & 0xFFFF,
            uptime_ms=max(0, self.now_ms) & 0xFFFFFFFF,
            clock_rate=self.clock_rate,
            capabilities=self.capabilities,
        )

    # --- clock ----------------------------------------------------------------------------

    def _anchor(self) -> None:
        if self._loop is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # fed outside a loop: device time stands still
        self._loop = loop
        self._t0 = loop.time()

    def _abs_now(self) -> int:
        """Absolute device ms (since the first contact), never before the committed tick."""
        committed = self._ph.tick * self.tick_ms
        if self._loop is None:
            return committed
        now = round((self._loop.time() - self._t0) * 1000.0)
        return now if now > committed else committed

    # --- scheduling -----------------------------------------------------------------------

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _schedule(self) -> None:
        """Compute ahead to the next observable moment and set the wake-up timer there."""
        try:
            wake = self._plan_next()
        except Exception as err:  # never let a bug stop the device's clock quietly
            self._internal_error(err)
            return
        if wake is not None:
            self._set_timer(wake)

    def _set_timer(self, wake: int) -> None:
        loop = self._loop
        assert loop is not None  # _plan_next returned a time: the device has a loop
        self._timer = device_timer(loop, self._t0 + wake / 1000.0, self._on_timer)

    def _plan_next(self) -> int | None:
        """Cancel the timer, compute ahead to the next observable moment (kept as the
        speculative state) and return its absolute device ms; None when closed."""
        self._cancel_timer()
        self._spec = None
        if self._closed or self._loop is None:
            return None
        T = self.tick_ms
        ph = self._ph
        tel = self._tel_due if self._tel_due is not None else INF
        target = min(tel // T, ph.tick + HORIZON_TICKS)
        if target > ph.tick:
            nph, ncfg, ndirty, event = self._simulate(ph, self._cfg, self._dirty, target)
            self._spec = (nph, ncfg, ndirty)
            if event:
                return (nph.tick + 1) * T
            if target == tel // T:
                return tel  # type: ignore[no-any-return]
            return target * T
        return tel  # type: ignore[no-any-return]

    def _on_timer(self) -> None:
        """The wake-up: bring the device to now, then on to each next moment in this same
        callback while nothing else on the loop would run before it (the virtual clock's
        ``run_ahead``: the same moments at the same instants, without a trip through the
        loop for each), and set the timer for the first moment that must wait."""
        self._timer = None
        ahead = getattr(self._loop, "run_ahead", None)
        while not self._closed:
            self._stats["wakeups"] += 1
            try:
                self._wake(self._abs_now())
            except Exception as err:  # counted; the clock goes on
                self._internal_error(err)
            try:
                wake = self._plan_next()
            except Exception as err:  # never let a bug stop the device's clock quietly
                self._internal_error(err)
                return
            if wake is None:
                return
            if ahead is None or self._closed or not ahead(self._t0 + wake / 1000.0):
                self._set_timer(wake)
                return

    def _wake(self, now: int) -> None:
        """Take up the state computed ahead if it is due, and process everything up to
        absolute ms ``now``."""
        spec = self._spec
        self._spec = None
        if spec is not None and spec[0].tick * self.tick_ms <= now:
            self._ph, self._cfg, self._dirty = spec
            self._checkpoint_persist()
        self._advance_to(now)

    def _advance_to(self, now: int) -> None:
        """Process every tick, event and telemetry sample up to absolute ms ``now``."""
        T = self.tick_ms
        while True:
            tel = self._tel_due if self._tel_due is not None else INF
            target_ms = now if now < tel else tel
            target = target_ms // T
            if self._ph.tick < target:
                ph, cfg, dirty, event = self._simulate(self._ph, self._cfg, self._dirty, target)
                self._ph, self._cfg, self._dirty = ph, cfg, dirty
                self._checkpoint_persist()
                if event:
                    self._event_tick()
                    if self._end_sample:
                        self._end_sample = False
                        at = self._ph.tick * T
                        self._send_unsolicited(wire.MsgType.TELEMETRY, self._status_payload(at), at)
                        self._stats["telemetry"] += 1
                    continue
            if tel <= now:
                self._send_unsolicited(wire.MsgType.TELEMETRY, self._status_payload(tel), tel)
                self._stats["telemetry"] += 1
                if self._tel_due == tel:
                    self._tel_due = tel + self._tel_period
                continue
            return

    # --- output ---------------------------------------------------------------------------

    def _out(self, frame: bytes, at_abs: int) -> None:
        if self._closed:
            return
        if self._link_windows:
            drop, rate = link_state(self._link_windows, at_abs)
            if drop:
                self._stats["dropped_out"] += len(frame)
                return
            if rate > 0.0:
                frame = self._corrupt_out.apply(frame, rate)
        self._stats["frames_out"] += 1
        self._stats["bytes_out"] += len(frame)
        send = self._send
        if send is None:
            return
        try:
            send(frame)
        except Exception as err:  # the host side's problem; the device carries on
            self._stats["send_errors"] += 1
            self.last_error = err

    def _send_unsolicited(self, msg_type: int, payload: bytes, at_abs: int) -> None:
        self._seq = (self._seq + 1) & 0xFFFF
        frame = encode_frame(msg_type, self._seq, payload)
        if self._outbox is not None:
            self._outbox.append(frame)  # after the reply to the request being handled
        else:
            self._out(frame, at_abs)

    def _status_payload(self, at_abs: int) -> bytes:
        """TELEMETRY/STATUS payload for the committed state (spec §8 layout).

        Runs for every sample, so it sticks to plain ints and locals.
        """
        ph = self._ph
        cfg = self._cfg
        session = self._session is not None
        flags = self._fault_flags
        if self._head:
            flags |= _F_HEAD
        if self._lease_expired:
            flags |= _F_LEASE_EXPIRED
        elif session:
            flags |= _F_LEASE_ACTIVE
        if self._paused_host:
            flags |= _F_PAUSED_HOST
        if self._paused_head:
            flags |= _F_PAUSED_HEAD
        if self._derate < 1000:
            flags |= _F_DERATED
        if cfg.emitting:
            flags |= _F_EMITTING
        if self._authed:
            flags |= _F_AUTHENTICATED
        if cfg.ramping:
            flags |= _F_RAMPING
        vals: list[int] = [
            (at_abs - self._boot_tick * self.tick_ms) & 0xFFFFFFFF,
            self.boot_count & 0xFFFF,
            self._state,
            self._step if session else 0xFF,
            self._tel_plan,
            flags,
            self._derate,
            cfg.sensed_at(ph.tick),
            ph.el & 0xFFFFFFFF,
            ph.sel & 0xFFFFFFFF,
            self.n_ch,
            self.n_z,
        ]
        sp = cfg.sp
        mode = cfg.mode
        fl = ph.fl
        half = UNITS_PER_UJ // 2
        for i in range(self.n_ch):
            m = mode[i]
            if m == NORM:
                meas = sp[i]
            elif m >= SAT:
                v = round((cfg.o0[i] + cfg.o1[i] * ph.tb[self._ch_zone[i]]) * 100.0)
                meas = 0 if v < 0 else 0xFFFF if v > 0xFFFF else v
            else:
                meas = 0
            f = (fl[i] + half) // UNITS_PER_UJ
            vals += (sp[i], meas, f if f <= 0xFFFFFFFF else 0xFFFFFFFF)
        tick = ph.tick
        ts = ph.ts
        if self._therm_override:
            readings = [self._reading_q(z, tick, ts[z]) for z in range(self.n_z)]
        else:
            readings = self._readings(tick, ts)
        for r in readings:
            vals.append(-32767 if r < -32767 else 32767 if r > 32767 else r)
        vals.append(self._ambient_q)
        return self._tel_struct.pack(*vals)

    # --- input ----------------------------------------------------------------------------

    def _feed_one(self, data: bytes) -> bool:
        """Decode ``data`` and answer every complete request.

        Returns True when the device must plan ahead again: it was brought up to the
        request's tick, which drops the state it had computed ahead. Requests that change
        nothing that computation depends on (:meth:`_keeps_plan`) are answered without it.
        """
        now = self._abs_now()
        self._stats["bytes_in"] += len(data)
        if self._link_windows:
            drop, rate = link_state(self._link_windows, now)
            if drop:
                self._stats["dropped_in"] += len(data)
                return False
            if rate > 0.0:
                data = self._corrupt_in.apply(data, rate)
        frames = self._decoder.feed(data)
        if not frames:
            return False
        replan = not self._keeps_plan(frames, now)
        if replan:
            # bring the device up to the request's tick before answering (a fresh STATUS)
            self._spec = None
            self._advance_to(now)
        for frame in frames:
            self._stats["frames_in"] += 1
            self._outbox = []
            try:
                reply = self._handle(frame, now)
            finally:
                pending, self._outbox = self._outbox, None
            if reply is not None:
                self._out(reply, now)
            for ev in pending:
                self._out(ev, now)
        return replan

    def _keeps_plan(self, frames: list[wire.Frame], now: int) -> bool:
        """True if ``frames`` are heartbeats that only renew a live lease, and the state
        computed ahead covers ``now`` without an event in between.

        Renewing the lease moves its deadline later, so what was computed ahead (which
        stops at the old deadline at the latest) stays right; the heartbeat is answered
        from ``now`` alone and the computed state is used when the timer fires.
        """
        spec = self._spec
        if spec is None or self._timer is None or now >= spec[0].tick * self.tick_ms:
            return False
        if self._session is None or self._splan is None or self._lease_expired:
            return False
        return all(f.type == _HEARTBEAT and f.version == wire.PROTOCOL_MAJOR for f in frames)

    def _handle(self, frame: wire.Frame, now: int) -> bytes | None:
        """The encoded reply to one frame (None: not a request, nothing to answer)."""
        mt = frame.type
        if mt >= 0x40:
            self._stats["unexpected"] += 1  # replies and device messages are not for us
            return None
        self._stats["requests"] += 1
        if mt == wire.MsgType.HELLO:
            if frame.flags & wire.FLAG_AUTH:
                # HELLO is never signed: a trailer on it is an attack or a bug; answer with
                # a refusal and keep the conversation (nonce, counter) as it is
                return self._nack(frame, NC.AUTH_FAILED, "HELLO is never signed")
            self._dedup.clear()  # a new conversation
            if len(frame.payload) < 2:
                return self._nack(frame, NC.BAD_LENGTH, "HELLO needs major and minor")
            self._nonce = self._new_nonce()
            self._last_counter = 0
            self._authed = False
            return encode_frame(wire.MsgType.HELLO_INFO, frame.seq, self.hello_info().payload())
        if frame.version != wire.PROTOCOL_MAJOR:
            return self._nack(
                frame,
                NC.VERSION,
                f"device speaks protocol {wire.PROTOCOL_MAJOR}",
                limit=wire.PROTOCOL_MAJOR,
                observed=frame.version,
            )
        key = (mt, frame.seq, wire.crc16(frame.payload))
        old = self._dedup.get(key)
        if old is not None:
            self._stats["dedup_hits"] += 1  # a retry: same answer, not executed again
            return old
        reply = self._dispatch(frame, now)
        self._dedup[key] = reply
        while len(self._dedup) > DEDUP_SIZE:
            self._dedup.popitem(last=False)
        return reply

    def _nack(
        self,
        frame: wire.Frame,
        code: wire.NackCode,
        detail: str,
        *,
        channel: int = wire.NO_INDEX,
        limit: int = 0,
        observed: int = 0,
    ) -> bytes:
        return self._reply_nack(
            frame, wire.Nack(code, channel, _i32(limit), _i32(observed), detail)
        )

    def _reply_nack(self, frame: wire.Frame, nack: wire.Nack) -> bytes:
        self._stats["nacks"] += 1
        return encode_frame(wire.MsgType.NACK, frame.seq, nack.payload())

    def _ack(self, frame: wire.Frame) -> bytes:
        return encode_frame(wire.MsgType.ACK, frame.seq)

    def _dispatch(self, frame: wire.Frame, now: int) -> bytes:
        mt = frame.type
        M = wire.MsgType
        if mt not in _HANDLERS:
            return self._nack(frame, NC.UNKNOWN_TYPE, f"unknown request 0x{mt:02x}", observed=mt)
        payload = frame.payload
        authed = False
        if mt == M.ABORT:
            # wire 1.1: stopping is never refused, whatever the payload or trailer says; the
            # reason is the first byte when there is one (a trailer alone carries none)
            if frame.flags & wire.FLAG_AUTH and len(payload) >= wire.AUTH_TRAILER.size:
                payload = payload[: -wire.AUTH_TRAILER.size]
            code = payload[0] if payload else 0
            reason = code if code in _ABORT_REASONS else int(wire.AbortReason.UNSPECIFIED)
            return self._on_abort(frame, wire.Abort(wire.AbortReason(reason)), False, now)
        if frame.flags & wire.FLAG_AUTH:
            try:
                checked = wire.verify_auth(self._key, self._nonce, frame)
            except wire.WireError:
                checked = None
            if checked is None:
                return self._nack(frame, NC.AUTH_FAILED, "wrong authentication tag")
            payload, counter = checked
            if counter <= self._last_counter:
                return self._nack(
                    frame,
                    NC.AUTH_FAILED,
                    "counter not above the last accepted",
                    limit=self._last_counter,
                    observed=counter,
                )
            self._last_counter = counter
            self._authed = True
            authed = True
        if mt == M.UPLOAD_PLAN:
            return self._on_upload(frame, payload, authed, now)
        try:
            msg = wire.MESSAGE_TYPES[mt].parse(payload)
        except wire.WireError as err:
            self._stats["malformed"] += 1
            return self._nack(frame, NC.BAD_LENGTH, str(err)[:64])
        if self._auth_required and not authed and mt in wire.ENERGY_TYPES:
            return self._nack(frame, NC.AUTH_REQUIRED, f"{M(mt).name} needs authentication")
        handler = getattr(self, _HANDLERS[mt])
        return handler(frame, msg, authed, now)  # type: ignore[no-any-return]

    # ---------------------------------------------------------------- request handlers

    # --- request handlers -----------------------------------------------------------------

    def _on_upload(self, frame: wire.Frame, payload: bytes, authed: bool, now: int) -> bytes:
        if self._auth_required and not authed:
            try:
                plans.parse(payload)
            except plans.Refused as err:
                self._stats["malformed"] += 1
                return self._reply_nack(frame, err.nack)
            return self._nack(frame, NC.AUTH_REQUIRED, "UPLOAD_PLAN needs authentication")
        try:
            plan = plans.check(
                payload, state=self._state, limits=self.limits, channels=self.profile.channels
            )
        except plans.Refused as err:
            if err.nack.code == NC.BAD_LENGTH:
                self._stats["malformed"] += 1
            return self._reply_nack(frame, err.nack)
        self._plan = plan
        self._tel_plan = plan.plan_id
        ph = self._ph.copy()
        ph.reset_session()
        self._ph = ph
        self._set_state(S.READY, 0, now)
        self._dirty = True
        return self._ack(frame)

    def _on_start(self, frame: wire.Frame, msg: wire.Start, authed: bool, now: int) -> bytes:
        pid = msg.plan_id
        R = wire.StartResult
        sess = self._session
        if sess is not None and sess.plan_id == pid:
            return self._started(frame, pid, R.ALREADY_RUNNING, sess.start_ms)
        for r in self._records:
            if r.plan_id == pid and r.outcome != wire.Outcome.RUNNING:
                return self._started(frame, pid, R.ALREADY_FINISHED, r.start_ms)
        if self._state == S.FAULT:
            return self._nack(frame, NC.FAULT_LATCHED, "a fault is latched; clear it first")
        if sess is not None:
            return self._nack(
                frame,
                NC.PLAN_MISMATCH,
                "another plan is running",
                limit=sess.plan_id,
                observed=pid,
            )
        if self._plan is None:
            return self._nack(frame, NC.NO_PLAN, "no plan is loaded", observed=pid)
        if self._plan.plan_id != pid:
            return self._nack(
                frame,
                NC.PLAN_MISMATCH,
                f"loaded plan is {self._plan.plan_id}",
                limit=self._plan.plan_id,
                observed=pid,
            )
        if not self._head:
            return self._nack(frame, NC.HEAD_NOT_PRESENT, "the cap is not on a head")
        limit = self._cutoff_q - TOO_HOT_MARGIN_Q
        for z in range(self.n_z):
            reading = self._reading_q(z, self._ph.tick, self._ph.ts[z])
            if reading >= limit:
                return self._nack(
                    frame,
                    NC.TOO_HOT,
                    f"zone {self.profile.zones[z].name} reads {reading / 100:.2f} C",
                    limit=limit,
                    observed=reading,
                )
        self._start_session(self._plan, now)
        return self._started(frame, pid, R.STARTED, self._dev_ms(now))

    def _started(self, frame: wire.Frame, pid: int, result: int, start_ms: int) -> bytes:
        payload = wire.Started(pid, wire.StartResult(result), start_ms).payload()
        return encode_frame(wire.MsgType.STARTED, frame.seq, payload)

    def _on_pause(self, frame: wire.Frame, msg: wire.Pause, authed: bool, now: int) -> bytes:
        if self._session is None:
            return self._nack(frame, NC.BAD_STATE, "no session to pause", observed=self._state)
        self._paused_host = True
        self._set_state(S.PAUSED, 0, now)
        self._dirty = True
        return self._ack(frame)

    def _on_resume(self, frame: wire.Frame, msg: wire.Resume, authed: bool, now: int) -> bytes:
        if self._session is None or not self._paused_host:
            return self._nack(frame, NC.BAD_STATE, "not paused by the host", observed=self._state)
        self._paused_host = False
        if not self._paused_head:
            self._set_state(S.RUNNING, 0, now)
        self._dirty = True
        return self._ack(frame)

    def _on_abort(self, frame: wire.Frame, msg: wire.Abort, authed: bool, now: int) -> bytes:
        reason = int(msg.reason)
        if self._session is not None:
            self._end_session(wire.Outcome.ABORTED, reason, S.IDLE, now)
        elif self._plan is not None:
            self._plan = None
            if self._state == S.READY:
                self._set_state(S.IDLE, reason, now)
        # emitters off in the current tick, so the next telemetry shows them off
        self._cfg = self._build_cfg(self._ph, self._cfg.sensed_at(self._ph.tick))
        self._dirty = True
        self._end_sample = False  # the STATUS below is that sample
        if self._outbox is not None:
            # wire 1.1: a STATUS with the ABORT's seq right after the ACK (and the events),
            # so the host sees the emitters off in one round trip
            self._outbox.append(
                encode_frame(wire.MsgType.STATUS, frame.seq, self._status_payload(now))
            )
        return self._ack(frame)

    def _on_heartbeat(
        self, frame: wire.Frame, msg: wire.Heartbeat, authed: bool, now: int
    ) -> bytes:
        if self._session is not None and self._splan is not None:
            self._lease_renew = now
            self._lease_deadline = now + self._splan.lease_ms
            self._dirty = True
        if self._lease_expired:
            self._lease_expired = False
            self._event(EK.LEASE_RESTORED, now)
            self._dirty = True
        return self._ack(frame)

    def _on_set_telemetry(
        self, frame: wire.Frame, msg: wire.SetTelemetry, authed: bool, now: int
    ) -> bytes:
        period = msg.period_ms
        if period == 0:
            self._tel_period = 0
            self._tel_due = None
            return self._ack(frame)
        if period < self._min_tel_ms:
            return self._nack(
                frame,
                NC.BAD_VALUE,
                f"period below {self._min_tel_ms} ms",
                limit=self._min_tel_ms,
                observed=period,
            )
        self._tel_period = period
        self._tel_due = now + period
        return self._ack(frame)

    def _on_derate(self, frame: wire.Frame, msg: wire.Derate, authed: bool, now: int) -> bytes:
        p = msg.permille
        if not 1 <= p <= 1000:
            return self._nack(
                frame, NC.BAD_VALUE, "derate is 1 to 1000 permille", limit=1000, observed=p
            )
        if self._session is None:
            return self._nack(frame, NC.BAD_STATE, "no session to derate", observed=self._state)
        old = self._derate
        if p > old and self._auth_required and not authed:
            return self._nack(
                frame,
                NC.AUTH_REQUIRED,
                "raising the output needs authentication",
                limit=old,
                observed=p,
            )
        self._derate = p
        self._event(EK.DERATE, now, value=p, limit=old)
        self._dirty = True
        return self._ack(frame)

    def _on_get_status(
        self, frame: wire.Frame, msg: wire.GetStatus, authed: bool, now: int
    ) -> bytes:
        return encode_frame(wire.MsgType.STATUS, frame.seq, self._status_payload(now))

    def _on_get_records(
        self, frame: wire.Frame, msg: wire.GetRecords, authed: bool, now: int
    ) -> bytes:
        recs = tuple(self._record_now(r).to_wire() for r in self._records[: msg.max_count])
        return encode_frame(wire.MsgType.RECORDS, frame.seq, wire.Records(recs).payload())

    def _on_clear_fault(
        self, frame: wire.Frame, msg: wire.ClearFault, authed: bool, now: int
    ) -> bytes:
        if self._state != S.FAULT:
            return self._ack(frame)  # nothing latched: clearing is a no-op
        for kind, index in self._latched:
            cause = self._fault_cause(IL(kind), index)
            if cause is not None:
                return self._nack(
                    frame,
                    NC.FAULT_LATCHED,
                    f"{IL(kind).name.lower()} persists",
                    channel=wire.NO_INDEX,
                    limit=cause[0],
                    observed=cause[1],
                )
        for (kind, _), b in self._latched.items():
            self._event(EK.FAULT, now, a=kind, b=b, value=0)
        self._latched = {}
        self._fault_flags = 0
        self._set_state(S.IDLE, 0, now)
        self._dirty = True
        return self._ack(frame)

    def _on_provision_key(
        self, frame: wire.Frame, msg: wire.ProvisionKey, authed: bool, now: int
    ) -> bytes:
        if self.link_kind != "wired":
            return self._nack(frame, NC.WIRED_ONLY, "keys are provisioned over USB only")
        if self._session is not None:
            return self._nack(frame, NC.BAD_STATE, "not during a session", observed=self._state)
        if self._provisioned and not self.button_held:
            return self._nack(frame, NC.BAD_STATE, "hold the button to provision a new key")
        if msg.key == bytes(wire.KEY_SIZE) or msg.key == wire.DEVELOPMENT_KEY:
            return self._nack(frame, NC.BAD_VALUE, "not a usable key")
        self._key = msg.key
        self._provisioned = True
        self.capabilities &= ~wire.Capability.DEV_KEY  # the published key is refused now
        self._os_nonces = True
        # a new conversation: the host says HELLO again, under the new key
        self._nonce = self._new_nonce()
        self._last_counter = 0
        self._authed = False
        return self._ack(frame)

    def _on_record_access(
        self, frame: wire.Frame, msg: wire.RecordAccess, authed: bool, now: int
    ) -> bytes:
        op = msg.op
        if op == wire.RecordOp.ABORT:
            if self._report_timer is not None:
                self._end_report(wire.RecordsEndStatus.ABORTED, now)
            return self._ack(frame)
        chosen = sorted(
            (r for r in self._records if r.seq >= msg.from_seq and r.seq > 0),
            key=lambda r: r.seq,
        )
        if op == wire.RecordOp.COUNT:
            return encode_frame(
                wire.MsgType.RECORD_COUNT, frame.seq, wire.RecordCount(len(chosen)).payload()
            )
        if self._report_timer is not None:
            return self._nack(frame, NC.BUSY, "a report is under way; abort it first")
        self._report = chosen
        self._report_sent = 0
        self._report_last = 0
        assert self._loop is not None
        # one record per control tick, after the ACK: a link can drop mid-way
        self._report_timer = device_timer(
            self._loop, self._loop.time() + self.tick_ms / 1000.0, self._report_next
        )
        return self._ack(frame)

    def _report_next(self) -> None:
        self._report_timer = None
        if self._closed:
            return
        now = self._abs_now()
        if not self._report:
            self._end_report(wire.RecordsEndStatus.DONE, now)
            return
        r = self._report.pop(0)
        rec = self._record_now(r).to_wire()
        self._send_unsolicited(wire.MsgType.RECORD, wire.Record(r.seq, rec).payload(), now)
        self._report_sent += 1
        self._report_last = r.seq
        assert self._loop is not None
        self._report_timer = device_timer(
            self._loop, self._loop.time() + self.tick_ms / 1000.0, self._report_next
        )

    def _end_report(self, status: wire.RecordsEndStatus, now: int) -> None:
        if self._report_timer is not None:
            self._report_timer.cancel()
            self._report_timer = None
        self._report = []
        end = wire.RecordsEnd(status, self._report_sent, self._report_last)
        self._send_unsolicited(wire.MsgType.RECORDS_END, end.payload(), now)

    def link_closed(self) -> None:
        """The host's connection ended (a BLE disconnect): a report under way stops, and
        the bytes of a frame cut by the disconnect are dropped (wire spec, BLE transport),
        as the firmware drops them (differential seed 4877: a HELLO whose delimiter was
        corrupted swallowed the next connection's first request)."""
        self._decoder.reset()
        if self._report_timer is not None:
            self._report_timer.cancel()
            self._report_timer = None
            self._report = []

    # --- misc -----------------------------------------------------------------------------

    def _new_nonce(self) -> bytes:
        if self._os_nonces:
            return os.urandom(wire.NONCE_SIZE)
        return self._nonce_rng.randbytes(wire.NONCE_SIZE)

    def _end_session(self, outcome: int, reason: int, new_state: wire.State, t_abs: int) -> None:
        super()._end_session(outcome, reason, new_state, t_abs)
        self._end_sample = True  # wire 1.1: a sample at once after SESSION_END

    def _internal_error(self, err: BaseException) -> None:
        self._stats["internal_errors"] += 1
        self.last_error = err

    def _on_reboot(self, tick: int) -> None:
        self._tel_period = TEL_DEFAULT_MS
        self._tel_due = tick * self.tick_ms + TEL_DEFAULT_MS
        self._nonce = self._new_nonce()
        self._last_counter = 0
        self._authed = False
        self._dedup.clear()


_ABORT_REASONS = frozenset(int(r) for r in wire.AbortReason)

_HANDLERS: dict[int, str] = {
    wire.MsgType.UPLOAD_PLAN: "_on_upload",
    wire.MsgType.START: "_on_start",
    wire.MsgType.PAUSE: "_on_pause",
    wire.MsgType.RESUME: "_on_resume",
    wire.MsgType.ABORT: "_on_abort",
    wire.MsgType.HEARTBEAT: "_on_heartbeat",
    wire.MsgType.SET_TELEMETRY: "_on_set_telemetry",
    wire.MsgType.DERATE: "_on_derate",
    wire.MsgType.GET_STATUS: "_on_get_status",
    wire.MsgType.GET_RECORDS: "_on_get_records",
    wire.MsgType.CLEAR_FAULT: "_on_clear_fault",
    wire.MsgType.PROVISION_KEY: "_on_provision_key",
    wire.MsgType.RECORD_ACCESS: "_on_record_access",
}


__all__ = ["SimDevice", "encode_frame"]

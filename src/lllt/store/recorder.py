"""The per-session writer: telemetry at 1 Hz and around events, batched commits."""

from __future__ import annotations

import json
import math
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from lllt import wire
from lllt.errors import StoreError

if TYPE_CHECKING:
    from lllt.store.db import Store
from lllt.store.rows import ChannelRef, SessionRow, _enum_name, _wl_json, wavelength_fluence
from lllt.store.schema import FINAL_STATUSES, Kept, Status


class SessionRecorder:
    """Writes one session: lifecycle, telemetry (downsampled), events and phases.

    :meth:`sample` is called for every telemetry frame and costs a few µs: it keeps a
    reference to the frame when the 1 Hz rule or an event window wants it, and otherwise
    only remembers the last 2 s of frames in case an event arrives. Rows are serialised and
    committed in batches (see the module docstring).
    """

    #: keep one sample per this many seconds of host time
    period_s = 1.0
    #: and every sample within this many seconds of an event
    window_s = 2.0
    #: commit buffered rows at most this often (wall seconds) unless an event forces it
    commit_interval_s = 1.0

    def __init__(
        self,
        store: Store,
        session_id: int,
        channels: Sequence[ChannelRef],
        plan_id: int | None,
        *,
        wall_clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.session_id = session_id
        self.plan_id = plan_id
        self._channel_ids = tuple(c.id for c in channels)
        self._channel_wl = {c.id: c.wavelength_nm for c in channels}
        self._wall = wall_clock
        self._last_commit = wall_clock()
        self._t0: float | None = None
        self._bucket = -1
        self._keep_until = -math.inf
        self._recent: deque[tuple[float, wire.Telemetry]] = deque()
        self._kept: list[tuple[float, wire.Telemetry, str]] = []
        self._events: list[tuple[float, int | None, str, str, str]] = []
        self._phase_updates: list[tuple[Any, ...]] = []
        self._last: tuple[float, wire.Telemetry] | None = None
        self._last_kept: wire.Telemetry | None = None
        self._heartbeat: float | None = None
        self._delivered: tuple[float, ...] | None = None  # per channel, HELLO order
        self._flushed_delivered: tuple[float, ...] | None = None
        self._min_derate = 1000
        # phase tracking from the telemetry's step index
        self._step = wire.NO_INDEX
        self._phase_start_t = 0.0
        self._phase_start_fluence: tuple[float, ...] = ()
        self._phase_min_derate = 1000
        self.write_error: StoreError | None = None
        self.finished = False

    def _resume(
        self,
        *,
        delivered: tuple[float, ...],
        min_derate: int,
        phase: tuple[int, float, tuple[float, ...]] | None,
        phase_min_derate: int,
    ) -> None:
        """Carry on from what the log holds (see :meth:`Store.recorder`)."""
        self._delivered = self._flushed_delivered = delivered
        self._min_derate = min_derate
        if phase is not None:
            self._step, self._phase_start_t, self._phase_start_fluence = phase
            self._phase_min_derate = phase_min_derate

    # --- lifecycle -------------------------------------------------------------------
    def started(self, t: float, *, plan_id: int | None = None) -> None:
        """The device confirmed START: status ``running`` (durable)."""
        if plan_id is not None:
            self.plan_id = plan_id
        self._flush()
        with self.store._write(durable=True) as c:
            c.execute(
                "UPDATE sessions SET status = ?, started_at = ?, heartbeat_at = ?, "
                "plan_id = coalesce(?, plan_id) WHERE id = ?",
                (Status.RUNNING.value, t, t, self.plan_id, self.session_id),
            )

    def set_plan_id(self, plan_id: int) -> None:
        """Record the plan id the session runs under."""
        self.plan_id = plan_id
        with self.store._write() as c:
            c.execute("UPDATE sessions SET plan_id = ? WHERE id = ?", (plan_id, self.session_id))

    def finish(
        self,
        t: float,
        *,
        status: Status | str,
        outcome: str,
        exit_code: int,
        reason: str = "",
        note: str = "",
        delivered_by_channel: Mapping[int, float] | Sequence[float] | None = None,
        actual_duration_s: float | None = None,
    ) -> SessionRow:
        """End the session: flush everything, write the final row (durable).

        ``delivered_by_channel`` is the device's final count ({channel id: J/cm²} or HELLO
        order); without it the last telemetry sample's counters are used. A session that
        finishes ``interrupted`` (the link was lost and not recovered) keeps no end time:
        it awaits :meth:`Store.reconcile` with the device's record. Raises
        :class:`StoreError` if the log cannot be written (the caller still has its result).
        """
        try:
            status = Status(status)
        except ValueError:
            raise ValueError(f"unknown session status {status!r}") from None
        if status not in FINAL_STATUSES:
            raise ValueError(f"a session cannot finish as {status.value!r}")
        self._progress()  # the frames since the last batch count too
        if self._last is not None and self._last[1] is not self._last_kept:
            self._kept.append((self._last[0], self._last[1], Kept.LAST))
        own = self._last is not None and (
            self.plan_id is None or self._last[1].plan_id == self.plan_id
        )
        if self._step != wire.NO_INDEX and self._last is not None and own:
            self._close_phase(t, self._last[1].fluence)
            self._step = wire.NO_INDEX
        row = self.store.session(self.session_id)
        if delivered_by_channel is not None:
            by_ch = self.store._by_channel(row, delivered_by_channel)
        elif self._delivered is not None:
            by_ch = dict(zip(self._channel_ids, self._delivered, strict=False))
        else:
            by_ch = row.delivered_by_channel
        by_wl = wavelength_fluence(by_ch, self._channel_wl)
        if actual_duration_s is None and own and self._last and self._last[1].elapsed_ms:
            actual_duration_s = self._last[1].elapsed_ms / 1000.0
        if actual_duration_s is None and row.started_at is not None:
            actual_duration_s = t - row.started_at
        self._flush(raise_errors=True)
        with self.store._write(durable=True) as c:
            c.execute(
                """UPDATE sessions SET status = ?, outcome = ?, reason = ?,
                    note = CASE WHEN ? = '' THEN note ELSE ? END, exit_code = ?,
                    ended_at = ?, heartbeat_at = ?, delivered_channel_json = ?,
                    delivered_fluence_json = ?, actual_duration_s = ?,
                    derated = ?, min_derate_permille = ?,
                    interrupted_at = CASE WHEN ? = 'interrupted' THEN ? ELSE interrupted_at END
                WHERE id = ?""",
                (
                    status.value,
                    outcome,
                    reason,
                    note,
                    note,
                    exit_code,
                    # a session the host lost has no known end: the device may still run it
                    None if status == Status.INTERRUPTED else t,
                    t,
                    _wl_json(by_ch),
                    _wl_json(by_wl),
                    actual_duration_s,
                    int(self._min_derate < 1000),
                    self._min_derate,
                    status.value,
                    t,
                    self.session_id,
                ),
            )
        self.finished = True
        return self.store.session(self.session_id)

    # --- per frame -------------------------------------------------------------------
    def sample(self, t: float, tel: wire.Telemetry) -> None:
        """Record one telemetry frame received at host time ``t``. Never raises."""
        self._last = (t, tel)
        if tel.step != self._step:
            self._step_changed(t, tel)
        d = tel.derate_permille
        if d < self._min_derate:
            self._min_derate = d
        if d < self._phase_min_derate:
            self._phase_min_derate = d
        if self._t0 is None:
            self._t0 = t
        # whole seconds since the first sample, rounded to the ms so jitter never skips one
        bucket = int((t - self._t0) * 1000.0 + 0.5) // 1000
        if bucket != self._bucket:
            self._bucket = bucket
            self._kept.append((t, tel, Kept.PERIODIC))
            self._last_kept = tel
        elif t <= self._keep_until:
            self._kept.append((t, tel, Kept.EVENT))
            self._last_kept = tel
        else:
            recent = self._recent
            recent.append((t, tel))
            horizon = t - self.window_s
            while recent[0][0] < horizon:
                recent.popleft()
        if self._wall() - self._last_commit >= self.commit_interval_s:
            self._flush()

    def event(
        self,
        t: float,
        kind: str,
        data: Mapping[str, Any] | None = None,
        *,
        device_ms: int | None = None,
        source: str = "host",
    ) -> None:
        """Record an event (kept in full) and the telemetry around it; commits. Never raises."""
        try:
            text = json.dumps(dict(data or {}), default=str)
        except (TypeError, ValueError) as e:
            text = json.dumps({"unserialisable": repr(data), "error": str(e)})
        self._events.append((t, device_ms, source, kind, text))
        # the samples of the last window_s seconds join the log, and those to come
        horizon = t - self.window_s
        recent = self._recent
        while recent:
            ts, tel = recent.popleft()
            if ts >= horizon:
                self._kept.append((ts, tel, Kept.EVENT))
                self._last_kept = tel
        self._keep_until = max(self._keep_until, t + self.window_s)
        self._flush()

    def device_event(self, t: float, ev: wire.Event) -> None:
        """Record an EVENT message from the device, with its codes decoded."""
        kind = ev.kind.name if isinstance(ev.kind, wire.EventKind) else f"UNKNOWN_{ev.kind}"
        data: dict[str, Any] = {"a": ev.a, "b": ev.b, "value": ev.value, "limit": ev.limit}
        data.update(_decode_event(ev))
        self.event(t, kind, data, device_ms=ev.time_ms, source="device")

    def flush(self) -> None:
        """Commit what is buffered now; raises :class:`StoreError` if it cannot."""
        self._flush(raise_errors=True)

    # --- internals -------------------------------------------------------------------
    def _step_changed(self, t: float, tel: wire.Telemetry) -> None:
        if self.plan_id is not None and tel.plan_id != self.plan_id:
            return  # telemetry from before the plan was loaded, or another plan
        if self._step != wire.NO_INDEX:
            self._close_phase(t, tel.fluence)
        self._step = tel.step
        if tel.step != wire.NO_INDEX:
            self._phase_start_t = t
            self._phase_start_fluence = tel.fluence
            self._phase_min_derate = tel.derate_permille
            self._phase_updates.append(
                (
                    "INSERT INTO phases (session_id, idx, name, kind, started_at) "
                    "VALUES (?, ?, ?, 'duration', ?) ON CONFLICT (session_id, idx) "
                    "DO UPDATE SET started_at = coalesce(phases.started_at, excluded.started_at)",
                    (self.session_id, tel.step, f"step {tel.step}", t),
                )
            )
        # a phase boundary is a natural moment to commit
        self._keep_until = max(self._keep_until, t)
        self._flush()

    def _close_phase(self, t: float, fluence: tuple[float, ...]) -> None:
        start = self._phase_start_fluence
        by_ch = {
            # rounded to the telemetry's resolution (1 µJ/cm²): no float residue in the log
            ch: round(max(0.0, f - (start[i] if i < len(start) else 0.0)), 6)
            for i, (ch, f) in enumerate(zip(self._channel_ids, fluence, strict=False))
        }
        by_wl = wavelength_fluence(by_ch, self._channel_wl)
        self._phase_updates.append(
            (
                "UPDATE phases SET ended_at = ?, delivered_fluence_json = ?, derated = ?, "
                "min_derate_permille = ? WHERE session_id = ? AND idx = ?",
                (
                    t,
                    _wl_json(by_wl),
                    int(self._phase_min_derate < 1000),
                    self._phase_min_derate,
                    self.session_id,
                    self._step,
                ),
            )
        )

    def _progress(self) -> None:
        """Delivered so far: the most each channel's counter has shown for this plan."""
        last = self._last
        if last is None:
            return
        tel = last[1]
        if self.plan_id is not None and tel.plan_id != self.plan_id:
            return
        if self._delivered is None:
            self._delivered = tel.fluence
        else:
            # a device reboot resets its counters: never let the record go down
            self._delivered = tuple(
                max(a, b) for a, b in zip(self._delivered, tel.fluence, strict=False)
            )
        self._heartbeat = last[0]

    def _flush(self, *, raise_errors: bool = False, durable: bool = False) -> None:
        self._last_commit = self._wall()
        self._progress()
        kept, events, phases = self._kept, self._events, self._phase_updates
        delivered = self._delivered
        if not (kept or events or phases) and delivered == self._flushed_delivered:
            return
        sid = self.session_id
        dumps = json.dumps
        rows = [
            (
                sid, ts, tel.time_ms, tel.boot_count, int(tel.state), tel.step, int(tel.flags),
                tel.derate_permille, tel.supply_mv, tel.elapsed_ms, dumps(tel.setpoint),
                dumps(tel.irradiance), dumps(tel.fluence), dumps(tel.temperature), tel.ambient,
                why.value if isinstance(why, Kept) else why,
            )
            for ts, tel, why in kept
        ]  # fmt: skip
        try:
            with self.store._write(durable=durable) as c:
                if rows:
                    c.executemany(
                        "INSERT INTO telemetry VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                        "?, ?)",
                        rows,
                    )
                if events:
                    c.executemany(
                        "INSERT INTO events (session_id, t, device_ms, source, kind, data_json) "
                        "VALUES (?, ?, ?, ?, ?, ?)",
                        [(sid, *e) for e in events],
                    )
                for sql, params in phases:
                    c.execute(sql, params)
                if delivered is not None:  # progress, and a heartbeat for mark_interrupted
                    by_ch = dict(zip(self._channel_ids, delivered, strict=False))
                    c.execute(
                        "UPDATE sessions SET delivered_channel_json = ?, "
                        "delivered_fluence_json = ?, heartbeat_at = ?, derated = ?, "
                        "min_derate_permille = ? WHERE id = ?",
                        (
                            _wl_json(by_ch),
                            _wl_json(wavelength_fluence(by_ch, self._channel_wl)),
                            self._heartbeat,
                            int(self._min_derate < 1000),
                            self._min_derate,
                            sid,
                        ),
                    )
        except StoreError as e:
            # keep everything buffered: the next batch retries, finish() reports it
            self.write_error = e
            if raise_errors:
                raise
            return
        self.write_error = None
        self._flushed_delivered = delivered
        self._kept, self._events, self._phase_updates = [], [], []


def _decode_event(ev: wire.Event) -> dict[str, Any]:
    """Names for the numeric codes of an event, per docs/wire-protocol.md §8."""
    k = ev.kind
    if k == wire.EventKind.STATE:
        return {
            "state": _enum_name(wire.State, ev.a),
            "from": _enum_name(wire.State, ev.b),
        }
    if k in (wire.EventKind.INTERLOCK, wire.EventKind.FAULT):
        return {"interlock": _enum_name(wire.Interlock, ev.a)}
    if k == wire.EventKind.SESSION_END:
        out = {"outcome": _enum_name(wire.Outcome, ev.a)}
        if ev.a == wire.Outcome.ABORTED:
            out["reason"] = _enum_name(wire.AbortReason, ev.b)
        elif ev.a == wire.Outcome.INTERLOCK:
            out["reason"] = _enum_name(wire.Interlock, ev.b)
        return out
    if k == wire.EventKind.BOOT:
        return {"cause": _enum_name(wire.BootCause, ev.a)}
    if k == wire.EventKind.LEASE_EXPIRED:
        return {"policy": _enum_name(wire.LinkPolicy, ev.a)}
    if k == wire.EventKind.HEAD:
        return {"present": bool(ev.a)}
    return {}

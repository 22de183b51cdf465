"""The :class:`Store`: opening (and migrating) a log, history queries, reconciliation."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lllt import wire
from lllt.errors import NotASessionLog, StoreError

if TYPE_CHECKING:
    pass
from lllt.store.owner import HOST_NAME, PROCESS_TOKEN, _owner_alive
from lllt.store.paths import resolve_db_path
from lllt.store.recorder import SessionRecorder
from lllt.store.rows import (
    ChannelRef,
    EventRow,
    PhaseRow,
    SessionRow,
    SessionStart,
    TelemetryRow,
    _enum_name,
    _wl_json,
    _wl_load,
    wavelength_fluence,
)
from lllt.store.schema import (
    APPLICATION_ID,
    ENV_DB,
    MIGRATIONS,
    OPEN_STATUSES,
    SCHEMA_VERSION,
    UPGRADE_ADVICE,
    Status,
)


def _looks_like_sqlite(path: Path) -> bool:
    """True for an SQLite file, or an empty one (SQLite starts a database in it)."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError:
        return True  # let SQLite say what is wrong
    return head == b"" or head == b"SQLite format 3\x00"


def _corrupt(path: str, err: BaseException) -> StoreError:
    return StoreError(
        f"the session log {path} cannot be read: {err}",
        advice=(
            "It is damaged or not an lllt session log: move it aside (a new log is started) "
            f"or choose another file with --db or {ENV_DB}."
        ),
        path=path,
    )


def _store_error(path: str, err: sqlite3.Error) -> StoreError:
    text = str(err)
    low = text.lower()
    if "locked" in low or "busy" in low:
        return StoreError(
            f"the session log {path} is busy: {text}",
            advice="Another lllt process is writing it; try again when it has finished.",
            path=path,
        )
    if "malformed" in low or "not a database" in low or "corrupt" in low:
        return _corrupt(path, err)
    if "readonly" in low or "unable to open" in low or "disk" in low or "full" in low:
        return StoreError(
            f"the session log {path} cannot be written: {text}",
            advice=f"Check that the file and its folder are writable and the disk has space, "
            f"or choose another file with --db or {ENV_DB}.",
            path=path,
        )
    return StoreError(f"session log {path}: {text}", path=path)


#: the session row `Store.begin_session` writes; parameters from `_session_values`
_INSERT_SESSION = """INSERT INTO sessions (uuid, created_at, heartbeat_at, status, plan_id,
    protocol_id, protocol_name, protocol_sha256, protocol_text,
    device_serial, device_model, device_url, simulated, research,
    device_json, planned_fluence_json, planned_channel_json,
    expected_duration_s, max_duration_s, min_interval_s,
    max_sessions_per_week, limits_json, host_name, host_pid, host_token)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"""

#: one planned phase of that session; parameters from `_phase_values`
_INSERT_PHASE = """INSERT INTO phases (session_id, idx, name, kind, planned_duration_s,
    max_duration_s, planned_fluence_json) VALUES (?, ?, ?, ?, ?, ?, ?)"""


def _device_description(start: SessionStart) -> dict[str, Any]:
    """The device as the session row's ``device_json`` records it."""
    return {
        "channels": [
            {"id": c.id, "wavelength_nm": c.wavelength_nm, "zone": c.zone} for c in start.channels
        ],
        "zones": list(start.zones),
        "cutoff_c": start.cutoff_c,
        "sensor_uncertainty_c": start.sensor_uncertainty_c,
    }


def _session_values(
    start: SessionStart, created_at: float, sha: str, device: dict[str, Any]
) -> tuple[Any, ...]:
    """The parameters of ``_INSERT_SESSION`` for a new pending session."""
    return (
        str(uuid.uuid4()),
        created_at,
        created_at,
        Status.PENDING.value,
        start.plan_id,
        start.protocol_id,
        start.protocol_name,
        sha,
        start.protocol_text,
        start.device_serial,
        start.device_model,
        start.device_url,
        int(start.simulated),
        int(start.research),
        json.dumps(device),
        _wl_json(start.planned_fluence_j_cm2),
        _wl_json(start.planned_fluence_by_channel),
        start.expected_duration_s,
        start.max_duration_s,
        start.min_interval_s,
        start.max_sessions_per_week,
        json.dumps(dict(start.limits), default=str),
        HOST_NAME,
        os.getpid(),
        PROCESS_TOKEN,
    )


def _phase_values(session_id: int, start: SessionStart) -> list[tuple[Any, ...]]:
    """The parameters of ``_INSERT_PHASE``, one row per planned phase."""
    return [
        (
            session_id,
            i,
            p.name,
            p.kind,
            p.planned_duration_s,
            p.max_duration_s,
            _wl_json(p.planned_fluence_j_cm2),
        )
        for i, p in enumerate(start.phases)
    ]


class Store:
    """The session log. Open with :meth:`open`; usable as a context manager."""

    def __init__(self, conn: sqlite3.Connection, path: str) -> None:
        self._conn = conn
        self.path = path
        #: "wal" for a file log; "memory" for the empty stand-in of a missing file
        self.journal_mode = "memory"

    # --- opening ---------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike[str] | None = None, *, create: bool = True) -> Store:
        """Open (and create or migrate) the log at ``path`` (resolved by :func:`resolve_db_path`).

        With ``create=False`` a missing file is not created: the store is an empty one in
        memory, so read-only commands report "no sessions" without leaving a file behind.
        """
        resolved = resolve_db_path(path)
        name = str(resolved)
        if not resolved.exists() and not create:
            conn = sqlite3.connect(":memory:", isolation_level=None)
            store = cls(conn, name)
            store._migrate()
            return store
        if resolved.is_dir():
            raise StoreError(
                f"the session log path {name} is a folder",
                advice=f"Give a file path with --db or {ENV_DB}.",
                path=name,
            )
        if resolved.exists() and not _looks_like_sqlite(resolved):
            raise NotASessionLog(
                f"{name} is not an lllt session log (not an SQLite file)",
                advice=f"Choose the session log with --db or {ENV_DB}.",
                path=name,
            )
        try:
            resolved.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(
                f"cannot create the folder for the session log {name}: {e.strerror or e}",
                advice=f"Choose a writable place with --db or {ENV_DB}.",
                path=name,
            ) from None
        try:
            conn = sqlite3.connect(name, timeout=10.0, isolation_level=None)
        except sqlite3.Error as e:
            raise _store_error(name, e) from None
        store = cls(conn, name)
        try:
            store._configure()
            store._migrate()
        except StoreError:
            conn.close()
            raise
        except sqlite3.Error as e:
            conn.close()
            raise _store_error(name, e) from None
        return store

    def _configure(self) -> None:
        c = self._conn
        # reading the schema first turns "not a database" into an error here, not later
        c.execute("SELECT count(*) FROM sqlite_master").fetchone()
        mode = c.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        self.journal_mode = str(mode).lower()
        # WAL + NORMAL: a commit survives the process being killed; lifecycle commits
        # switch to FULL (``_write(durable=True)``) so that power loss cannot lose a session row
        c.execute("PRAGMA synchronous=NORMAL")
        c.execute("PRAGMA foreign_keys=ON")

    def _migrate(self) -> None:
        c = self._conn
        version = c.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"the session log {self.path} has schema version {version}; this lllt "
                f"knows versions up to {SCHEMA_VERSION}",
                advice=UPGRADE_ADVICE,
                path=self.path,
                observed=version,
                limit=SCHEMA_VERSION,
            )
        if version == SCHEMA_VERSION:
            self._check_ours()
            return
        c.execute("BEGIN IMMEDIATE")
        try:
            # another process may have migrated while we waited for the write lock
            version = c.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                tables = c.execute(
                    "SELECT count(*) FROM sqlite_master WHERE type='table'"
                ).fetchone()[0]
                if tables:
                    raise self._not_ours()
            else:
                self._check_ours()
            for target, _what, statements in MIGRATIONS:
                if target <= version:
                    continue
                for sql in statements:
                    c.execute(sql)
                c.execute(f"PRAGMA user_version = {target}")
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise

    def _check_ours(self) -> None:
        app_id = self._conn.execute("PRAGMA application_id").fetchone()[0]
        if app_id != APPLICATION_ID:
            raise self._not_ours()

    def _not_ours(self) -> StoreError:
        return NotASessionLog(
            f"{self.path} is an SQLite file but not an lllt session log",
            advice=f"Choose the session log with --db or {ENV_DB}, or move this file aside.",
            path=self.path,
        )

    @property
    def schema_version(self) -> int:
        """The log's schema version (``PRAGMA user_version``)."""
        with self._guard():
            return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    def close(self) -> None:
        """Close the database connection."""
        self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- plumbing --------------------------------------------------------------------
    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as e:
            raise _store_error(self.path, e) from None

    @contextlib.contextmanager
    def _write(self, *, durable: bool = False) -> Iterator[sqlite3.Connection]:
        """One write transaction; ``durable`` makes its commit reach the disk (fsync)."""
        c = self._conn
        with self._guard():
            if durable:
                c.execute("PRAGMA synchronous=FULL")
            try:
                c.execute("BEGIN IMMEDIATE")
                try:
                    yield c
                    c.execute("COMMIT")
                except BaseException:
                    if c.in_transaction:
                        c.execute("ROLLBACK")
                    raise
            finally:
                if durable:
                    c.execute("PRAGMA synchronous=NORMAL")

    # --- writing a session -----------------------------------------------------------
    def begin_session(
        self,
        start: SessionStart,
        *,
        created_at: float,
        wall_clock: Callable[[], float] = time.monotonic,
        check: Callable[[Store], None] | None = None,
    ) -> SessionRecorder:
        """Write the session row (status ``pending``) and its planned phases; durable.

        ``check(store)`` runs inside the same write transaction, before the insert: a
        check that guards the insert (spacing, cumulative dose) sees every row another
        process wrote before it, pending ones included, and none can slip in between. It
        refuses by raising; nothing is written then.
        """
        device = _device_description(start)
        sha = hashlib.sha256(start.protocol_text.encode("utf-8")).hexdigest()
        with self._write(durable=True) as c:
            if check is not None:
                check(self)
            cur = c.execute(_INSERT_SESSION, _session_values(start, created_at, sha, device))
            sid = int(cur.lastrowid or 0)
            c.executemany(_INSERT_PHASE, _phase_values(sid, start))
        return SessionRecorder(self, sid, start.channels, start.plan_id, wall_clock=wall_clock)

    def recorder(
        self, session_id: int, *, wall_clock: Callable[[], float] = time.monotonic
    ) -> SessionRecorder:
        """A recorder that carries on an existing session (after a reconnect, say).

        It resumes where the log stands: the delivered fluence never goes below what was
        recorded, the deepest derating is kept, and a phase under way when the previous
        recorder stopped keeps its start (time and fluence baseline).
        """
        row = self.session(session_id)
        rec = SessionRecorder(self, row.id, row.channels, row.plan_id, wall_clock=wall_clock)
        with self._guard():
            last = self._conn.execute(
                "SELECT step FROM telemetry WHERE session_id = ? ORDER BY t DESC, rowid DESC "
                "LIMIT 1",
                (row.id,),
            ).fetchone()
            first = None
            if last is not None and last[0] != wire.NO_INDEX:
                first = self._conn.execute(
                    "SELECT t, fluence_json FROM telemetry WHERE session_id = ? AND step = ? "
                    "ORDER BY t, rowid LIMIT 1",
                    (row.id, last[0]),
                ).fetchone()
        phases = {p.index: p for p in self.phases(row.id)}
        resume = None
        if first is not None:
            phase = phases.get(last[0])
            started = phase.started_at if phase and phase.started_at is not None else first[0]
            resume = (int(last[0]), started, tuple(json.loads(first[1])))
        rec._resume(
            delivered=tuple(row.delivered_by_channel.get(c.id, 0.0) for c in row.channels),
            min_derate=row.min_derate_permille,
            phase=resume,
            phase_min_derate=phases[last[0]].min_derate_permille
            if resume and last[0] in phases
            else 1000,
        )
        return rec

    def mark_interrupted(self, now: float, *, stale_after_s: float = 3600.0) -> list[int]:
        """Rows left ``pending``/``running`` by a host process that no longer exists.

        On this host a process is gone when its pid is dead or now belongs to another
        process (pid + start time + boot id differ). A row from another host (a log on a
        shared drive) is taken as gone when it has not been written for ``stale_after_s``.
        Returns the ids marked ``interrupted``.
        """
        with self._guard():
            rows = self._conn.execute(
                "SELECT id, status, host_name, host_pid, host_token, heartbeat_at, created_at "
                "FROM sessions WHERE status IN (?, ?)",
                tuple(s.value for s in OPEN_STATUSES),
            ).fetchall()
        dead: list[tuple[int, str, str, int]] = []
        for sid, status, host, pid, token, beat, created in rows:
            if host == HOST_NAME:
                alive = _owner_alive(pid, token)
                if alive is None:  # cannot tell: fall back to the heartbeat
                    alive = now - (beat or created) < stale_after_s
            else:
                alive = now - (beat or created) < stale_after_s
            if not alive:
                dead.append((sid, status, host, pid))
        if not dead:
            return []
        with self._write(durable=True) as c:
            for sid, status, host, pid in dead:
                note = (
                    f"the host process {pid} on {host} ended while the session was {status}; "
                    "fluence is the last value recorded until the device's record is read"
                )
                # the status check makes this safe against a concurrent finish
                c.execute(
                    "UPDATE sessions SET status = ?, interrupted_at = ?, outcome = ?, note = ? "
                    "WHERE id = ? AND status IN (?, ?)",
                    (
                        Status.INTERRUPTED.value,
                        now,
                        "interrupted",
                        note,
                        sid,
                        *(s.value for s in OPEN_STATUSES),
                    ),
                )
        return [d[0] for d in dead]

    def known_plan_ids(self, device_serial: str) -> set[int]:
        """Plan ids of every session this log holds for one device."""
        with self._guard():
            rows = self._conn.execute(
                "SELECT plan_id FROM sessions WHERE device_serial = ? AND plan_id IS NOT NULL",
                (device_serial,),
            ).fetchall()
        return {int(r[0]) for r in rows}

    def adopt_device_record(
        self,
        record: wire.SessionRecord,
        *,
        device_serial: str,
        device_model: str,
        device_url: str,
        simulated: bool,
        channels: Sequence[ChannelRef],
        zones: Sequence[str],
        started_at: float,
        ended_at: float,
        now: float,
        delivered_by_channel: Sequence[float] | None = None,
    ) -> SessionRow:
        """Log a session this log never saw but the device's records hold (another log,
        another host): it counts for spacing and limits from now on, with the device's
        account of its dose. Rows are matched by device serial and plan id."""
        device = {
            "channels": [
                {"id": c.id, "wavelength_nm": c.wavelength_nm, "zone": c.zone} for c in channels
            ],
            "zones": list(zones),
        }
        with self._write(durable=True) as c:
            cur = c.execute(
                """INSERT INTO sessions (uuid, created_at, heartbeat_at, status, plan_id,
                    protocol_id, protocol_name, protocol_sha256, protocol_text,
                    device_serial, device_model, device_url, simulated, research,
                    device_json, planned_fluence_json, planned_channel_json,
                    host_name, host_pid, host_token, interrupted_at, note)
                VALUES (?, ?, ?, ?, ?, '', '(from the device''s records)', '', '', ?, ?, ?,
                    ?, 0, ?, '{}', '{}', ?, ?, ?, ?, ?)""",
                (
                    str(uuid.uuid4()),
                    started_at,
                    now,
                    Status.INTERRUPTED.value,
                    record.plan_id,
                    device_serial,
                    device_model,
                    device_url,
                    int(simulated),
                    json.dumps(device),
                    HOST_NAME,
                    os.getpid(),
                    PROCESS_TOKEN,
                    now,
                    "a session this log had not seen, found in the device's records",
                ),
            )
            sid = int(cur.lastrowid or 0)
        return self.reconcile_from_record(
            sid,
            record,
            reconciled_at=now,
            started_at=started_at,
            ended_at=ended_at,
            note="adopted from the device's records (run from another log or host)",
            delivered_by_channel=delivered_by_channel,
        )

    def pending_reconciliation(self, device_serial: str) -> list[SessionRow]:
        """Interrupted sessions on this device, oldest first: read its records for them."""
        return self._select(
            "WHERE status = ? AND device_serial = ? ORDER BY created_at, id",
            (Status.INTERRUPTED.value, device_serial),
        )

    def reconcile(
        self,
        session_id: int,
        *,
        outcome: str,
        delivered_by_channel: Mapping[int, float] | Sequence[float],
        ended_at: float | None,
        note: str,
        reconciled_at: float,
        started_at: float | None = None,
        reason: str = "",
        device_record: Mapping[str, Any] | None = None,
        actual_duration_s: float | None = None,
    ) -> SessionRow:
        """Complete an interrupted session from what the device's own record says.

        ``delivered_by_channel`` is {channel id: J/cm²} or a sequence in HELLO order (as in
        :class:`lllt.wire.SessionRecord`). ``started_at=None`` with no fluence means the
        device never started it: the session then stops counting for interval checks.
        """
        row = self.session(session_id)
        if row.status != Status.INTERRUPTED:
            raise StoreError(
                f"session {session_id} is {row.status}, not interrupted: nothing to reconcile",
                advice="Only interrupted sessions are reconciled from the device's records.",
            )
        by_ch = self._by_channel(row, delivered_by_channel)
        by_wl = wavelength_fluence(by_ch, {c.id: c.wavelength_nm for c in row.channels})
        full_note = f"{row.note}; reconciled: {note}" if row.note else f"reconciled: {note}"
        with self._write(durable=True) as c:
            c.execute(
                """UPDATE sessions SET status = ?, outcome = ?, reason = ?, note = ?,
                    ended_at = ?, started_at = ?, reconciled_at = ?,
                    delivered_channel_json = ?, delivered_fluence_json = ?,
                    device_record_json = ?, actual_duration_s = coalesce(?, actual_duration_s)
                WHERE id = ?""",
                (
                    Status.RECONCILED.value,
                    outcome,
                    reason,
                    full_note,
                    ended_at,
                    started_at if started_at is not None else row.started_at,
                    reconciled_at,
                    _wl_json(by_ch),
                    _wl_json(by_wl),
                    json.dumps(dict(device_record or {}), default=str),
                    actual_duration_s,
                    session_id,
                ),
            )
            c.execute(
                "INSERT INTO events (session_id, t, device_ms, source, kind, data_json) "
                "VALUES (?, ?, NULL, 'host', 'reconciled', ?)",
                (
                    session_id,
                    reconciled_at,
                    json.dumps({"outcome": outcome, "note": note, **dict(device_record or {})}),
                ),
            )
        return self.session(session_id)

    def reconcile_from_record(
        self,
        session_id: int,
        record: wire.SessionRecord,
        *,
        reconciled_at: float,
        started_at: float | None,
        ended_at: float | None,
        note: str = "completed from the device's session record",
        delivered_by_channel: Sequence[float] | None = None,
    ) -> SessionRow:
        """:meth:`reconcile` from a :class:`lllt.wire.SessionRecord` the device returned.

        The host timeline times (``started_at``, ``ended_at``) are the caller's mapping of
        the record's device times; the record itself is kept as it came.
        ``delivered_by_channel`` (HELLO order) replaces the record's fluence as the dose
        counted, when the caller counts more than the record proves (a power loss).
        """
        outcome = record.outcome.name.lower()
        reason = ""
        if record.outcome == wire.Outcome.ABORTED:
            reason = _enum_name(wire.AbortReason, record.reason)
        elif record.outcome == wire.Outcome.INTERLOCK:
            reason = _enum_name(wire.Interlock, record.reason)
        return self.reconcile(
            session_id,
            outcome=outcome,
            reason=reason,
            delivered_by_channel=record.fluence
            if delivered_by_channel is None
            else delivered_by_channel,
            started_at=started_at,
            ended_at=ended_at,
            reconciled_at=reconciled_at,
            note=note,
            device_record=wire.to_dict(record),
            actual_duration_s=record.emitting_ms / 1000.0,
        )

    @staticmethod
    def _by_channel(
        row: SessionRow, values: Mapping[int, float] | Sequence[float]
    ) -> dict[int, float]:
        if isinstance(values, Mapping):
            return {int(k): float(v) for k, v in values.items()}
        if len(values) != len(row.channels):
            raise StoreError(
                f"session {row.id}: {len(values)} fluence values for {len(row.channels)} channels",
                advice="The device's record does not match the channel table of the session.",
            )
        return {c.id: float(v) for c, v in zip(row.channels, values, strict=True)}

    # --- reading ---------------------------------------------------------------------
    _SESSION_COLUMNS = (
        "id, uuid, created_at, started_at, ended_at, heartbeat_at, status, outcome, reason, "
        "note, exit_code, plan_id, protocol_id, protocol_name, protocol_sha256, "
        "protocol_text, device_serial, device_model, device_url, simulated, research, "
        "device_json, planned_fluence_json, planned_channel_json, delivered_fluence_json, "
        "delivered_channel_json, expected_duration_s, max_duration_s, actual_duration_s, "
        "derated, min_derate_permille, min_interval_s, max_sessions_per_week, limits_json, "
        "host_name, host_pid, host_token, interrupted_at, reconciled_at, device_record_json"
    )

    def _select(self, where: str, params: tuple[Any, ...] = ()) -> list[SessionRow]:
        with self._guard():
            rows = self._conn.execute(
                f"SELECT {self._SESSION_COLUMNS} FROM sessions {where}", params
            ).fetchall()
            try:
                return [self._session_row(r) for r in rows]
            except (ValueError, TypeError, KeyError) as e:
                raise _corrupt(self.path, e) from None

    @staticmethod
    def _session_row(r: tuple[Any, ...]) -> SessionRow:
        device = json.loads(r[21])
        return SessionRow(
            id=r[0],
            uuid=r[1],
            created_at=r[2],
            started_at=r[3],
            ended_at=r[4],
            heartbeat_at=r[5],
            status=Status(r[6]),
            outcome=r[7],
            reason=r[8],
            note=r[9],
            exit_code=r[10],
            plan_id=r[11],
            protocol_id=r[12],
            protocol_name=r[13],
            protocol_sha256=r[14],
            protocol_text=r[15],
            device_serial=r[16],
            device_model=r[17],
            device_url=r[18],
            simulated=bool(r[19]),
            research=bool(r[20]),
            channels=tuple(
                ChannelRef(int(c["id"]), int(c["wavelength_nm"]), str(c["zone"]))
                for c in device.get("channels", [])
            ),
            zones=tuple(device.get("zones", [])),
            cutoff_c=device.get("cutoff_c"),
            sensor_uncertainty_c=device.get("sensor_uncertainty_c"),
            planned_fluence=_wl_load(r[22]),
            planned_by_channel=_wl_load(r[23]),
            delivered_fluence=_wl_load(r[24]),
            delivered_by_channel=_wl_load(r[25]),
            expected_duration_s=r[26],
            max_duration_s=r[27],
            actual_duration_s=r[28],
            derated=bool(r[29]),
            min_derate_permille=r[30],
            min_interval_s=r[31],
            max_sessions_per_week=r[32],
            limits=json.loads(r[33]),
            host_name=r[34],
            host_pid=r[35],
            host_token=r[36],
            interrupted_at=r[37],
            reconciled_at=r[38],
            device_record=json.loads(r[39]),
        )

    def session(self, key: int | str) -> SessionRow:
        """A session by id, uuid, or ``"last"``; :class:`LookupError` if there is none."""
        if isinstance(key, int):
            rows = self._select("WHERE id = ?", (key,))
        elif key == "last":
            rows = self._select("ORDER BY created_at DESC, id DESC LIMIT 1")
        elif key.isdigit():
            rows = self._select("WHERE id = ?", (int(key),))
        else:
            rows = self._select("WHERE uuid = ?", (key,))
        if not rows:
            raise LookupError(key)
        return rows[0]

    def sessions(
        self,
        *,
        limit: int | None = None,
        since: float | None = None,
        simulated: bool | None = None,
        newest_first: bool = True,
    ) -> list[SessionRow]:
        """Sessions, newest first (``newest_first=False``: oldest first), optionally only those
        created at or after ``since`` (epoch seconds), only simulated or only real ones
        (``simulated``), and at most ``limit``."""
        clauses, params = [], []
        if since is not None:
            clauses.append("created_at >= ?")
            params.append(since)
        if simulated is not None:
            clauses.append("simulated = ?")
            params.append(int(simulated))
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        order = "DESC" if newest_first else "ASC"
        where += f" ORDER BY created_at {order}, id {order}"
        if limit is not None:
            where += " LIMIT ?"
            params.append(limit)
        return self._select(where, tuple(params))

    def phases(self, session_id: int) -> list[PhaseRow]:
        """The phases of one session, in plan order."""
        with self._guard():
            rows = self._conn.execute(
                "SELECT session_id, idx, name, kind, started_at, ended_at, planned_duration_s, "
                "max_duration_s, planned_fluence_json, delivered_fluence_json, derated, "
                "min_derate_permille FROM phases WHERE session_id = ? ORDER BY idx",
                (session_id,),
            ).fetchall()
        return [
            PhaseRow(
                r[0],
                r[1],
                r[2],
                r[3],
                r[4],
                r[5],
                r[6],
                r[7],
                _wl_load(r[8]),
                _wl_load(r[9]),
                bool(r[10]),
                r[11],
            )
            for r in rows
        ]

    def events(self, session_id: int) -> list[EventRow]:
        """The events logged for one session, the device's and the host's, in time order."""
        with self._guard():
            rows = self._conn.execute(
                "SELECT session_id, t, device_ms, source, kind, data_json FROM events "
                "WHERE session_id = ? ORDER BY t, id",
                (session_id,),
            ).fetchall()
        return [EventRow(r[0], r[1], r[2], r[3], r[4], json.loads(r[5])) for r in rows]

    def telemetry(self, session_id: int) -> list[TelemetryRow]:
        """The telemetry samples kept for one session, in time order (each sample's ``kept`` says
        why it was kept)."""
        with self._guard():
            rows = self._conn.execute(
                "SELECT session_id, t, device_ms, boot_count, state, step, flags, "
                "derate_permille, supply_mv, elapsed_ms, setpoint_json, irradiance_json, "
                "fluence_json, temperature_json, ambient, kept FROM telemetry "
                "WHERE session_id = ? ORDER BY t, rowid",
                (session_id,),
            ).fetchall()
        loads = json.loads
        return [
            TelemetryRow(
                r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9],
                tuple(loads(r[10])), tuple(loads(r[11])), tuple(loads(r[12])),
                tuple(loads(r[13])), r[14], r[15],
            )
            for r in rows
        ]  # fmt: skip

    # --- history queries (facts for preflight and `lllt history`) ---------------------
    # A session counts once it may have emitted (START confirmed, or lost by its host
    # before we knew); its end is ``effective_end``; fluence is what was recorded. How
    # preflight weighs a session not yet reconciled is decided in lllt.safety.history.
    def fluence_since(self, since: float, *, simulated: bool) -> dict[int, float]:
        """J/cm² per wavelength of the sessions that ended at or after ``since``."""
        out: dict[int, float] = {}
        for row in self._counted(simulated):
            if row.effective_end >= since:
                for wl, f in row.delivered_fluence.items():
                    out[wl] = out.get(wl, 0.0) + f
        return out

    def sessions_since(self, since: float, *, simulated: bool) -> list[SessionRow]:
        """Sessions that ended at or after ``since``, oldest end first."""
        rows = [r for r in self._counted(simulated) if r.effective_end >= since]
        return sorted(rows, key=lambda r: r.effective_end)

    def last_session(self, *, simulated: bool) -> SessionRow | None:
        """The session that ended last among those that may have emitted."""
        rows = self._counted(simulated)
        return max(rows, key=lambda r: r.effective_end) if rows else None

    def last_session_end(self, *, simulated: bool) -> float | None:
        """When the last session that may have emitted ended (its ``effective_end``, epoch
        seconds), or None when there is none."""
        last = self.last_session(simulated=simulated)
        return None if last is None else last.effective_end

    def last_min_interval_s(self, *, simulated: bool) -> float | None:
        """The minimum interval the last session's protocol asked for, if any."""
        last = self.last_session(simulated=simulated)
        return None if last is None else last.min_interval_s

    def _counted(self, simulated: bool) -> list[SessionRow]:
        rows = self._select(
            "WHERE simulated = ? AND (started_at IS NOT NULL OR status IN (?, ?, ?))",
            (int(simulated), Status.INTERRUPTED.value, *(st.value for st in OPEN_STATUSES)),
        )
        return [r for r in rows if r.counts]

    def has_sessions(self, *, simulated: bool) -> bool:
        """Whether the log holds a session of this kind (simulated or not), whatever its status."""
        with self._guard():
            row = self._conn.execute(
                "SELECT 1 FROM sessions WHERE simulated = ? LIMIT 1", (int(simulated),)
            ).fetchone()
        return row is not None

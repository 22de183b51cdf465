"""The session log: every session, its phases, events and telemetry, in SQLite (DESIGN §8).

One file (``sessions.db`` in the user data directory; ``--db PATH`` > ``LLLT_DB`` >
default), WAL journal, ``PRAGMA user_version`` with an ordered list of migrations. Times
are epoch seconds on the host timeline and are always passed in by the caller (the runner
passes :func:`lllt.clock.wall_time`), so a simulated session is recorded on the same
timeline as the virtual clock that ran it; this module never reads the time of day.

Writing a session (the runner)::

    store = Store.open(db)                     # creates the file, migrates, WAL on
    store.mark_interrupted(now)                # rows whose host process died
    rec = store.begin_session(SessionStart.from_plan(...), created_at=now)  # before emission
    rec.started(t, plan_id=...)                # the device confirmed START
    rec.sample(t, telemetry)                   # every frame: a few µs, buffered
    rec.device_event(t, event) / rec.event(t, "derate", {...})
    rec.finish(t, status=Status.COMPLETED, outcome="completed", exit_code=0, ...)

    # later, connected to that device again:
    for row in store.pending_reconciliation(serial):
        store.reconcile_from_record(row.id, record, reconciled_at=..., started_at=..., ...)

:class:`SessionRecorder` keeps telemetry at 1 Hz plus every sample within ±2 s of an
event, follows step changes in the telemetry to fill the phase rows, and commits in
batches: on every event, on phase boundaries, and otherwise at most once per second of
wall time. A failed batch never interrupts the caller's supervision loop: the rows stay
buffered, the next batch retries, and ``finish()`` raises :class:`StoreError` if the log
still cannot be written. The 1 Hz grid and the event windows are in host time (the
``t`` passed in), which is monotonic across device reboots where device time is not.

Durability: WAL with ``synchronous=NORMAL`` for telemetry batches (a commit survives the
process being killed); the session row's lifecycle commits (begin, started, finish,
interrupted, reconciled) use ``synchronous=FULL``, which also syncs every batch before
them, so a power cut cannot lose a session row.

Session statuses (``Status``):

- ``pending``: row written, the device has not confirmed START yet;
- ``running``: START confirmed, the session is under way;
- ``completed``: the device ran the plan to its end;
- ``aborted``: stopped by a safety limit (host monitor or a device interlock);
- ``stopped``: stopped by the user, emitters confirmed off;
- ``failed``: ended by a device, link or host error (it may never have emitted);
- ``interrupted``: the host lost the session (its process died, or the link was lost and
  not recovered); fluence is the last value recorded, final values await reconciliation;
- ``reconciled``: an interrupted session completed from the device's own session record
  (the note keeps that the host was interrupted).

History queries (``fluence_since``, ``sessions_since``, ``last_session`` ...) give the
facts that preflight (through ``lllt.safety.history.StoreHistory``) and ``lllt history``
weigh. They filter by ``simulated``: sessions on a simulated device only constrain
simulated sessions and real ones only real ones, because a simulator run delivers no
light to anyone and must never block a real treatment, while a real treatment must not
make test runs refuse. A session counts once it may have emitted (START confirmed, or
interrupted before we knew), with the fluence last recorded (an interrupted session's
known partial fluence), and ends at ``SessionRow.effective_end``: for a session the host
lost, the latest it may have ended (the device runs a finite plan on its own).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import socket
import sqlite3
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import IntEnum, StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lllt import wire
from lllt.errors import StoreError

if TYPE_CHECKING:
    from lllt.plan import SessionPlan

#: ``PRAGMA application_id`` of an lllt session log ("LLLT")
APPLICATION_ID = 0x4C4C4C54

ENV_DB = "LLLT_DB"
UPGRADE_ADVICE = "Upgrade lllt (pip install -U lllt) to read this session log."


class Status(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    ABORTED = "aborted"
    STOPPED = "stopped"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    RECONCILED = "reconciled"


#: statuses of a session still in the hands of a host process
OPEN_STATUSES = (Status.PENDING, Status.RUNNING)
#: statuses a session may be finished with
FINAL_STATUSES = (
    Status.COMPLETED,
    Status.ABORTED,
    Status.STOPPED,
    Status.FAILED,
    Status.INTERRUPTED,
)


class Kept(StrEnum):
    """Why a telemetry sample was kept."""

    PERIODIC = "1hz"
    EVENT = "event"  # within ±2 s of an event
    LAST = "last"  # the last sample of the session


# --- schema and migrations ---------------------------------------------------------------

# Each migration moves the schema from version N-1 to N in one transaction. Append only:
# a released migration is never edited, so every old file follows the same path.
_V1 = (
    f"PRAGMA application_id = {APPLICATION_ID}",
    """CREATE TABLE sessions (
        id INTEGER PRIMARY KEY,
        uuid TEXT NOT NULL UNIQUE,
        created_at REAL NOT NULL,
        started_at REAL,
        ended_at REAL,
        heartbeat_at REAL,
        status TEXT NOT NULL,
        outcome TEXT NOT NULL DEFAULT '',
        reason TEXT NOT NULL DEFAULT '',
        note TEXT NOT NULL DEFAULT '',
        exit_code INTEGER,
        plan_id INTEGER,
        protocol_id TEXT NOT NULL,
        protocol_name TEXT NOT NULL,
        protocol_sha256 TEXT NOT NULL,
        protocol_text TEXT NOT NULL,
        device_serial TEXT NOT NULL,
        device_model TEXT NOT NULL,
        device_url TEXT NOT NULL,
        simulated INTEGER NOT NULL,
        research INTEGER NOT NULL,
        device_json TEXT NOT NULL,
        planned_fluence_json TEXT NOT NULL,
        planned_channel_json TEXT NOT NULL,
        delivered_fluence_json TEXT NOT NULL DEFAULT '{}',
        delivered_channel_json TEXT NOT NULL DEFAULT '{}',
        expected_duration_s REAL,
        max_duration_s REAL,
        actual_duration_s REAL,
        derated INTEGER NOT NULL DEFAULT 0,
        min_derate_permille INTEGER NOT NULL DEFAULT 1000,
        min_interval_s REAL,
        max_sessions_per_week INTEGER,
        limits_json TEXT NOT NULL DEFAULT '{}',
        host_name TEXT NOT NULL,
        host_pid INTEGER NOT NULL,
        host_token TEXT NOT NULL
    )""",
    "CREATE INDEX sessions_by_time ON sessions (simulated, created_at)",
    "CREATE INDEX sessions_by_status ON sessions (status)",
    """CREATE TABLE phases (
        session_id INTEGER NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
        idx INTEGER NOT NULL,
        name TEXT NOT NULL,
        kind TEXT NOT NULL,
        started_at REAL,
        ended_at REAL,
        planned_duration_s REAL,
        max_duration_s REAL,
        planned_fluence_json TEXT NOT NULL DEFAULT '{}',
        delivered_fluence_json TEXT NOT NULL DEFAULT '{}',
        derated INTEGER NOT NULL DEFAULT 0,
        min_derate_permille INTEGER NOT NULL DEFAULT 1000,
        PRIMARY KEY (session_id, idx)
    )""",
    """CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        session_id INTEGER NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
        t REAL NOT NULL,
        device_ms INTEGER,
        source TEXT NOT NULL,
        kind TEXT NOT NULL,
        data_json TEXT NOT NULL DEFAULT '{}'
    )""",
    "CREATE INDEX events_by_session ON events (session_id, t)",
    """CREATE TABLE telemetry (
        session_id INTEGER NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
        t REAL NOT NULL,
        device_ms INTEGER NOT NULL,
        boot_count INTEGER NOT NULL,
        state INTEGER NOT NULL,
        step INTEGER NOT NULL,
        flags INTEGER NOT NULL,
        derate_permille INTEGER NOT NULL,
        supply_mv INTEGER NOT NULL,
        elapsed_ms INTEGER NOT NULL,
        setpoint_json TEXT NOT NULL,
        irradiance_json TEXT NOT NULL,
        fluence_json TEXT NOT NULL,
        temperature_json TEXT NOT NULL,
        ambient REAL,
        kept TEXT NOT NULL
    )""",
    "CREATE INDEX telemetry_by_session ON telemetry (session_id, t)",
)

# v2: what reconciliation needs to keep: when the host lost the session, when and from
# what device record it was completed.
_V2 = (
    "ALTER TABLE sessions ADD COLUMN interrupted_at REAL",
    "ALTER TABLE sessions ADD COLUMN reconciled_at REAL",
    "ALTER TABLE sessions ADD COLUMN device_record_json TEXT NOT NULL DEFAULT '{}'",
)

#: (version reached, what it does, statements)
MIGRATIONS: tuple[tuple[int, str, tuple[str, ...]], ...] = (
    (1, "sessions, phases, events, telemetry", _V1),
    (2, "reconciliation columns", _V2),
)
SCHEMA_VERSION = MIGRATIONS[-1][0]


# --- paths -------------------------------------------------------------------------------


def default_db_path() -> Path:
    import platformdirs

    return platformdirs.user_data_path("lllt", appauthor=False) / "sessions.db"


def resolve_db_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """``--db PATH`` > ``LLLT_DB`` > the user data directory."""
    if explicit is not None and str(explicit) != "":
        return Path(explicit).expanduser()
    env = os.environ.get(ENV_DB)
    if env:
        return Path(env).expanduser()
    return default_db_path()


# --- host process identity (who owns a running session) ----------------------------------


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _process_start(pid: int) -> str | None:
    """Start time of a process in clock ticks since boot (Linux), None if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name may hold spaces and parentheses: fields start after the last ')'
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None


def _token_for(pid: int) -> str | None:
    start = _process_start(pid)
    if start is None:
        return None
    return f"{_boot_id()}:{pid}:{start}"


# A token that names this process uniquely on this host: pid alone is reused, pid plus its
# start time and the boot id is not. Without /proc a random token still tells processes
# apart; liveness then falls back to the pid and the heartbeat.
HOST_NAME = socket.gethostname()
PROCESS_TOKEN = _token_for(os.getpid()) or f"uuid:{uuid.uuid4().hex}"


def _pid_alive(pid: int) -> bool | None:
    """True/False when we can tell, None when this platform cannot."""
    if os.name != "posix":
        return None  # os.kill(pid, 0) would terminate the process on Windows
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, belongs to someone else
    except OSError:
        return None
    return True


def _owner_alive(pid: int, token: str) -> bool | None:
    if token == PROCESS_TOKEN:
        return True
    if token.startswith("uuid:"):
        return _pid_alive(pid)
    current = _token_for(pid)
    if current is not None:
        return current == token
    alive = _pid_alive(pid)
    # no /proc entry for that pid while /proc exists means the process is gone
    return False if alive is None and Path("/proc/self/stat").exists() else alive


# --- helpers -----------------------------------------------------------------------------


def iso_utc(t: float | None, *, ms: bool = False) -> str | None:
    """Epoch seconds as ISO 8601 UTC (``2025-01-31T10:00:00Z``)."""
    if t is None:
        return None
    text = datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds" if ms else "seconds")
    return text.replace("+00:00", "Z")


def _wl_json(values: Mapping[int, float]) -> str:
    return json.dumps({str(k): float(v) for k, v in sorted(values.items())})


def _wl_load(text: str | None) -> dict[int, float]:
    if not text:
        return {}
    return {int(k): float(v) for k, v in json.loads(text).items()}


def wavelength_fluence(
    by_channel: Mapping[int, float], channel_wavelength: Mapping[int, int]
) -> dict[int, float]:
    """J/cm² per wavelength: the most any of its channels received (plan.py's rule)."""
    out: dict[int, float] = {}
    for ch, f in by_channel.items():
        wl = channel_wavelength.get(ch)
        if wl is not None:
            out[wl] = max(out.get(wl, 0.0), f)
    return out


# --- data types --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChannelRef:
    """One channel of the device, in HELLO table order (the order of telemetry arrays)."""

    id: int
    wavelength_nm: int
    zone: str


@dataclass(frozen=True, slots=True)
class PhasePlan:
    name: str
    kind: str  # "duration" or "fluence"
    planned_duration_s: float
    max_duration_s: float
    planned_fluence_j_cm2: Mapping[int, float]  # per wavelength


@dataclass(frozen=True)
class SessionStart:
    """Everything known about a session before the first emitter command."""

    protocol_id: str
    protocol_name: str
    protocol_text: str  # the protocol file as run
    device_serial: str
    device_model: str
    device_url: str
    simulated: bool
    channels: tuple[ChannelRef, ...]
    zones: tuple[str, ...]  # zone names in HELLO order
    phases: tuple[PhasePlan, ...]
    planned_fluence_j_cm2: Mapping[int, float]  # per wavelength
    planned_fluence_by_channel: Mapping[int, float] = field(default_factory=dict)
    expected_duration_s: float = 0.0
    max_duration_s: float = 0.0
    min_interval_s: float | None = None
    max_sessions_per_week: int | None = None
    research: bool = False
    plan_id: int | None = None
    cutoff_c: float | None = None  # the device's thermal cut-off
    sensor_uncertainty_c: float | None = None
    limits: Mapping[str, Any] = field(default_factory=dict)  # preflight summary (JSON-able)

    @classmethod
    def from_plan(
        cls,
        plan: SessionPlan,
        *,
        protocol_text: str,
        device_url: str,
        plan_id: int | None = None,
        limits: Mapping[str, Any] | None = None,
        research: bool | None = None,
    ) -> SessionStart:
        """Build from a compiled (and preflight-tightened) plan, its protocol and device.

        ``protocol_text`` is the file as run; ``limits`` the preflight summary to keep;
        ``research`` defaults to the protocol's own flag.
        """
        proto = plan.protocol
        schedule = proto.schedule
        dev = plan.device
        phases = tuple(
            PhasePlan(
                name=s.name,
                kind=s.kind.name.lower(),
                planned_duration_s=s.expected_duration_s,
                max_duration_s=s.max_duration_s,
                planned_fluence_j_cm2=dict(s.expected_fluence_j_cm2),
            )
            for s in plan.steps
        )
        return cls(
            protocol_id=proto.id,
            protocol_name=proto.name,
            protocol_text=protocol_text,
            device_serial=dev.serial,
            device_model=dev.model,
            device_url=device_url,
            simulated=dev.simulated,
            channels=tuple(
                ChannelRef(c.id, c.wavelength_nm, dev.zone_name(c.zone)) for c in dev.channels
            ),
            zones=tuple(z.name for z in dev.zones),
            phases=phases,
            planned_fluence_j_cm2=plan.fluence_by_wavelength(),
            planned_fluence_by_channel=plan.fluence_by_channel(),
            expected_duration_s=plan.expected_duration_s,
            max_duration_s=plan.max_duration_s,
            min_interval_s=None if schedule is None else schedule.min_interval,
            max_sessions_per_week=None if schedule is None else schedule.max_sessions_per_week,
            research=proto.research if research is None else research,
            plan_id=plan_id,
            cutoff_c=dev.limits.cutoff_c,
            sensor_uncertainty_c=dev.limits.sensor_uncertainty_c,
            limits=dict(limits or {}),
        )


@dataclass(frozen=True)
class SessionRow:
    """A session as stored."""

    id: int
    uuid: str
    created_at: float
    started_at: float | None
    ended_at: float | None
    heartbeat_at: float | None
    status: Status
    outcome: str
    reason: str
    note: str
    exit_code: int | None
    plan_id: int | None
    protocol_id: str
    protocol_name: str
    protocol_sha256: str
    protocol_text: str
    device_serial: str
    device_model: str
    device_url: str
    simulated: bool
    research: bool
    channels: tuple[ChannelRef, ...]
    zones: tuple[str, ...]
    cutoff_c: float | None
    sensor_uncertainty_c: float | None
    planned_fluence: dict[int, float]
    planned_by_channel: dict[int, float]
    delivered_fluence: dict[int, float]
    delivered_by_channel: dict[int, float]
    expected_duration_s: float | None
    max_duration_s: float | None
    actual_duration_s: float | None
    derated: bool
    min_derate_permille: int
    min_interval_s: float | None
    max_sessions_per_week: int | None
    limits: dict[str, Any]
    host_name: str
    host_pid: int
    host_token: str
    interrupted_at: float | None
    reconciled_at: float | None
    device_record: dict[str, Any]

    @property
    def counts(self) -> bool:
        """Whether this session may have emitted (counts for interval and weekly checks)."""
        return self.started_at is not None or self.status == Status.INTERRUPTED

    @property
    def effective_end(self) -> float:
        """When the session ended, or the latest it may have ended if the host lost it."""
        if self.ended_at is not None:
            return self.ended_at
        begin = self.started_at if self.started_at is not None else self.created_at
        # the device runs a finite plan on its own after the host vanished (policy FINISH),
        # a fluence-target step possibly up to its maximum: assume the longest
        longest = max(self.expected_duration_s or 0.0, self.max_duration_s or 0.0)
        return max(begin + longest, self.heartbeat_at or begin)

    @property
    def duration_s(self) -> float | None:
        if self.actual_duration_s is not None:
            return self.actual_duration_s
        if self.started_at is not None and self.ended_at is not None:
            return self.ended_at - self.started_at
        return None

    def to_dict(self, *, full: bool = False) -> dict[str, Any]:
        """JSON form (times ISO 8601 UTC, wavelengths as strings)."""
        out: dict[str, Any] = {
            "id": self.id,
            "uuid": self.uuid,
            "protocol_id": self.protocol_id,
            "protocol_name": self.protocol_name,
            "status": str(self.status),
            "outcome": self.outcome,
            "reason": self.reason,
            "note": self.note,
            "exit_code": self.exit_code,
            "created_at": iso_utc(self.created_at),
            "started_at": iso_utc(self.started_at),
            "ended_at": iso_utc(self.ended_at),
            "duration_s": self.duration_s,
            "expected_duration_s": self.expected_duration_s,
            "planned_fluence_j_cm2": {str(k): v for k, v in sorted(self.planned_fluence.items())},
            "delivered_fluence_j_cm2": {
                str(k): v for k, v in sorted(self.delivered_fluence.items())
            },
            "device_serial": self.device_serial,
            "device_model": self.device_model,
            "device_url": self.device_url,
            "simulated": self.simulated,
            "research": self.research,
            "derated": self.derated,
            "min_derate_permille": self.min_derate_permille,
            "plan_id": self.plan_id,
        }
        if full:
            out.update(
                {
                    "created_at": iso_utc(self.created_at, ms=True),
                    "started_at": iso_utc(self.started_at, ms=True),
                    "ended_at": iso_utc(self.ended_at, ms=True),
                    "interrupted_at": iso_utc(self.interrupted_at, ms=True),
                    "reconciled_at": iso_utc(self.reconciled_at, ms=True),
                    "protocol_sha256": self.protocol_sha256,
                    "protocol_text": self.protocol_text,
                    "max_duration_s": self.max_duration_s,
                    "planned_fluence_by_channel_j_cm2": {
                        str(k): v for k, v in sorted(self.planned_by_channel.items())
                    },
                    "delivered_fluence_by_channel_j_cm2": {
                        str(k): v for k, v in sorted(self.delivered_by_channel.items())
                    },
                    "channels": [
                        {"id": c.id, "wavelength_nm": c.wavelength_nm, "zone": c.zone}
                        for c in self.channels
                    ],
                    "zones": list(self.zones),
                    "cutoff_c": self.cutoff_c,
                    "sensor_uncertainty_c": self.sensor_uncertainty_c,
                    "min_interval_s": self.min_interval_s,
                    "max_sessions_per_week": self.max_sessions_per_week,
                    "limits": self.limits,
                    "device_record": self.device_record,
                    "host_name": self.host_name,
                    "host_pid": self.host_pid,
                }
            )
        return out


@dataclass(frozen=True, slots=True)
class PhaseRow:
    session_id: int
    index: int
    name: str
    kind: str
    started_at: float | None
    ended_at: float | None
    planned_duration_s: float | None
    max_duration_s: float | None
    planned_fluence: dict[int, float]
    delivered_fluence: dict[int, float]
    derated: bool
    min_derate_permille: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "name": self.name,
            "kind": self.kind,
            "started_at": iso_utc(self.started_at, ms=True),
            "ended_at": iso_utc(self.ended_at, ms=True),
            "planned_duration_s": self.planned_duration_s,
            "max_duration_s": self.max_duration_s,
            "planned_fluence_j_cm2": {str(k): v for k, v in sorted(self.planned_fluence.items())},
            "delivered_fluence_j_cm2": {
                str(k): v for k, v in sorted(self.delivered_fluence.items())
            },
            "derated": self.derated,
            "min_derate_permille": self.min_derate_permille,
        }


@dataclass(frozen=True, slots=True)
class EventRow:
    session_id: int
    t: float
    device_ms: int | None
    source: str  # "device" or "host"
    kind: str
    data: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "t": iso_utc(self.t, ms=True),
            "device_ms": self.device_ms,
            "source": self.source,
            "kind": self.kind,
            "data": self.data,
        }


@dataclass(frozen=True, slots=True)
class TelemetryRow:
    session_id: int
    t: float
    device_ms: int
    boot_count: int
    state: int
    step: int
    flags: int
    derate_permille: int
    supply_mv: int
    elapsed_ms: int
    setpoint: tuple[float, ...]
    irradiance: tuple[float, ...]
    fluence: tuple[float, ...]
    temperature: tuple[float | None, ...]
    ambient: float | None
    kept: str

    def to_dict(self) -> dict[str, Any]:
        try:
            state: Any = wire.State(self.state).name
        except ValueError:
            state = self.state
        return {
            "t": iso_utc(self.t, ms=True),
            "device_ms": self.device_ms,
            "boot_count": self.boot_count,
            "state": state,
            "step": None if self.step == wire.NO_INDEX else self.step,
            "flags": self.flags,
            "derate_permille": self.derate_permille,
            "supply_mv": self.supply_mv,
            "elapsed_ms": self.elapsed_ms,
            "setpoint_mw_cm2": list(self.setpoint),
            "irradiance_mw_cm2": list(self.irradiance),
            "fluence_j_cm2": list(self.fluence),
            "temperature_c": list(self.temperature),
            "ambient_c": self.ambient,
            "kept": self.kept,
        }


# --- the store -----------------------------------------------------------------------------


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
        return StoreError(
            f"{self.path} is an SQLite file but not an lllt session log",
            advice=f"Choose the session log with --db or {ENV_DB}, or move this file aside.",
            path=self.path,
        )

    @property
    def schema_version(self) -> int:
        with self._guard():
            return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    def close(self) -> None:
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
    ) -> SessionRecorder:
        """Write the session row (status ``pending``) and its planned phases; durable."""
        device = {
            "channels": [
                {"id": c.id, "wavelength_nm": c.wavelength_nm, "zone": c.zone}
                for c in start.channels
            ],
            "zones": list(start.zones),
            "cutoff_c": start.cutoff_c,
            "sensor_uncertainty_c": start.sensor_uncertainty_c,
        }
        sha = hashlib.sha256(start.protocol_text.encode("utf-8")).hexdigest()
        with self._write(durable=True) as c:
            cur = c.execute(
                """INSERT INTO sessions (uuid, created_at, heartbeat_at, status, plan_id,
                    protocol_id, protocol_name, protocol_sha256, protocol_text,
                    device_serial, device_model, device_url, simulated, research,
                    device_json, planned_fluence_json, planned_channel_json,
                    expected_duration_s, max_duration_s, min_interval_s,
                    max_sessions_per_week, limits_json, host_name, host_pid, host_token)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,
                    ?, ?)""",
                (
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
                ),
            )
            sid = int(cur.lastrowid or 0)
            c.executemany(
                """INSERT INTO phases (session_id, idx, name, kind, planned_duration_s,
                    max_duration_s, planned_fluence_json) VALUES (?, ?, ?, ?, ?, ?, ?)""",
                [
                    (
                        sid,
                        i,
                        p.name,
                        p.kind,
                        p.planned_duration_s,
                        p.max_duration_s,
                        _wl_json(p.planned_fluence_j_cm2),
                    )
                    for i, p in enumerate(start.phases)
                ],
            )
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
    ) -> SessionRow:
        """:meth:`reconcile` from a :class:`lllt.wire.SessionRecord` the device returned.

        The host timeline times (``started_at``, ``ended_at``) are the caller's mapping of
        the record's device times; the record itself is kept as it came.
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
            delivered_by_channel=record.fluence,
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
        with self._guard():
            rows = self._conn.execute(
                "SELECT session_id, t, device_ms, source, kind, data_json FROM events "
                "WHERE session_id = ? ORDER BY t, id",
                (session_id,),
            ).fetchall()
        return [EventRow(r[0], r[1], r[2], r[3], r[4], json.loads(r[5])) for r in rows]

    def telemetry(self, session_id: int) -> list[TelemetryRow]:
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
        last = self.last_session(simulated=simulated)
        return None if last is None else last.effective_end

    def last_min_interval_s(self, *, simulated: bool) -> float | None:
        """The minimum interval the last session's protocol asked for, if any."""
        last = self.last_session(simulated=simulated)
        return None if last is None else last.min_interval_s

    def _counted(self, simulated: bool) -> list[SessionRow]:
        rows = self._select(
            "WHERE simulated = ? AND (started_at IS NOT NULL OR status = ?)",
            (int(simulated), Status.INTERRUPTED.value),
        )
        return [r for r in rows if r.counts]

    def has_sessions(self, *, simulated: bool) -> bool:
        with self._guard():
            row = self._conn.execute(
                "SELECT 1 FROM sessions WHERE simulated = ? LIMIT 1", (int(simulated),)
            ).fetchone()
        return row is not None


def _enum_name(enum: type[IntEnum], value: int) -> str:
    try:
        return enum(value).name.lower()
    except ValueError:
        return str(value)


# --- the per-session writer ------------------------------------------------------------------


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


# --- export ---------------------------------------------------------------------------------

EXPORT_FORMAT = "lllt-export/1"

#: session columns of the CSV export, before the per-wavelength and per-phase columns
CSV_COLUMNS = (
    "id",
    "uuid",
    "protocol_id",
    "protocol_name",
    "protocol_sha256",
    "status",
    "outcome",
    "reason",
    "note",
    "exit_code",
    "created_at",
    "started_at",
    "ended_at",
    "duration_s",
    "expected_duration_s",
    "device_serial",
    "device_model",
    "device_url",
    "simulated",
    "research",
    "derated",
    "min_derate_permille",
    "plan_id",
)


def export_json(store: Store, *, since: float | None = None) -> dict[str, Any]:
    """Sessions created at or after ``since`` (oldest first) with phases, events, telemetry."""
    sessions = []
    for row in store.sessions(since=since, newest_first=False):
        item = row.to_dict(full=True)
        item["phases"] = [p.to_dict() for p in store.phases(row.id)]
        item["events"] = [e.to_dict() for e in store.events(row.id)]
        item["telemetry"] = [t.to_dict() for t in store.telemetry(row.id)]
        sessions.append(item)
    return {
        "format": EXPORT_FORMAT,
        "since": iso_utc(since),
        "schema_version": SCHEMA_VERSION,
        "sessions": sessions,
    }


def export_csv(store: Store, *, since: float | None = None) -> str:
    """One row per session; fluence and phases flattened into columns.

    Per wavelength: ``planned_<nm>nm_j_cm2`` and ``delivered_<nm>nm_j_cm2``; per phase i:
    ``phase<i>_name``, ``phase<i>_started_at``, ``phase<i>_ended_at``,
    ``phase<i>_derated`` and ``phase<i>_delivered_<nm>nm_j_cm2``. Columns are the union
    over the exported sessions; a cell a session has no value for is empty.
    """
    import csv

    rows = store.sessions(since=since, newest_first=False)
    phases = {r.id: store.phases(r.id) for r in rows}
    wls = sorted({wl for r in rows for wl in (*r.planned_fluence, *r.delivered_fluence)})
    n_phases = max((len(p) for p in phases.values()), default=0)
    phase_wls = sorted({wl for ps in phases.values() for p in ps for wl in p.delivered_fluence})
    columns = list(CSV_COLUMNS)
    columns += [f"planned_{wl}nm_j_cm2" for wl in wls]
    columns += [f"delivered_{wl}nm_j_cm2" for wl in wls]
    for i in range(n_phases):
        columns += [
            f"phase{i}_name",
            f"phase{i}_started_at",
            f"phase{i}_ended_at",
            f"phase{i}_derated",
        ]
        columns += [f"phase{i}_delivered_{wl}nm_j_cm2" for wl in phase_wls]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        d = r.to_dict(full=True)
        cells: dict[str, Any] = {k: d[k] for k in CSV_COLUMNS}
        for wl in wls:
            cells[f"planned_{wl}nm_j_cm2"] = r.planned_fluence.get(wl, "")
            cells[f"delivered_{wl}nm_j_cm2"] = r.delivered_fluence.get(wl, "")
        for p in phases[r.id]:
            pre = f"phase{p.index}_"
            if f"{pre}name" not in columns:
                continue  # a phase index beyond the union (sparse indices)
            cells[pre + "name"] = p.name
            cells[pre + "started_at"] = iso_utc(p.started_at, ms=True)
            cells[pre + "ended_at"] = iso_utc(p.ended_at, ms=True)
            cells[pre + "derated"] = p.derated
            for wl in phase_wls:
                cells[f"{pre}delivered_{wl}nm_j_cm2"] = p.delivered_fluence.get(wl, "")
        writer.writerow({k: _csv_cell(v) for k, v in cells.items()})
    return out.getvalue()


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value

"""Session statuses, the schema of the session log and its ordered migrations."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass


#: ``PRAGMA application_id`` of an lllt session log ("LLLT")
APPLICATION_ID = 0x4C4C4C54

ENV_DB = "LLLT_DB"
UPGRADE_ADVICE = "Upgrade lllt (pip install -U lllt) to read this session log."


class Status(StrEnum):
    """A session's status in the log. ``pending`` (the row exists, START not yet confirmed) and
    ``running`` are open; a session ends ``completed``, ``aborted`` (by the monitor or the
    device), ``stopped`` (by the user, emitters confirmed off), ``failed`` or
    ``interrupted`` (the host lost track of it, or could not confirm a stop: counted at its
    planned dose); ``reconciled`` is an interrupted session settled later from the device's
    own record."""

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

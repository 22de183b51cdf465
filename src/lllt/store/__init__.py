"""The session log: every session, its phases, events and telemetry, in SQLite.

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

One job per module: ``schema`` (statuses, schema, migrations), ``paths``, ``owner``
(which process owns a running session), ``rows`` (the row types), ``db`` (:class:`Store`:
opening, queries, reconciliation), ``recorder`` (:class:`SessionRecorder`) and ``export``.
Import ``lllt.store``; every public name is re-exported here.
"""

from __future__ import annotations

from lllt.store.db import (
    Store,
)
from lllt.store.export import (
    CSV_COLUMNS,
    EXPORT_FORMAT,
    export_csv,
    export_json,
)
from lllt.store.owner import (
    HOST_NAME,
    PROCESS_TOKEN,
)
from lllt.store.paths import (
    default_db_path,
    resolve_db_path,
)
from lllt.store.recorder import (
    SessionRecorder,
)
from lllt.store.rows import (
    ChannelRef,
    EventRow,
    PhasePlan,
    PhaseRow,
    SessionRow,
    SessionStart,
    TelemetryRow,
    iso_utc,
    wavelength_fluence,
)
from lllt.store.schema import (
    APPLICATION_ID,
    ENV_DB,
    FINAL_STATUSES,
    MIGRATIONS,
    OPEN_STATUSES,
    SCHEMA_VERSION,
    UPGRADE_ADVICE,
    Kept,
    Status,
)

__all__ = [
    "APPLICATION_ID",
    "CSV_COLUMNS",
    "ENV_DB",
    "EXPORT_FORMAT",
    "FINAL_STATUSES",
    "HOST_NAME",
    "MIGRATIONS",
    "OPEN_STATUSES",
    "PROCESS_TOKEN",
    "SCHEMA_VERSION",
    "UPGRADE_ADVICE",
    "ChannelRef",
    "EventRow",
    "Kept",
    "PhasePlan",
    "PhaseRow",
    "SessionRecorder",
    "SessionRow",
    "SessionStart",
    "Status",
    "Store",
    "TelemetryRow",
    "default_db_path",
    "export_csv",
    "export_json",
    "iso_utc",
    "resolve_db_path",
    "wavelength_fluence",
]

"""What preflight needs to know about past sessions, as a small interface.

The session log (``lllt.store``) implements :class:`History`; :class:`MemoryHistory` is
the in-memory implementation for tests and scripts. Times are epoch seconds; fluence is
J/cm² per wavelength, counted the way the plan counts it (the most any channel of that
wavelength delivered).

Rules an implementation must follow, because the safety checks rely on them:

- count *delivered* fluence; for a session whose delivered fluence is not known (a host
  killed mid-session and not yet reconciled) count its *planned* fluence, and for its end
  time the start plus its planned maximum duration: not knowing must never allow more;
- a session counts (for spacing and sessions per week) when it emitted at all, whatever
  its outcome: an aborted session still exposed the scalp;
- ``fluence_since(t, wl)`` counts every session that *ended* after ``t`` (a session
  overlapping the start of a window counts in full, which is conservative); a session
  leaves a window of length W exactly W after it ended.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class PastSession:
    """One past session as the safety checks see it."""

    start: float  # epoch seconds
    end: float  # epoch seconds (or start + planned maximum when unknown)
    fluence_j_cm2: Mapping[int, float] = field(default_factory=dict)  # per wavelength nm
    min_interval_s: float | None = None  # that session's protocol's own minimum interval
    protocol_id: str = ""


@runtime_checkable
class History(Protocol):
    """What preflight reads about past sessions: times in epoch seconds, fluence in J/cm² per
    wavelength. The module docstring gives the rules an implementation must follow."""

    def sessions_since(self, t: float) -> Sequence[PastSession]:
        """Sessions that ended after ``t``, oldest first."""
        ...

    def last_session_end(self) -> float | None:
        """End of the most recent session, or None when there is none."""
        ...

    def last_min_interval_s(self) -> float | None:
        """The minimum interval the most recent session's protocol asked for, if any."""
        ...

    def fluence_since(self, t: float, wavelength_nm: int) -> float:
        """J/cm² of one wavelength delivered by sessions that ended after ``t``."""
        ...


class MemoryHistory:
    """A :class:`History` over a list of :class:`PastSession`."""

    def __init__(self, sessions: Iterable[PastSession] = ()) -> None:
        self._sessions = sorted(sessions, key=lambda s: s.end)

    def add(self, session: PastSession) -> None:
        """Add one past session (the list stays in order of end time)."""
        self._sessions.append(session)
        self._sessions.sort(key=lambda s: s.end)

    def sessions_since(self, t: float) -> Sequence[PastSession]:
        """Sessions that ended after ``t``, oldest end first."""
        return [s for s in self._sessions if s.end > t]

    def last_session_end(self) -> float | None:
        """End of the session that ended last, or None when there is none."""
        return self._sessions[-1].end if self._sessions else None

    def last_min_interval_s(self) -> float | None:
        """The minimum interval (s) the last session's protocol asked for, if any."""
        return self._sessions[-1].min_interval_s if self._sessions else None

    def fluence_since(self, t: float, wavelength_nm: int) -> float:
        """J/cm² of one wavelength delivered by sessions that ended after ``t``."""
        return sum(s.fluence_j_cm2.get(wavelength_nm, 0.0) for s in self._sessions if s.end > t)


class StoreHistory(MemoryHistory):
    """A :class:`History` over the session log (``lllt.store.Store``), read once.

    ``simulated`` picks one kind of session: simulator sessions never count against a
    real scalp and real ones never block a simulator run. A session the host lost and
    the device has not yet reconciled (status ``interrupted``) counts with the larger of
    its planned and last-checkpointed fluence, per wavelength: not knowing never allows
    more. Its end is the store's ``effective_end`` (start + expected duration at least).
    A row still in a host's hands (``pending``, ``running``: another ``lllt run`` at this
    moment) counts the same way, so two runs on one log cannot both pass the checks.
    """

    def __init__(self, store: Any, *, simulated: bool) -> None:
        rows = store.sessions(simulated=simulated, newest_first=False)
        super().__init__(_past_session(r) for r in rows if r.counts)


def _past_session(row: Any) -> PastSession:
    fluence = dict(row.delivered_fluence)
    if str(row.status) in ("interrupted", "pending", "running") and row.reconciled_at is None:
        for wl, f in row.planned_fluence.items():
            fluence[wl] = max(fluence.get(wl, 0.0), f)
    start = row.started_at if row.started_at is not None else row.created_at
    return PastSession(
        start=start,
        end=row.effective_end,
        fluence_j_cm2=fluence,
        min_interval_s=row.min_interval_s,
        protocol_id=row.protocol_id,
    )


EMPTY_HISTORY = MemoryHistory()

"""Courses of treatment: when sessions are due, and where a person stands in a course.

A protocol's ``[schedule]`` gives a course either as stages (``[[schedule.stages]]``, each
a session ``every`` so often for a ``length``) or as one stage derived from the course
length and the weekly count (``course`` and ``max_sessions_per_week``: a session every
7 days / count). :func:`due_offsets` lists when each session of the course is due,
counted from the start of the course (the start of its first session).

:func:`course_status` reads a person's sessions of one protocol and says how many are done
and due, the adherence, the dose per week and in total, and the next due and next allowed
time. It only reads: it never decides whether a session may run (preflight does).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lllt.errors import InvalidInput

if TYPE_CHECKING:
    import random

    from lllt.session import RunOptions
    from lllt.store import Store

DAY = 86_400.0
WEEK = 7 * DAY


@dataclass(frozen=True)
class CourseStage:
    """One stage of a course: a session every ``every_s`` seconds for ``length_s`` seconds."""

    name: str
    every_s: float
    length_s: float

    @property
    def sessions(self) -> int:
        """Sessions in the stage: how many intervals fit in its length, at least one."""
        return max(1, math.floor(self.length_s / self.every_s + 1e-9))


def course_stages(protocol: Any) -> list[CourseStage]:
    """The stages of the protocol's course; InvalidInput if it describes none."""
    schedule = protocol.schedule
    if schedule is not None and schedule.stages:
        return [
            CourseStage(s.name or f"stage {i + 1}", s.every, s.length)
            for i, s in enumerate(schedule.stages)
        ]
    if schedule is None or schedule.course is None:
        raise InvalidInput(
            f"protocol {protocol.id!r} gives no course length",
            advice='Add [schedule] course = "16 weeks" (or stages) to the protocol.',
        )
    if schedule.max_sessions_per_week:
        every = WEEK / schedule.max_sessions_per_week
    elif schedule.min_interval:
        every = max(schedule.min_interval, DAY)
    else:
        every = DAY
    if schedule.min_interval is not None:
        # a course never plans sessions closer than the protocol allows
        every = max(every, schedule.min_interval)
    return [CourseStage("course", every, schedule.course)]


def due_offsets(protocol: Any) -> list[float]:
    """Seconds from the start of the course at which each session is due."""
    out: list[float] = []
    start = 0.0
    for stage in course_stages(protocol):
        out += [start + k * stage.every_s for k in range(stage.sessions)]
        start += stage.length_s
    return out


def course_length_s(protocol: Any) -> float:
    """The course's length in seconds (all its stages); InvalidInput if it describes none."""
    return sum(s.length_s for s in course_stages(protocol))


@dataclass
class SessionEntry:
    """One session of the course as the log has it (only what the report needs)."""

    start: float
    status: str
    fluence_j_cm2: dict[int, float]

    @property
    def done(self) -> bool:
        """True when the session completed."""
        return self.status == "completed"


@dataclass
class CourseStatus:
    """Where a course stands (see :func:`course_status`). Times are epoch seconds, doses
    J/cm² per wavelength (nm); ``weeks`` is (done, due) for each week from the start."""

    protocol_id: str
    protocol_name: str
    start: float | None
    now: float
    sessions_planned: int
    sessions_due: int  # due by now
    sessions_done: int  # completed
    sessions_incomplete: int  # started but not completed (aborted, stopped, ...)
    adherence: float | None  # done / due, None before anything is due
    cumulative_j_cm2: dict[int, float]
    last_7_days_j_cm2: dict[int, float]
    mean_per_week_j_cm2: dict[int, float]
    next_due: float | None
    next_allowed: float | None
    course_end: float | None
    weeks: list[tuple[int, int]] = field(default_factory=list)  # (done, due) per week

    def to_dict(self) -> dict[str, Any]:
        """The status as JSON-able data (``lllt course --json``), fluence rounded to 1e-6 J/cm²."""

        def wl(d: dict[int, float]) -> dict[str, float]:
            return {str(k): round(v, 6) for k, v in sorted(d.items())}

        return {
            "protocol_id": self.protocol_id,
            "protocol_name": self.protocol_name,
            "start": self.start,
            "now": self.now,
            "sessions_planned": self.sessions_planned,
            "sessions_due": self.sessions_due,
            "sessions_done": self.sessions_done,
            "sessions_incomplete": self.sessions_incomplete,
            "adherence": self.adherence,
            "cumulative_fluence_j_cm2": wl(self.cumulative_j_cm2),
            "last_7_days_fluence_j_cm2": wl(self.last_7_days_j_cm2),
            "mean_per_week_fluence_j_cm2": wl(self.mean_per_week_j_cm2),
            "next_due": self.next_due,
            "next_allowed": self.next_allowed,
            "course_end": self.course_end,
            "weeks": [{"done": d, "due": u} for d, u in self.weeks],
        }


def course_status(
    protocol: Any,
    sessions: Sequence[SessionEntry],
    now: float,
    *,
    next_allowed: float | None = None,
) -> CourseStatus:
    """Where the course stands at ``now``, from the sessions of this protocol (any order)."""
    offsets = due_offsets(protocol)
    entries = sorted(sessions, key=lambda s: s.start)
    start = entries[0].start if entries else None
    done = [s for s in entries if s.done]
    cumulative: dict[int, float] = {}
    week: dict[int, float] = {}
    for s in entries:  # delivered fluence counts, complete or not
        for w, f in s.fluence_j_cm2.items():
            if f <= 0:
                continue  # a wavelength the protocol does not use
            cumulative[w] = cumulative.get(w, 0.0) + f
            if s.start > now - WEEK:
                week[w] = week.get(w, 0.0) + f
    if start is None:
        return CourseStatus(
            protocol.id, protocol.name, None, now, len(offsets), 0, 0, 0, None, {}, {}, {},
            next_due=now, next_allowed=next_allowed, course_end=None,
        )  # fmt: skip
    elapsed = max(0.0, now - start)
    due = sum(1 for t in offsets if t <= elapsed + 1e-6)
    weeks_elapsed = max(1.0, elapsed / WEEK)
    mean = {w: f / weeks_elapsed for w, f in cumulative.items()}
    next_due = start + offsets[len(done)] if len(done) < len(offsets) else None
    n_weeks = max(1, math.ceil(min(elapsed, offsets[-1] + 1) / WEEK + 1e-9))
    weeks = []
    for k in range(n_weeks):
        lo, hi = start + k * WEEK, start + (k + 1) * WEEK
        weeks.append(
            (
                sum(1 for s in done if lo <= s.start < hi),
                sum(1 for t in offsets if lo <= start + t < hi and start + t <= now + 1e-6),
            )
        )
    return CourseStatus(
        protocol_id=protocol.id,
        protocol_name=protocol.name,
        start=start,
        now=now,
        sessions_planned=len(offsets),
        sessions_due=due,
        sessions_done=len(done),
        sessions_incomplete=len(entries) - len(done),
        adherence=(min(len(done), due) / due) if due else None,
        cumulative_j_cm2=cumulative,
        last_7_days_j_cm2=week,
        mean_per_week_j_cm2=mean,
        next_due=next_due,
        next_allowed=next_allowed,
        course_end=start + course_length_s(protocol),
        weeks=weeks,
    )


def status_lines(status: CourseStatus, when: Any) -> list[str]:
    """The text of ``lllt course``; ``when`` formats an epoch time for people."""

    def wl(d: dict[int, float]) -> str:
        return ", ".join(f"{k} nm {v:.2f}" for k, v in sorted(d.items())) or "none"

    out = [f"course of {status.protocol_id}: {status.protocol_name}"]
    if status.start is None:
        out.append("  no session of this protocol in the log yet; the course starts with the first")
        out.append(f"  sessions in the course: {status.sessions_planned}")
        return out
    adherence = "-" if status.adherence is None else f"{status.adherence * 100:.0f} %"
    out += [
        f"  started {when(status.start)}; course ends {when(status.course_end)}",
        f"  sessions: {status.sessions_done} done of {status.sessions_due} due so far "
        f"({status.sessions_planned} in the course); {status.sessions_incomplete} incomplete",
        f"  adherence: {adherence}",
        f"  dose, last 7 days (J/cm²): {wl(status.last_7_days_j_cm2)}",
        f"  dose per week on average (J/cm²): {wl(status.mean_per_week_j_cm2)}",
        f"  cumulative dose (J/cm²): {wl(status.cumulative_j_cm2)}",
    ]
    if status.next_due is None:
        out.append("  next due: none, the course is complete")
    else:
        late = " (overdue)" if status.next_due < status.now else ""
        out.append(f"  next due: {when(status.next_due)}{late}")
    if status.next_allowed is not None:
        out.append(f"  next allowed: {when(max(status.next_allowed, status.now))}")
    out.append("  week  done/due")
    for k, (done, due) in enumerate(status.weeks):
        bar = "#" * done + "." * max(0, due - done)
        out.append(f"  {k + 1:>4}  {done:>2}/{due:<2} {bar}")
    return out


# --- course simulation -----------------------------------------------------------------------


@dataclass
class SimulatedSession:
    """One session of a simulated course: its index, due time (epoch s), status and reason,
    the fault drawn for it, the fluence delivered (J/cm² per wavelength), its wall time (s)
    and how long after its due time it started (s)."""

    index: int
    due: float
    status: str  # completed, aborted, ..., "missed" (drawn) or "refused" (preflight)
    reason: str = ""
    fault: str = ""
    delivered_j_cm2: dict[int, float] = field(default_factory=dict)
    wall_s: float = 0.0
    delayed_s: float = 0.0  # started this long after its due time (the spacing said wait)

    def to_dict(self) -> dict[str, Any]:
        """The session as JSON-able data."""
        return {
            "index": self.index,
            "due": self.due,
            "status": self.status,
            "reason": self.reason,
            "fault": self.fault,
            "delayed_s": round(self.delayed_s, 1),
            "delivered_fluence_j_cm2": {str(k): v for k, v in sorted(self.delivered_j_cm2.items())},
            "wall_s": round(self.wall_s, 4),
        }


def _with_fault(url: str, fault: str) -> str:
    if not fault:
        return url
    if "faults=" in url:
        return url.replace("faults=", f"faults={fault},", 1)
    return url + ("&" if "?" in url else "?") + f"faults={fault}"


def simulate_course(
    protocol: Any,
    protocol_text: str,
    device: str,
    db: str,
    *,
    seed: int = 0,
    miss: float = 0.0,
    interrupt: float = 0.0,
    research_ok: bool = False,
    telemetry_hz: float = 2.0,
) -> dict[str, Any]:
    """Run a whole course on the virtual calendar of an in-process simulator.

    Every session starts at its due time (the calendar jumps between sessions); a session
    is missed with probability ``miss`` and interrupted (the cap taken off the head for
    30 s to 8 min, so a long one aborts) with probability ``interrupt``, both drawn from
    ``seed``. Sessions are logged in ``db``, which must not be the person's own log.
    Returns the course report (``status`` as :meth:`CourseStatus.to_dict`, ``sessions``).
    """
    import random
    import time

    from lllt import clock
    from lllt.session import RunOptions
    from lllt.transport import wants_virtual_clock

    _require_simulator(device)
    virtual, speed = wants_virtual_clock(device)
    offsets = due_offsets(protocol)
    # a course is about dose over weeks: 2 Hz telemetry is plenty, and the monitor still
    # checks every frame (a single `lllt run` uses 10 Hz)
    options = RunOptions(research_ok=research_ok, telemetry_hz=telemetry_hz)
    course = _SimulatedCourse(
        protocol, protocol_text, device, options, random.Random(seed), miss, interrupt
    )
    wall_start = time.perf_counter()
    results, t0, t_end = clock.run(_run_course(course, offsets, db), virtual=virtual, speed=speed)
    wall = time.perf_counter() - wall_start
    return {
        "protocol_id": protocol.id,
        "device": device,
        "seed": seed,
        "miss": miss,
        "interrupt": interrupt,
        "db": db,
        **_course_report(protocol, offsets, results, t0, t_end, wall),
    }


def _require_simulator(device: str) -> None:
    """InvalidInput unless ``device`` is an in-process simulator (a sim:// URL)."""
    from lllt.transport import parse_url

    if parse_url(device).scheme != "sim":
        raise InvalidInput(
            f"course simulation runs on an in-process simulator, not {device!r}",
            advice='Give --device "sim://PROFILE?speed=max".',
        )


@dataclass(frozen=True)
class _SimulatedCourse:
    """What every session of a simulated course shares, and the draws of the seed."""

    protocol: Any
    protocol_text: str
    device: str
    options: RunOptions
    rng: random.Random
    miss: float
    interrupt: float

    def draw(self) -> tuple[bool, str]:
        """Whether the next session is missed, and the fault that interrupts it ("" for none)."""
        missed = self.rng.random() < self.miss
        fault = ""
        if self.rng.random() < self.interrupt:
            at = self.rng.uniform(0.1, 0.8) * self.protocol.expected_duration_s
            fault = f"head_off@{at:.0f}s+{self.rng.uniform(30, 480):.0f}s"
        return missed, fault


async def _run_course(
    course: _SimulatedCourse, offsets: list[float], db: str
) -> tuple[list[SimulatedSession], float, float]:
    """Every session of the course at its due time; the sessions, the course's start and end."""
    import asyncio

    from lllt import clock
    from lllt.store import Store

    results: list[SimulatedSession] = []
    store = Store.open(db)
    try:
        t0 = clock.wall_time()
        for index, offset in enumerate(offsets):
            wait = t0 + offset - clock.wall_time()
            if wait > 0:
                await asyncio.sleep(wait)
            due = t0 + offset
            missed, fault = course.draw()
            if missed:
                results.append(SimulatedSession(index, due, "missed", "drawn from the seed"))
                continue
            results.append(await _run_session(course, store, index, due, fault))
        return results, t0, clock.wall_time()
    finally:
        store.close()


async def _run_session(
    course: _SimulatedCourse, store: Store, index: int, due: float, fault: str
) -> SimulatedSession:
    """One session of the course; a refusal that names a time within a day is tried again then."""
    import asyncio
    import time

    from lllt import clock
    from lllt.device import Cap
    from lllt.errors import LlltError
    from lllt.session import SessionRunner

    started = time.perf_counter()
    entry = SimulatedSession(index, due, "failed", fault=fault)
    for attempt in range(2):
        try:
            async with Cap.connect(_with_fault(course.device, fault)) as cap:
                runner = SessionRunner(
                    cap,
                    store,
                    course.protocol,
                    protocol_text=course.protocol_text,
                    options=course.options,
                )
                outcome = await runner.run()
            entry.status = outcome.status
            entry.reason = outcome.reason
            entry.delivered_j_cm2 = dict(outcome.delivered_fluence)
            break
        except LlltError as err:  # a preflight refusal or a device problem
            entry.status = "refused" if err.exit_code == 1 else "failed"
            entry.reason = " ".join(str(err).split())
            later = getattr(err, "next_allowed_at", None)
            # a person told "allowed in 16 min" tries again then, once
            if attempt or later is None or later - clock.wall_time() > DAY:
                break
            entry.delayed_s = later - due
            await asyncio.sleep(max(0.0, later - clock.wall_time()))
    entry.wall_s = time.perf_counter() - started
    return entry


def _course_report(
    protocol: Any,
    offsets: list[float],
    results: list[SimulatedSession],
    t0: float,
    t_end: float,
    wall: float,
) -> dict[str, Any]:
    """The course report's counts, dose, wall times, status and sessions."""
    entries = [
        SessionEntry(r.due, r.status, r.delivered_j_cm2)
        for r in results
        if r.status not in ("missed",)
    ]
    end = t0 + course_length_s(protocol)
    status = course_status(protocol, entries, max(end, t_end)) if entries else None
    ran = [r for r in results if r.status not in ("missed", "refused")]
    return {
        "course_start": t0,
        "sessions_planned": len(offsets),
        "sessions_missed": sum(r.status == "missed" for r in results),
        "sessions_completed": sum(r.status == "completed" for r in results),
        "sessions_refused": sum(r.status == "refused" for r in results),
        "sessions_other": sum(r.status not in ("missed", "completed", "refused") for r in results),
        "adherence": (
            sum(r.status == "completed" for r in results) / len(offsets) if offsets else None
        ),
        "cumulative_fluence_j_cm2": (
            status.to_dict()["cumulative_fluence_j_cm2"] if status else {}
        ),
        "mean_per_week_fluence_j_cm2": (
            status.to_dict()["mean_per_week_fluence_j_cm2"] if status else {}
        ),
        "wall_s": round(wall, 3),
        "wall_per_session_s": round(sum(r.wall_s for r in ran) / len(ran), 4) if ran else None,
        "status": status.to_dict() if status else None,
        "sessions": [r.to_dict() for r in results],
    }

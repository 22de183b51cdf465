"""The invariants, checked against the device's ground truth after the final reconciliation.

- **I1** the log never records less energy than the device delivered, and every session
  the device ran counts for spacing (in every log, after the reconcile path);
- **I2** after the host decides to stop, the emitters are off within the documented bound,
  or the record says the stop was not confirmed: a host that records a session as ended
  (completed, stopped, aborted, failed) while the device still emitted is a violation, as
  is a host that takes longer than its bound to end, or an ABORT from another client
  (any payload length) that does not stop the device within one control tick;
- **I3** no emission without an authenticated upload and start that passed the host's
  gates: every session on the device is a plan a host started, once; a wavelength outside
  the clinically evidenced band only with ``--research``;
- **I4** no zone reads at or above the device's cut-off in a sample sent while emitting,
  and no emission off the head for more than 5 s unless a host decided to stop within
  those 5 s (even with a device whose own head interlock is broken: the host's
  head-present rule must act; I2 then covers the stop itself);
- **I5** spacing, sessions per week, and the per-session, 24 h and 7 day fluence limits
  hold over the device's true sessions;
- **I6** after reconciliation the log agrees with the device's records: no row left
  pending, running or interrupted when the device's record of it is readable, one row
  per plan, delivered fluence equal to the record's (never below it after a power loss).

Plus: the host never crashes with a traceback (``crash``), and the reconcile path works
(``final``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lllt import wire as W
from lllt.explore.runner import Result, RunRecord

DAY = 86400.0
WEEK = 7 * DAY
EPS_J = 1.5e-6  # J/cm²: records carry whole µJ/cm²
PLANNED_SLACK = 1e-3  # relative, for a dose counted from the plan rather than a record
EVIDENCED_BAND_NM = (630, 680)
#: emission off the head: the device pauses at once; a host whose device does not must
#: stop it after two samples (at 1 Hz, 2 s) and an ABORT
OFF_HEAD_S = 5.0
_OPEN = ("pending", "running")
_OFF_CLAIMS = ("completed", "aborted", "stopped", "failed")


@dataclass
class Violation:
    """One broken invariant (``I1``-``I6``, or ``crash``, ``final``, ``explorer``), with its
    message and details."""

    invariant: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The violation as JSON-able data."""
        return {"invariant": self.invariant, "message": self.message, "details": self.details}

    def __str__(self) -> str:
        return f"{self.invariant}: {self.message}"


def _limits() -> Any:
    from lllt.safety import DEFAULT_LIMITS

    return DEFAULT_LIMITS


def _true_by_wavelength(fluence_uj: tuple[int, ...], waves: tuple[int, ...]) -> dict[int, float]:
    out: dict[int, float] = {}
    for f, wl in zip(fluence_uj, waves, strict=False):
        out[wl] = max(out.get(wl, 0.0), f / 1e6)
    return out


def _counted(row: Any) -> dict[int, float]:
    """What the log counts for a row (lllt.safety.history's rule)."""
    fluence = dict(row.delivered_fluence)
    if str(row.status) in ("interrupted", *_OPEN) and row.reconciled_at is None:
        for wl, f in row.planned_fluence.items():
            fluence[wl] = max(fluence.get(wl, 0.0), f)
    return fluence


def check(result: Result) -> list[Violation]:
    """Every invariant against the device's truth, in order: crash, final, then I1 to I6."""
    truth = result.truth
    by_plan = {r.plan_id: r for r in result.runs if r.plan_id is not None}
    emitted = [s for s in truth.sessions if s.emit_ms > 0 or any(f > 0 for f in s.fluence_uj)]
    out = _host_failures(result)
    out += _energy_checks(result, emitted, by_plan)  # I1
    for r in result.runs:  # I2
        out += _stop_checks(r, result)
    out += _start_checks(truth, by_plan)  # I3
    out += _zone_checks(truth)  # I4
    out += _off_head_checks(result)  # I4
    out += _spacing(emitted, by_plan, truth.channel_wavelengths)  # I5
    out += _record_checks(result)  # I6
    return out


def _host_failures(result: Result) -> list[Violation]:
    """A host run that crashed with a traceback, and a reconcile path that failed."""
    out: list[Violation] = []
    for r in result.runs:
        if r.crash:
            out.append(Violation("crash", f"run {r.index} raised a traceback", {"tb": r.crash}))
    if result.final_error:
        out.append(Violation("final", f"the reconcile path failed: {result.final_error}"))
    return out


def _energy_checks(
    result: Result, emitted: list[Any], by_plan: dict[int, RunRecord]
) -> list[Violation]:
    """I1 in every log: a row for each session the device ran, counted at no less energy."""
    out: list[Violation] = []
    truth = result.truth
    on_device = {rec.plan_id for rec in result.records}
    for log, rows in result.logs.items():
        mine = [row for row in rows if row.device_serial == truth.serial]
        for s in emitted:
            run = by_plan.get(s.plan_id)
            if (run is None or run.log != log) and s.plan_id not in on_device:
                continue  # run from another log, and its record is gone from the cap
            out += _session_energy(log, mine, s, truth.channel_wavelengths)
    return out


def _session_energy(log: int, mine: list[Any], s: Any, waves: tuple[int, ...]) -> list[Violation]:
    """I1 for one session the device ran: its row in ``log`` counts, and counts enough."""
    match = [row for row in mine if row.plan_id == s.plan_id]
    true_wl = _true_by_wavelength(s.fluence_uj, waves)
    if not match:
        return [
            Violation(
                "I1",
                f"log {log} has no row for plan {s.plan_id}, which the device ran "
                f"({_fmt(true_wl)})",
                {"log": log, "plan_id": s.plan_id},
            )
        ]
    out: list[Violation] = []
    row = match[0]
    if not row.counts:
        out.append(
            Violation(
                "I1",
                f"log {log}: session {row.id} (plan {s.plan_id}) ran on the device "
                f"but does not count for spacing (status {row.status})",
                {"log": log, "row": row.id},
            )
        )
    counted = _counted(row)
    # a row counted at its planned dose (the device's record never read): the plan's
    # arithmetic, which the device's 10 ms ticks overshoot by a tick at most
    slack = PLANNED_SLACK if str(row.status) in ("interrupted", *_OPEN) else 0.0
    for wl, f in true_wl.items():
        if counted.get(wl, 0.0) * (1.0 + slack) + EPS_J < f:
            out.append(
                Violation(
                    "I1",
                    f"log {log}: session {row.id} (plan {s.plan_id}) counts "
                    f"{counted.get(wl, 0.0):.6f} J/cm² at {wl} nm; the device delivered "
                    f"{f:.6f} ({s.outcome})",
                    {"log": log, "row": row.id, "status": str(row.status)},
                )
            )
    return out


def _start_checks(truth: Any, by_plan: dict[int, RunRecord]) -> list[Violation]:
    """I3: each session on the device a plan a host started, once, in the band it allowed."""
    out: list[Violation] = []
    waves = truth.channel_wavelengths
    seen: set[int] = set()
    for s in truth.sessions:
        if s.plan_id in seen:
            out.append(Violation("I3", f"plan {s.plan_id} ran twice on the device"))
        seen.add(s.plan_id)
        run = by_plan.get(s.plan_id)
        if run is None or not run.start_sent:
            out.append(Violation("I3", f"plan {s.plan_id} ran without a host starting it"))
            continue
        lo, hi = EVIDENCED_BAND_NM
        outside = sorted({waves[i] for i in s.channels_on if not lo <= waves[i] <= hi})
        if outside and not run.research_ok:
            out.append(
                Violation(
                    "I3",
                    f"run {run.index} emitted {outside} nm, outside the evidenced band, "
                    "without --research",
                    {"plan_id": s.plan_id},
                )
            )
    return out


def _zone_checks(truth: Any) -> list[Violation]:
    """I4: no zone read at or above the cut-off in a sample sent while emitting."""
    if truth.max_emitting_c >= truth.cutoff_c:
        return [
            Violation(
                "I4",
                f"a zone read {truth.max_emitting_c:.2f} °C while emitting (cut-off "
                f"{truth.cutoff_c:g} °C) at t={truth.max_emitting_at:.1f} s",
            )
        ]
    return []


def _off_head_checks(result: Result) -> list[Violation]:
    """I4: emission off the head past 5 s only if a watching host decided to stop in time."""
    out: list[Violation] = []
    decisions = sorted(t for r in result.runs for t, _ in r.stop_decisions)
    for start, length in result.truth.off_head:
        watched = any(
            r.killed_t is None and r.finished_t is not None and r.started_t <= start <= r.finished_t
            for r in result.runs
        )
        # a host that cannot see (its telemetry lost on the link) cannot apply the rule
        blind = any(
            start - 60.0 <= t <= start + OFF_HEAD_S for r in result.runs for t in r.link_faults
        )
        if length <= OFF_HEAD_S or not watched or blind:  # a broken device unwatched
            continue
        if not any(start <= t <= start + OFF_HEAD_S for t in decisions):
            out.append(
                Violation(
                    "I4",
                    f"the cap emitted off the head for {length:.1f} s from t={start:.1f} s and "
                    f"no host decided to stop within {OFF_HEAD_S:g} s",
                )
            )
    return out


def _record_checks(result: Result) -> list[Violation]:
    """I6 in every log: each row of this cap agrees with the device's record of its plan."""
    out: list[Violation] = []
    records = {rec.plan_id: rec for rec in result.records}
    for log, rows in result.logs.items():
        mine = [row for row in rows if row.device_serial == result.truth.serial]
        plans: dict[int, int] = {}
        for row in mine:
            out += _row_record_checks(log, row, plans, records)
    return out


def _row_record_checks(
    log: int, row: Any, plans: dict[int, int], records: dict[int, Any]
) -> list[Violation]:
    """I6 for one row: not left open, the only row of its plan, its record's fluence."""
    out: list[Violation] = []
    status = str(row.status)
    if status in _OPEN:
        out.append(
            Violation(
                "I6",
                f"log {log}: session {row.id} was left {status} after every host ended",
                {"log": log, "row": row.id},
            )
        )
    if row.plan_id is None:
        return out
    if row.plan_id in plans:
        out.append(
            Violation(
                "I6",
                f"log {log}: sessions {plans[row.plan_id]} and {row.id} are both plan "
                f"{row.plan_id}",
            )
        )
    plans[row.plan_id] = row.id
    rec = records.get(row.plan_id)
    if rec is None or rec.outcome == W.Outcome.RUNNING:
        return out
    if status == "interrupted":
        out.append(
            Violation(
                "I6",
                f"log {log}: session {row.id} is still interrupted although the "
                f"device's record of plan {row.plan_id} ({rec.outcome.name.lower()}) was "
                "readable",
                {"log": log, "row": row.id},
            )
        )
        return out
    return out + _fluence_disagreement(log, row, rec, status)


def _fluence_disagreement(log: int, row: Any, rec: Any, status: str) -> list[Violation]:
    """I6: the first channel whose fluence in the row differs from the device's record."""
    got = row.delivered_by_channel
    for ch, f in zip((c.id for c in row.channels), rec.fluence, strict=False):
        have = got.get(ch, 0.0)
        low = have + EPS_J < f
        high = rec.outcome != W.Outcome.POWER_LOSS and have > f + max(EPS_J, 0.01 * f)
        if low or high:
            return [
                Violation(
                    "I6",
                    f"log {log}: session {row.id} (plan {row.plan_id}, {status}) has "
                    f"{have:.6f} J/cm² on channel {ch}; the device's record says {f:.6f} "
                    f"({rec.outcome.name.lower()})",
                    {"log": log, "row": row.id},
                )
            ]
    return []


def _fmt(wl: dict[int, float]) -> str:
    return ", ".join(f"{w} nm {f:.4f} J/cm²" for w, f in sorted(wl.items()))


def _stop_checks(r: RunRecord, result: Result) -> list[Violation]:
    out: list[Violation] = []
    truth = result.truth
    s = truth.session(r.plan_id) if r.plan_id is not None else None
    if r.killed_t is None and r.claim is not None and r.finished_t is not None:
        status, outcome = r.claim["status"], r.claim["outcome"]
        claims_off = status in _OFF_CLAIMS and outcome != "stop_not_confirmed"
        if claims_off and s is not None and (s.end_t is None or s.end_t > r.finished_t + 1e-3):
            end = "never stopped" if s.end_t is None else f"emitted until t={s.end_t:.3f} s"
            out.append(
                Violation(
                    "I2",
                    f"run {r.index} recorded session {r.session_id} as {status} "
                    f"({outcome}) at t={r.finished_t:.3f} s; the device {end}",
                    {"run": r.index, "plan_id": r.plan_id},
                )
            )
    opts = r.options
    for t_d, why in r.stop_decisions:
        if why.startswith("estop"):
            running = next(
                (
                    x
                    for x in truth.sessions
                    if x.start_t <= t_d and (x.end_t is None or x.end_t > t_d)
                ),
                None,
            )
            if running is not None and (running.end_t is None or running.end_t > t_d + 0.05):
                out.append(
                    Violation(
                        "I2",
                        f"an ABORT of {why.split(':')[1]} payload bytes from another client at "
                        f"t={t_d:.3f} s did not stop plan {running.plan_id}",
                    )
                )
            continue
        if opts is None:
            continue
        # the emitters off within the bound, or a record saying the stop was not confirmed
        off_by = t_d + opts.stop_confirm_s + 5.0
        killed_meanwhile = r.killed_t is not None and r.killed_t < off_by and r.died_of is None
        if (
            s is not None
            and not killed_meanwhile  # a host killed while stopping can record nothing
            and s.start_t <= off_by
            and (s.end_t is None or s.end_t > off_by)
        ):
            claim = r.claim or {}
            if claim.get("outcome") != "stop_not_confirmed":
                said = (
                    "the host process died without a record"
                    if r.killed_t is not None
                    else f"the record says {claim.get('status')} ({claim.get('outcome')})"
                )
                out.append(
                    Violation(
                        "I2",
                        f"run {r.index} decided to stop ({why}) at t={t_d:.2f} s; the device "
                        f"emitted plan {s.plan_id} past t={off_by:.1f} s and {said}",
                        {"run": r.index, "plan_id": s.plan_id},
                    )
                )
        if r.killed_t is not None or r.finished_t is None:
            continue
        bound = opts.reconnect_s + 10.0 + opts.stop_confirm_s + 60.0
        if r.finished_t - t_d > bound:
            out.append(
                Violation(
                    "I2",
                    f"run {r.index} decided to stop ({why}) at t={t_d:.1f} s and ended only at "
                    f"t={r.finished_t:.1f} s (bound {bound:g} s)",
                )
            )
    return out


def _spacing(
    emitted: list[Any], by_plan: dict[int, RunRecord], waves: tuple[int, ...]
) -> list[Violation]:
    lim = _limits()
    out: list[Violation] = []
    ordered = sorted(emitted, key=lambda s: s.start_t)
    true = {s.plan_id: _true_by_wavelength(s.fluence_uj, waves) for s in ordered}
    for k, b in enumerate(ordered):
        rb = by_plan.get(b.plan_id)
        mine_iv, mine_week = rb.protocol_rules if rb is not None else (None, None)
        for wl, f in true[b.plan_id].items():
            if f > lim.max_fluence_session_j_cm2 * 1.01 + EPS_J:
                out.append(
                    Violation(
                        "I5", f"plan {b.plan_id} delivered {f:.3f} J/cm² at {wl} nm in one session"
                    )
                )
        if k == 0:
            continue
        a = ordered[k - 1]
        ra = by_plan.get(a.plan_id)
        # the previous protocol's own interval is known only to the log that ran it (the
        # device's records carry no schedule)
        same_log = ra is not None and rb is not None and ra.log == rb.log
        prev_iv = ra.protocol_rules[0] if ra is not None and same_log else None
        interval = max(lim.min_interval_s, mine_iv or 0.0, prev_iv or 0.0)
        a_end = a.end_t if a.end_t is not None else a.start_t
        if b.start_t - a_end < interval - 1.0:
            out.append(
                Violation(
                    "I5",
                    f"plan {b.plan_id} started {b.start_t - a_end:.0f} s after plan {a.plan_id} "
                    f"ended; the minimum interval is {interval:g} s",
                    {"a": a.to_dict(), "b": b.to_dict()},
                )
            )
        per_week = min(lim.max_sessions_per_week, mine_week or 10**6)
        before = [x for x in ordered[:k] if x.end_t is not None and x.end_t > b.start_t - WEEK]
        if len(before) >= per_week:
            out.append(
                Violation(
                    "I5",
                    f"plan {b.plan_id} is session {len(before) + 1} in 7 days; at most "
                    f"{per_week} are allowed",
                )
            )
        for window, cap in ((DAY, lim.max_fluence_24h_j_cm2), (WEEK, lim.max_fluence_7d_j_cm2)):
            prior = [x for x in ordered[:k] if x.end_t is not None and x.end_t > b.start_t - window]
            for wl, f in true[b.plan_id].items():
                total = f + sum(true[x.plan_id].get(wl, 0.0) for x in prior)
                if total > cap * 1.01 + EPS_J:
                    out.append(
                        Violation(
                            "I5",
                            f"{total:.3f} J/cm² at {wl} nm within {window / 3600:g} h up to "
                            f"plan {b.plan_id} (limit {cap:g})",
                        )
                    )
    return out

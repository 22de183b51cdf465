"""Differential testing: the same seeds on the simulator and on the firmware, compared.

A seed of the explorer (:func:`lllt.explore.scenario.draw`) is run twice, once on
``sim://`` (the Python engine) and once on ``fw://`` (the C firmware core with the
simulator's plant, ``lllt.transport.fw``), through the same host code on the same
virtual clock. Both devices feel the same physics (the plant is the engine's, seed for
seed), so any difference is a difference of control: of the two implementations of
``docs/wire-protocol.md``. They are compared step by step:

- **events**: every EVENT the device sent, in order: the same kind, fields ``a`` and
  ``b``, the same device time, ``value`` and ``limit`` (quantities that integrate over
  time, such as emitting ms and fluence, within 1 %; an interlock's reading of a zone or
  of a channel at full drive, which follows the board temperature, within one count, as
  the zone readings below);
- **states**: the device's once-a-second samples: state, plan, emitting, the zone
  readings (the same plant: the same to 0.01 °C), fluence per channel within 1 %;
- **sessions**: every session the device ran: plan, outcome, the light really emitted per
  channel within 1 %, emitting time;
- **records**: the device's session records at the end: plan, outcome, reason, boot,
  start and end, emitting time and fluence within 1 %;
- **host**: what each host run concluded (result, exit code) and the session logs
  (status, outcome, delivered fluence within 1 %);
- **invariants**: an invariant broken on one device and not the other (one broken on both
  is the host's, a finding of the explorer itself, counted in ``shared_violations``).

A seed that models a broken firmware (``defects``, a head interlock that does nothing) is
run without the defect on both sides: the defect is a simulator model for testing the
host's own checks, and the real firmware has no switch to break itself.

Any difference makes the seed fail, with the command that replays it::

    python -m lllt.explore.diff --seed 42          # or: --seeds 0-299
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

REL = 0.01  # 1 %
TIME_TOL_MS = 0  # device times must agree exactly
#: event fields that integrate over time (ms of emission, fluence): compared within 1 %
_INTEGRATED = {"session_end": ("value",), "target_reached": ("value",)}
#: interlocks whose value is a reading that follows the plant's temperatures: the engine
#: solves the thermal model in closed form, the firmware's plant tick by tick, and the two
#: floats may round to neighbouring counts (differential seed 4209: a stuck channel read
#: 11.59 against 11.60 mW/cm²); compared within one count, as the zone readings
_READINGS = {1, 9}  # THERMAL_CUTOFF (0.01 °C), OVER_OUTPUT (0.01 mW/cm²)


def replay_command(seed: int) -> str:
    """The command line that runs the differential test of ``seed`` again."""
    return f"python -m lllt.explore.diff --seed {seed}"


@dataclass
class Difference:
    """One way the sim and fw runs of a seed differ: where (events, states, sessions, records,
    host, invariants, run) and how."""

    where: str  # events, states, sessions, records, host, invariants, run
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass
class DiffReport:
    """The differential test of one seed: its differences, the wall time (s) of each scheme,
    and how many items of each kind were compared."""

    seed: int
    differences: list[Difference] = field(default_factory=list)
    wall_s: dict[str, float] = field(default_factory=dict)
    compared: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when the two devices did not differ."""
        return not self.differences

    @property
    def replay(self) -> str:
        """The command line that replays this seed."""
        return replay_command(self.seed)

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-able data (one line of ``--json``)."""
        return {
            "seed": self.seed,
            "ok": self.ok,
            "differences": [str(d) for d in self.differences],
            "wall_s": {k: round(v, 4) for k, v in self.wall_s.items()},
            "compared": self.compared,
            "replay": self.replay,
        }


def _close(a: float, b: float, rel: float = REL, abs_tol: float = 1e-6) -> bool:
    return abs(a - b) <= max(abs_tol, rel * max(abs(a), abs(b)))


def _near(a: float, b: float, rel: float = REL, abs_tol: float = 0.0) -> bool:
    return abs(a - b) <= max(abs_tol, rel * max(abs(a), abs(b)))


# --- the comparisons ----------------------------------------------------------------------


def _device(trace: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in trace if e.get("kind") == kind]


def compare_events(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> list[Difference]:
    """Differences between the events of sim (``a``) and fw (``b``), in order.

    Stops at the first event whose kind, ``a``, ``b`` or time differ; ``value`` and ``limit``
    must agree exactly, except integrated values (within 1 %, or 10) and an interlock's
    reading (within one count). A different number of events is one difference more.
    """
    out: list[Difference] = []
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        what = f"event {i} ({x['event']} at {x['t_ms']} ms)"
        if (x["event"], x["a"], x["b"]) != (y["event"], y["a"], y["b"]):
            out.append(
                Difference(
                    "events",
                    f"{what}: sim {x['event']} a={x['a']} b={x['b']}, "
                    f"fw {y['event']} a={y['a']} b={y['b']} at {y['t_ms']} ms",
                )
            )
            return out  # after the first divergence everything else follows from it
        if abs(x["t_ms"] - y["t_ms"]) > TIME_TOL_MS:
            out.append(Difference("events", f"{what}: fw sent it at {y['t_ms']} ms"))
            return out
        integrated = _INTEGRATED.get(x["event"], ())
        reading = x["event"] == "interlock" and x["a"] in _READINGS
        for key in ("value", "limit"):
            if key in integrated:
                same = _near(x[key], y[key], abs_tol=10)
            elif key == "value" and reading:
                same = abs(x[key] - y[key]) <= 1
            else:
                same = x[key] == y[key]
            if not same:
                out.append(Difference("events", f"{what}: {key} sim {x[key]}, fw {y[key]}"))
    if len(a) != len(b):
        longer, name = (a, "sim") if len(a) > len(b) else (b, "fw")
        extra = longer[min(len(a), len(b))]
        out.append(
            Difference(
                "events",
                f"sim sent {len(a)} events, fw {len(b)}; the first only {name} sent: "
                f"{extra['event']} at {extra['t_ms']} ms",
            )
        )
    return out


def _trim_idle_tail(s: list[dict[str, Any]], last_t: int) -> list[dict[str, Any]]:
    """``s`` without its trailing idle, dark samples later than ``last_t``.

    A host that closes the link at the instant of a telemetry tick may see one more idle
    frame from one device than from the other; the device did nothing in it.
    """
    end = len(s)
    while end and s[end - 1]["t_ms"] > last_t and s[end - 1]["state"] == "idle":
        if s[end - 1]["emitting"]:
            break
        end -= 1
    return s[:end]


def compare_states(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> list[Difference]:
    """Differences between the once-a-second samples of sim (``a``) and fw (``b``), by time.

    Trailing idle samples later than the other side's last are left out. State, plan and
    emitting must agree, zone readings within 0.011 °C, fluence within 1 %; stops at the
    first sample that differs. A different number of samples is one difference more.
    """
    out: list[Difference] = []
    if a and b:
        a, b = _trim_idle_tail(a, b[-1]["t_ms"]), _trim_idle_tail(b, a[-1]["t_ms"])
    by_t = {s["t_ms"]: s for s in b}
    for x in a:
        y = by_t.get(x["t_ms"])
        if y is None:
            out.append(Difference("states", f"no fw sample at {x['t_ms']} ms"))
            return out
        for key in ("state", "plan_id", "emitting"):
            if x[key] != y[key]:
                out.append(
                    Difference("states", f"at {x['t_ms']} ms: {key} sim {x[key]}, fw {y[key]}")
                )
                return out
        for z, (c, d) in enumerate(zip(x["temperature"], y["temperature"], strict=True)):
            if (c is None) != (d is None) or (c is not None and abs(c - d) > 0.011):
                out.append(Difference("states", f"at {x['t_ms']} ms: zone {z} reads {c} vs {d}"))
                return out
        for i, (f, g) in enumerate(zip(x["fluence"], y["fluence"], strict=True)):
            if not _close(f, g, abs_tol=2e-6):
                out.append(
                    Difference("states", f"at {x['t_ms']} ms: channel {i} fluence {f} vs {g}")
                )
                return out
    if len(a) != len(b):
        out.append(Difference("states", f"sim sent {len(a)} samples a second, fw {len(b)}"))
    return out


def compare_sessions(a: list[Any], b: list[Any]) -> list[Difference]:
    """Differences between the true sessions of sim (``a``) and fw (``b``), in order: plan,
    outcome and boot; start and end to the ms; light emitted per channel within 1 % (or
    2 µJ/cm²); emitting time within 1 % (or 10 ms)."""
    out: list[Difference] = []
    if len(a) != len(b):
        out.append(Difference("sessions", f"sim ran {len(a)} sessions, fw {len(b)}"))
    for x, y in zip(a, b, strict=False):
        what = f"plan {x.plan_id}"
        if x.plan_id != y.plan_id or x.outcome != y.outcome or x.boot != y.boot:
            out.append(
                Difference(
                    "sessions",
                    f"{what}: sim {x.outcome} (boot {x.boot}), "
                    f"fw plan {y.plan_id} {y.outcome} (boot {y.boot})",
                )
            )
            continue
        if round(x.start_t * 1000) != round(y.start_t * 1000):
            out.append(Difference("sessions", f"{what}: started {x.start_t} vs {y.start_t}"))
        xe, ye = x.end_t, y.end_t
        if (xe is None) != (ye is None) or (
            xe is not None and round(xe * 1000) != round(ye * 1000)
        ):
            out.append(Difference("sessions", f"{what}: ended {xe} vs {ye}"))
        for i, (f, g) in enumerate(zip(x.fluence_uj, y.fluence_uj, strict=False)):
            if not _near(f, g, abs_tol=2):
                out.append(Difference("sessions", f"{what}: channel {i} emitted {f} vs {g} µJ/cm²"))
        if not _near(x.emit_ms, y.emit_ms, abs_tol=10):
            out.append(Difference("sessions", f"{what}: emitting {x.emit_ms} vs {y.emit_ms} ms"))
    return out


def compare_records(a: tuple[Any, ...], b: tuple[Any, ...]) -> list[Difference]:
    """Differences between the session records the two caps hold at the end: plan, outcome,
    reason, boot count, start and end exactly; emitting time within 1 % (or 10 ms); fluence
    per channel within 1 %."""
    out: list[Difference] = []
    if len(a) != len(b):
        out.append(Difference("records", f"sim holds {len(a)} records, fw {len(b)}"))
    for x, y in zip(a, b, strict=False):
        what = f"record of plan {x.plan_id}"
        for key in ("plan_id", "outcome", "reason", "boot_count", "start_ms", "end_ms"):
            if getattr(x, key) != getattr(y, key):
                out.append(
                    Difference("records", f"{what}: {key} {getattr(x, key)} vs {getattr(y, key)}")
                )
        if not _near(x.emitting_ms, y.emitting_ms, abs_tol=10):
            out.append(
                Difference("records", f"{what}: emitting {x.emitting_ms} vs {y.emitting_ms} ms")
            )
        for i, (f, g) in enumerate(zip(x.fluence, y.fluence, strict=False)):
            if not _close(f, g, abs_tol=2e-6):
                out.append(Difference("records", f"{what}: channel {i} fluence {f} vs {g} J/cm²"))
    return out


def compare_host(ra: Any, rb: Any) -> list[Difference]:
    """Differences between what the hosts concluded on sim (``ra``) and fw (``rb``): each
    run's result and exit code, and each log's sessions (count, status, outcome, delivered
    fluence per channel within 1 %)."""
    out: list[Difference] = []
    for x, y in zip(ra.runs, rb.runs, strict=False):
        if (x.result, x.exit_code) != (y.result, y.exit_code):
            out.append(
                Difference(
                    "host",
                    f"run {x.index}: sim {x.result} (exit {x.exit_code}), "
                    f"fw {y.result} (exit {y.exit_code})",
                )
            )
    for log in sorted(set(ra.logs) | set(rb.logs)):
        rows_a, rows_b = ra.logs.get(log, []), rb.logs.get(log, [])
        if len(rows_a) != len(rows_b):
            out.append(Difference("host", f"log {log}: {len(rows_a)} vs {len(rows_b)} sessions"))
            continue
        for x, y in zip(rows_a, rows_b, strict=True):
            if (str(x.status), x.outcome) != (str(y.status), y.outcome):
                out.append(
                    Difference(
                        "host",
                        f"log {log} session {x.id}: {x.status}/{x.outcome} vs "
                        f"{y.status}/{y.outcome}",
                    )
                )
            da, db = x.delivered_by_channel, y.delivered_by_channel
            for c in set(da) | set(db):
                if not _close(da.get(c, 0.0), db.get(c, 0.0), abs_tol=2e-6):
                    out.append(
                        Difference(
                            "host",
                            f"log {log} session {x.id}: channel {c} delivered "
                            f"{da.get(c)} vs {db.get(c)} J/cm²",
                        )
                    )
    return out


def compare(ra: Any, rb: Any) -> tuple[list[Difference], dict[str, int]]:
    """Every difference between two :class:`lllt.explore.runner.Result` of one scenario."""
    ta, tb = ra.truth.trace, rb.truth.trace
    ev_a, ev_b = _device(ta, "event"), _device(tb, "event")
    st_a, st_b = _device(ta, "sample"), _device(tb, "sample")
    diffs = compare_events(ev_a, ev_b)
    diffs += compare_states(st_a, st_b)
    diffs += compare_sessions(ra.truth.sessions, rb.truth.sessions)
    diffs += compare_records(ra.records, rb.records)
    diffs += compare_host(ra, rb)
    # an invariant broken on one device only is a difference; one broken on both is the
    # host's (the explorer's own finding, reported in ``shared_violations``)
    va, vb = [str(v) for v in ra.violations], [str(v) for v in rb.violations]
    for v in va:
        if v not in vb:
            diffs.append(Difference("invariants", f"sim only: {v}"))
    for v in vb:
        if v not in va:
            diffs.append(Difference("invariants", f"fw only: {v}"))
    for name, r in (("sim", ra), ("fw", rb)):
        if r.final_error:
            diffs.append(Difference("run", f"{name}: final pass failed: {r.final_error}"))
    counts = {
        "events": len(ev_a),
        "samples": len(st_a),
        "sessions": len(ra.truth.sessions),
        "records": len(ra.records),
        "shared_violations": sum(v in vb for v in va),
    }
    return diffs, counts


# --- running seeds --------------------------------------------------------------------------


def diff_seed(seed: int) -> DiffReport:
    """Run one seed on sim:// and on fw:// and compare (see the module docstring)."""
    from lllt.explore.adapter import adapter
    from lllt.explore.invariants import check
    from lllt.explore.runner import run_scenario
    from lllt.explore.scenario import draw

    rep = DiffReport(seed)
    results = []
    for scheme in ("sim", "fw"):
        t0 = time.perf_counter()
        scenario = draw(seed)
        # a modelled firmware defect (a broken head interlock) exists in the simulator only:
        # both sides run the seed's faults and host events on a working device
        scenario.defects = ""
        try:
            result = run_scenario(scenario, adapter(scheme))
            result.violations = check(result)
        except Exception as err:  # a run that breaks is a finding of its own
            rep.differences.append(Difference("run", f"{scheme}: {type(err).__name__}: {err}"))
            return rep
        rep.wall_s[scheme] = time.perf_counter() - t0
        results.append(result)
    rep.differences, rep.compared = compare(results[0], results[1])
    return rep


def diff_seeds(seeds: Iterable[int]) -> Iterator[DiffReport]:
    """:func:`diff_seed` for each seed in turn, yielding each report as it ends."""
    for seed in seeds:
        yield diff_seed(seed)


def _seed_range(text: str) -> list[int]:
    lo, sep, hi = text.partition("-")
    try:
        return list(range(int(lo), int(hi) + 1)) if sep else [int(lo)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a seed or a range A-B") from None


def main(argv: list[str] | None = None) -> int:
    """``python -m lllt.explore.diff``: compare the seeds of ``--seed``/``--seeds`` and print
    each verdict (``--json``: one object per seed). Returns 0 when all agree, 1 when any
    differ, 2 when fw:// cannot run here."""
    parser = argparse.ArgumentParser(
        prog="python -m lllt.explore.diff",
        description="Run explorer seeds on sim:// and fw:// and compare them step by step.",
    )
    parser.add_argument("--seed", type=_seed_range, help="one seed, or a range A-B")
    parser.add_argument("--seeds", type=_seed_range, help="a range of seeds A-B")
    parser.add_argument("--json", action="store_true", help="one JSON object per seed")
    args = parser.parse_args(argv)
    seeds = (args.seed or []) + (args.seeds or [])
    if not seeds:
        parser.error("give --seed N or --seeds A-B")
    from lllt.explore.adapter import adapter

    why = adapter("fw").unavailable()
    if why:
        print(f"error: fw:// cannot run here: {why}", file=sys.stderr)
        return 2
    failed = 0
    for rep in diff_seeds(seeds):
        if args.json:
            print(json.dumps(rep.to_dict()), flush=True)
        else:
            verdict = "same" if rep.ok else f"{len(rep.differences)} difference(s)"
            print(f"seed {rep.seed}: {verdict}", flush=True)
            for d in rep.differences[:20]:
                print(f"  {d}")
            if not rep.ok:
                print(f"  replay: {rep.replay}")
        failed += not rep.ok
    if not args.json:
        print(f"{len(seeds)} seeds, {failed} with differences")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

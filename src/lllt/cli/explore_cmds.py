"""``lllt explore``: the deterministic fault explorer (docs/explorer.md)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from lllt.cli._app import JSON_HELP, app, epilog, handle_errors, print_json


@app.command(
    "explore",
    epilog=epilog(
        "lllt explore --seeds 300",
        "lllt explore --from 20000 --seeds 1000 --jobs 2",
        "lllt explore --seed 4711 --trace seed-4711.json",
        "lllt explore --scenario lost-start-reply",
        codes="Exit codes: 0 no invariant violated; 1 a seed violated an invariant; "
        "2 invalid input; 3 the device scheme cannot run here.",
    ),
)
@handle_errors
def explore_cmd(
    seeds: Annotated[int, typer.Option("--seeds", min=1, help="How many seeds to run.")] = 300,
    first: Annotated[int, typer.Option("--from", min=0, help="The first seed.")] = 0,
    seed: Annotated[
        int | None, typer.Option("--seed", min=0, help="Replay one seed and say what it did.")
    ] = None,
    scenario: Annotated[
        str | None,
        typer.Option("--scenario", metavar="NAME", help="Run a named regression scenario."),
    ] = None,
    jobs: Annotated[int, typer.Option("--jobs", min=1, max=64, help="Worker processes.")] = 1,
    scheme: Annotated[
        str,
        typer.Option("--device-scheme", metavar="SCHEME", help="Device: sim, fw or blesim (BLE)."),
    ] = "sim",
    trace: Annotated[
        Path | None,
        typer.Option("--trace", help="With --seed or --scenario: write its trace (JSON) here."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> int:
    """Run seeds of faults and host events on the virtual clock and check invariants.

    Each seed draws a protocol, a profile, device faults, link faults and host events
    (Ctrl-C, signals, a killed host, a second run, a new log), runs the host's real code
    against the device, reconciles, and checks I1-I6 against what the device really did.
    A failing seed prints the one-line command that replays it.
    """
    from lllt.errors import InvalidInput

    _check_scheme(scheme)
    if trace is not None and seed is None and scenario is None:
        raise InvalidInput(
            "--trace needs --seed N or --scenario NAME",
            advice="A trace is written for one seed at a time.",
        )
    if seed is not None or scenario is not None:
        return _explore_one(seed, scenario, scheme, trace, as_json)
    return _explore_range(first, seeds, scheme, jobs, as_json)


def _check_scheme(scheme: str) -> None:
    """Refuse a device scheme that is unknown or cannot run on this machine."""
    from lllt.errors import DeviceError
    from lllt.explore.adapter import adapter

    dev = adapter(scheme)
    why = dev.unavailable()
    if why is not None:
        raise DeviceError(
            f"--device-scheme {scheme} cannot run here: {why}",
            advice="Use --device-scheme sim, or build the device it needs.",
        )


def _explore_one(
    seed: int | None, scenario: str | None, scheme: str, trace: Path | None, as_json: bool
) -> int:
    """Replay one seed or named scenario, say what it did, and write its trace if asked."""
    from lllt.errors import InvalidInput
    from lllt.explore import explore_seed, run_named

    if scenario is not None:
        from lllt.explore.named import NAMED

        if scenario not in NAMED:
            raise InvalidInput(
                f"no scenario named {scenario!r}",
                advice="Named scenarios: " + ", ".join(sorted(NAMED)) + ".",
            )
        rep = run_named(scenario, scheme, keep=True)
    else:
        assert seed is not None
        rep = explore_seed(seed, scheme, keep=True)
    if trace is not None:
        import json

        trace.write_text(json.dumps(rep.result.to_dict(), indent=1, default=str) + "\n")
    if as_json:
        print_json(rep.result.to_dict(trace=False) | {"wall_s": round(rep.wall_s, 4)})
    else:
        _print_one(rep)
    return 1 if rep.violations else 0


def _explore_range(first: int, seeds: int, scheme: str, jobs: int, as_json: bool) -> int:
    """Run seeds ``first`` to ``first + seeds - 1``, print each violation, then a summary."""
    from lllt.explore import explore

    t0 = time.perf_counter()
    bad: list[Any] = []
    done = 0
    sessions = 0

    def progress(rep: Any) -> None:
        nonlocal done, sessions
        done += 1
        sessions += rep.sessions
        if rep.violations:
            bad.append(rep)
            if not as_json:
                print(f"seed {rep.seed}: {rep.violations[0]}  (replay: {rep.replay})", flush=True)
        if not as_json and sys.stderr.isatty() and done % 50 == 0:
            print(f"  {done}/{seeds} seeds", file=sys.stderr, flush=True)

    for _ in explore(range(first, first + seeds), scheme=scheme, jobs=jobs, progress=progress):
        pass
    wall = time.perf_counter() - t0
    if as_json:
        print_json(
            {
                "scheme": scheme,
                "from": first,
                "seeds": seeds,
                "jobs": jobs,
                "wall_s": round(wall, 3),
                "seeds_per_s": round(seeds / wall, 3),
                "device_sessions": sessions,
                "violating_seeds": [r.to_dict() for r in bad],
            }
        )
    else:
        print(
            f"{seeds} seeds ({first}-{first + seeds - 1}) on {scheme}: {len(bad)} violating, "
            f"{sessions} device sessions, {wall:.1f} s ({seeds / wall:.1f} seeds/s)"
        )
    return 1 if bad else 0


def _print_one(rep: Any) -> None:
    res = rep.result
    print(rep.describe)
    for r in res.runs:
        claim = r.claim or {}
        status = claim.get("status", "-")
        print(
            f"  run {r.index}: {r.result} (row {r.session_id}: {status}"
            f"{', ' + claim['outcome'] if claim.get('outcome') else ''})"
        )
    for s in res.truth.sessions:
        print(
            f"  device: plan {s.plan_id} {s.outcome}, {s.emit_ms / 1000:g} s emitting, "
            f"t={s.start_t:.1f}-{s.end_t if s.end_t is None else round(s.end_t, 1)} s"
        )
    if rep.violations:
        for v in rep.violations:
            print(f"VIOLATION {v}")
        print(f"replay: {rep.replay}")
    else:
        print(f"no invariant violated ({rep.wall_s:.2f} s)")

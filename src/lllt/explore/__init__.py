"""The deterministic fault explorer (``lllt explore``): seeds of faults against invariants.

In the spirit of FoundationDB's simulation testing and TigerBeetle's VOPR: each seed draws
a scenario (:mod:`lllt.explore.scenario`: a protocol, a profile, device faults, link
faults and host events), runs it on the virtual clock through the host's real code
(:mod:`lllt.explore.runner`), reconciles, and checks invariants I1-I6 against the
device's ground truth (:mod:`lllt.explore.invariants`), read through a small adapter
(:mod:`lllt.explore.adapter`) so that the simulator and the firmware can be compared on
the same seeds. A failing seed is replayed with ``lllt explore --seed N``.

::

    from lllt.explore import explore_seed
    report = explore_seed(42)
    assert not report.violations, report.replay
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from lllt.explore.adapter import DeviceAdapter, adapter
from lllt.explore.scenario import Scenario, draw

__all__ = ["SeedReport", "explore", "explore_seed", "replay_command", "run_named"]


def replay_command(seed: int, scheme: str = "sim") -> str:
    """The ``lllt explore`` command line that replays ``seed`` on device scheme ``scheme``."""
    extra = "" if scheme == "sim" else f" --device-scheme {scheme}"
    return f"lllt explore --seed {seed}{extra}"


@dataclass
class SeedReport:
    """What one seed gave: the invariants it broke, its wall time (s), and how many sessions
    the device ran and host runs it had; ``result`` is the full
    :class:`~lllt.explore.runner.Result` only when it was kept."""

    seed: int
    scheme: str
    violations: list[Any]
    wall_s: float
    sessions: int  # sessions the device ran
    runs: int
    describe: str = ""
    result: Any = field(default=None, repr=False)

    @property
    def replay(self) -> str:
        """The command line that replays this seed."""
        return replay_command(self.seed, self.scheme)

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-able data, with its replay command."""
        return {
            "seed": self.seed,
            "scheme": self.scheme,
            "violations": [v.to_dict() for v in self.violations],
            "wall_s": round(self.wall_s, 4),
            "device_sessions": self.sessions,
            "runs": self.runs,
            "replay": self.replay,
        }


def run_scenario_checked(sc: Scenario, scheme: str = "sim", *, keep: bool = False) -> SeedReport:
    """Run ``sc`` on device scheme ``scheme`` and check the invariants; ``keep`` keeps the
    full result in the report. URLError for an unknown scheme."""
    from lllt.explore.invariants import check
    from lllt.explore.runner import run_scenario

    dev: DeviceAdapter = adapter(scheme)
    result = run_scenario(sc, dev)
    result.violations = check(result)
    return SeedReport(
        sc.seed,
        scheme,
        result.violations,
        result.wall_s,
        len(result.truth.sessions),
        len(sc.runs),
        sc.describe(),
        result if keep else None,
    )


def explore_seed(seed: int, scheme: str = "sim", *, keep: bool = False) -> SeedReport:
    """Draw, run and check one seed."""
    return run_scenario_checked(draw(seed), scheme, keep=keep)


def run_named(name: str, scheme: str = "sim", *, keep: bool = False) -> SeedReport:
    """A named regression scenario (:mod:`lllt.explore.named`)."""
    from lllt.explore.named import NAMED

    return run_scenario_checked(NAMED[name](), scheme, keep=keep)


def _worker(args: tuple[int, str]) -> SeedReport:
    seed, scheme = args
    try:
        return explore_seed(seed, scheme)
    except Exception as err:  # the explorer's own failure: report it as a finding
        from lllt.explore.invariants import Violation

        return SeedReport(
            seed, scheme, [Violation("explorer", f"{type(err).__name__}: {err}")], 0.0, 0, 0
        )


def explore(
    seeds: Iterable[int],
    *,
    scheme: str = "sim",
    jobs: int = 1,
    progress: Callable[[SeedReport], None] | None = None,
) -> Iterator[SeedReport]:
    """Run seeds (in ``jobs`` processes when > 1), yielding each report as it ends."""
    items = [(s, scheme) for s in seeds]
    if jobs <= 1:
        for item in items:
            rep = _worker(item)
            if progress:
                progress(rep)
            yield rep
        return
    import multiprocessing as mp

    ctx = mp.get_context("forkserver" if os.name == "posix" else "spawn")
    with ctx.Pool(jobs) as pool:
        for rep in pool.imap(_worker, items, chunksize=4):
            if progress:
                progress(rep)
            yield rep

"""Disable one safety control at a time and find the first seed the explorer fails on.

    python bench/explore_mutations.py            # every control, seeds 0-299 (the CI budget)
    python bench/explore_mutations.py --seeds 300 --only research_gate

Each mutation is a test-only monkeypatch (nothing here ships): with it applied, the
explorer must report a violation within the CI seed budget; the table it prints goes into
docs/benchmarks.md, and tests/explore/test_mutations.py replays each first failing seed
with and without its mutation.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))


@contextlib.contextmanager
def _patch(target: str, new: Any) -> Iterator[None]:
    with mock.patch(target, new):
        yield


def counted_unless_proven() -> Any:
    """A session the host lost counts only once it is known to have started, at what was
    recorded (no planned dose for an unreconciled row)."""
    from lllt.safety import history

    def past(row: Any) -> Any:
        start = row.started_at if row.started_at is not None else row.created_at
        return history.PastSession(
            start,
            row.effective_end,
            dict(row.delivered_fluence),
            row.min_interval_s,
            row.protocol_id,
        )

    stack = contextlib.ExitStack()
    stack.enter_context(_patch("lllt.safety.history._past_session", past))
    stack.enter_context(
        _patch("lllt.store.SessionRow.counts", property(lambda self: self.started_at is not None))
    )
    return stack


def power_loss_bound() -> Any:
    """A POWER_LOSS record counted as it is (its last checkpoint), not as an upper bound."""
    return _patch(
        "lllt.session.accounted_fluence", lambda rec, channels, planned=None: tuple(rec.fluence)
    )


def stop_until_confirmed() -> Any:
    """One ABORT, and the session is taken as stopped (the behaviour of finding 2)."""

    async def stop(self: Any, reason: Any, *, within_s: float | None = None) -> bool:
        with contextlib.suppress(Exception):
            await self._abort_once(reason)
        return True

    return _patch("lllt.session.SessionRunner._stop", stop)


def fresh_samples() -> Any:
    """Every sample taken as the device's state now, even one a newer sample overtook."""
    return _patch("lllt.session.SessionRunner._stale", lambda self, t: False)


def one_way_out() -> Any:
    """No handlers for SIGTERM, SIGHUP, SIGQUIT or a second Ctrl-C during a session."""
    return _patch("lllt.session._stop_signals", lambda runner, *, enabled: contextlib.nullcontext())


def stop_path_once() -> Any:
    """Every signal cancels again, and the stop path can be cut short by a cancel (a
    second Ctrl-C or signal while the ABORTs are resent)."""
    import asyncio
    import signal as sig

    @contextlib.contextmanager
    def stop_signals(runner: Any, *, enabled: bool) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        names = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT")

        def stop(name: str) -> None:
            if name != "SIGINT" and runner.signal_name is None:
                runner.signal_name = name
            assert task is not None
            task.cancel()

        for name in names:
            loop.add_signal_handler(getattr(sig, name), stop, name)
        try:
            yield
        finally:
            for name in names:
                loop.remove_signal_handler(getattr(sig, name))

    async def plain(coro: Any) -> Any:
        return await coro

    stack = contextlib.ExitStack()
    stack.enter_context(_patch("lllt.session._stop_signals", stop_signals))
    stack.enter_context(_patch("lllt.session._unstoppable", plain))
    return stack


def device_record_merge() -> Any:
    """The device's records are not merged into the log (a new log starts empty)."""

    async def adopt(cap: Any, store: Any, observer: Any = None) -> list[int]:
        return []

    return _patch("lllt.session.adopt_device_records", adopt)


def reconcile_path() -> Any:
    """Interrupted sessions are never settled from the device's records."""

    async def reconcile(cap: Any, store: Any, observer: Any = None) -> list[int]:
        return []

    return _patch("lllt.session.reconcile_pending", reconcile)


def research_gate() -> Any:
    """The research gate trusts the file's word (finding 5)."""
    return _patch("lllt.safety.preflight._outside_band", lambda plan: [])


def head_present_rule() -> Any:
    """The host monitor has no head-present rule (finding 8)."""
    return _patch("lllt.safety.monitor.RuntimeMonitor._head_rule", lambda self, *a: None)


def abort_any_length() -> Any:
    """Wire 1.0: an ABORT whose payload is not one byte is NACKed (finding 9; device side)."""
    from lllt import wire
    from lllt_sim.device import SimDevice

    orig = SimDevice._dispatch

    def dispatch(self: Any, frame: Any, now: int) -> bytes:
        if frame.type == wire.MsgType.ABORT and len(frame.payload) != 1:
            return self._nack(frame, wire.NackCode.BAD_LENGTH, "ABORT takes one byte")
        return orig(self, frame, now)

    return _patch("lllt_sim.device.SimDevice._dispatch", dispatch)


MUTATIONS: dict[str, Callable[[], Any]] = {
    "counted_unless_proven": counted_unless_proven,
    "power_loss_bound": power_loss_bound,
    "stop_until_confirmed": stop_until_confirmed,
    "fresh_samples": fresh_samples,
    "one_way_out": one_way_out,
    "stop_path_once": stop_path_once,
    "device_record_merge": device_record_merge,
    "reconcile_path": reconcile_path,
    "research_gate": research_gate,
    "head_present_rule": head_present_rule,
    "abort_any_length": abort_any_length,
}


def first_failing(name: str, seeds: range) -> tuple[int | None, str, int]:
    from lllt.explore import explore_seed

    n = 0
    with MUTATIONS[name]():
        for seed in seeds:
            n += 1
            rep = explore_seed(seed)
            if rep.violations:
                return seed, str(rep.violations[0]), n
    return None, "", n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=300)
    ap.add_argument("--from", dest="first", type=int, default=0)
    ap.add_argument("--only", action="append", choices=sorted(MUTATIONS))
    args = ap.parse_args()
    names = args.only or list(MUTATIONS)
    print("| control disabled | first failing seed | seeds run | violation |")
    print("|---|---|---|---|")
    missed = 0
    for name in names:
        t = time.perf_counter()
        seed, what, n = first_failing(name, range(args.first, args.first + args.seeds))
        missed += seed is None
        shown = "none" if seed is None else str(seed)
        print(
            f"| {name} | {shown} | {n} ({time.perf_counter() - t:.1f} s) | {what[:140]} |",
            flush=True,
        )
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())

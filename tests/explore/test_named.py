"""Issue 7's findings and the explorer's own, as named scenarios (lllt.explore.named)."""

from __future__ import annotations

import pytest

from lllt.explore import run_named
from lllt.explore.named import NAMED


@pytest.mark.parametrize("name", sorted(NAMED))
def test_named_scenario_holds_every_invariant(name: str) -> None:
    rep = run_named(name, keep=True)
    assert not rep.violations, [str(v) for v in rep.violations]
    assert rep.result.truth.sessions, "the scenario ran no session on the device"


def test_lost_start_reply_counts_and_refuses_the_next_run() -> None:
    res = run_named("lost-start-reply", keep=True).result
    _first, second = res.runs
    assert second.result == "PreflightRefused" and "interval" in second.message


def test_a_reset_before_the_first_checkpoint_still_counts() -> None:
    res = run_named("reset-before-first-checkpoint", keep=True).result
    (row, *_) = res.logs[0]
    assert row.counts and row.outcome == "power_loss"
    assert row.started_at is not None  # the record proves the plan started


def test_a_second_signal_while_stopping_still_confirms_the_stop() -> None:
    res = run_named("second-signal-while-stopping", keep=True).result
    (run,) = res.runs
    assert run.claim is not None and run.claim["status"] == "stopped"
    assert "abort_resent" in run.claim["events"]

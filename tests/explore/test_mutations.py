"""Each safety control, disabled, makes the explorer fail (bench/explore_mutations.py).

For every control: its regression scenario fails with the control off and holds with it
on, so the control cannot be removed without a test failing. docs/benchmarks.md gives
the first failing random seed of each.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from lllt.explore import run_named

_PATH = Path(__file__).resolve().parents[2] / "bench" / "explore_mutations.py"
_spec = importlib.util.spec_from_file_location("explore_mutations", _PATH)
assert _spec is not None and _spec.loader is not None
M = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(M)

#: control -> the named scenario that catches it
CAUGHT_BY = {
    "counted_unless_proven": "records-wiped",
    "power_loss_bound": "reset-mid-session",
    "stop_until_confirmed": "lost-abort-resent",
    "fresh_samples": "stale-sample",
    "one_way_out": "termination-signals",
    "stop_path_once": "second-signal-while-stopping",
    "device_record_merge": "new-log-same-cap",
    "reconcile_path": "lost-start-reply",
    "research_gate": "research-gate",
    "head_present_rule": "head-present-rule",
    "abort_any_length": "abort-any-length",
}


def test_every_mutation_is_covered() -> None:
    assert set(M.MUTATIONS) == set(CAUGHT_BY)


@pytest.mark.parametrize("control", sorted(CAUGHT_BY))
def test_disabling_a_control_is_caught(control: str) -> None:
    name = CAUGHT_BY[control]
    assert not run_named(name).violations
    with M.MUTATIONS[control]():
        assert run_named(name).violations, f"{control} off went unnoticed by {name}"


#: control -> the first seed of CI's budget (0-299, then the regression seeds) that fails
#: with the control off (bench/explore_mutations.py; table in docs/benchmarks.md)
FIRST_SEED = {
    "power_loss_bound": 5,
    "stop_until_confirmed": 97,
    "one_way_out": 23,
    "device_record_merge": 0,
    "reconcile_path": 0,
    "research_gate": 3,
    "head_present_rule": 20,
    "abort_any_length": 1,
    "stop_path_once": 801,
    "fresh_samples": 2174,
    "counted_unless_proven": 5379,
}


@pytest.mark.parametrize("control", sorted(FIRST_SEED))
def test_a_random_seed_in_the_ci_budget_catches_it(control: str) -> None:
    from lllt.explore import explore_seed

    from .test_seeds import CI_SEEDS, REGRESSION_SEEDS

    seed = FIRST_SEED[control]
    assert seed in CI_SEEDS or seed in REGRESSION_SEEDS
    assert not explore_seed(seed).violations
    with M.MUTATIONS[control]():
        assert explore_seed(seed).violations, f"{control} off: seed {seed} no longer fails"

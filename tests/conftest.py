"""Shared test configuration.

CI sets LLLT_CI=1: there a test that skips (a missing toolchain, no pseudo-terminals)
fails instead, so that CI never passes by testing less than a developer's machine.
"""

from __future__ import annotations

import os

import pytest

IN_CI = os.environ.get("LLLT_CI") == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.longrepr = f"skipped in CI (LLLT_CI=1 forbids skips): {reason}"

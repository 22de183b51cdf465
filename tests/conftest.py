"""Shared test configuration.

CI sets LLLT_CI=1: there a test that skips (a missing toolchain, no pseudo-terminals)
fails instead, so that CI never passes by testing less than a developer's machine.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from lllt_sim import fwharness

IN_CI = os.environ.get("LLLT_CI") == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.longrepr = f"skipped in CI (LLLT_CI=1 forbids skips): {reason}"


# --- the firmware targets (tests/conformance, tests/firmware) -----------------------------

#: device seconds per wall second of the served host firmware and of the QEMU image
FWHOST_SPEED = 10.0
QEMU_SPEED = 10


def firmware_or_skip(build: Callable[[], Any]) -> Any:
    """Build or start a firmware target; a missing tool skips (a failure in CI)."""
    try:
        return build()
    except fwharness.ToolMissing as err:
        pytest.skip(str(err))


@pytest.fixture(scope="session")
def fw_library() -> None:
    """liblllt_fw.so, built with ``make -C firmware lib`` when needed."""
    from lllt_sim import fwlib

    def build() -> None:
        try:
            fwlib.load()
        except fwlib.FirmwareLibraryError as err:
            if shutil.which("make") is None or shutil.which("cc") is None:
                raise fwharness.ToolMissing(str(err)) from None
            raise

    firmware_or_skip(build)


@pytest.fixture(scope="session")
def fwhost_server() -> Iterator[fwharness.ServedFirmware]:
    """The host firmware executable serving its UART on TCP, shared by the session."""
    server = firmware_or_skip(
        lambda: fwharness.ServedFirmware("--tcp", "127.0.0.1:0", "--speed", str(FWHOST_SPEED))
    )
    yield server
    server.stop()


@pytest.fixture(scope="session")
def qemu_server() -> Iterator[fwharness.QemuFirmware]:
    """The Cortex-M3 image under QEMU, UART0 on TCP, shared by the session."""
    server = firmware_or_skip(lambda: fwharness.QemuFirmware(None, "--speed", str(QEMU_SPEED)))
    yield server
    server.stop()

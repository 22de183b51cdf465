"""``lllt devices`` and BLE scanning: caps found by the service UUID, and one line (exit 0)
where the machine has no usable Bluetooth."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest

from lllt import bleprofile as P
from lllt import clock


def test_devices_without_dbus_prints_one_bluetooth_line_and_exits_0() -> None:
    env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS="unix:path=/nonexistent/lllt-test-bus")
    out = subprocess.run(
        [sys.executable, "-m", "lllt", "devices", "--ble-scan", "1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stdout + out.stderr
    lines = [ln for ln in out.stdout.splitlines() if "bluetooth" in ln.lower() or "ble://" in ln]
    assert len(lines) == 1, out.stdout
    assert lines[0].startswith("Bluetooth: not available here")
    assert "sim://reference-cap" in out.stdout  # the rest is still listed


@pytest.mark.parametrize(
    ("error", "words"),
    [
        ("bleak", "no bluetooth adapters"),
        ("oserror", "permission denied"),
        ("missing", "d-bus"),
    ],
)
def test_scan_turns_every_no_bluetooth_error_into_a_line(
    monkeypatch: pytest.MonkeyPatch, error: str, words: str
) -> None:
    import bleak
    from bleak.exc import BleakError

    from lllt.transport.ble import scan

    async def discover(*args: Any, **kwargs: Any) -> Any:
        if error == "bleak":
            raise BleakError("No Bluetooth adapters found.")
        if error == "oserror":
            raise PermissionError(13, "Permission denied")
        raise FileNotFoundError(2, "No such file or directory")

    monkeypatch.setattr(bleak.BleakScanner, "discover", staticmethod(discover))
    caps, why = clock.run(scan(1.0))
    assert caps == []
    assert why is not None and words in why.lower(), why


def test_scan_finds_a_cap_by_the_service_uuid() -> None:
    from lllt.transport.ble import scan
    from lllt.transport.bumble_backend import BumbleCentral
    from lllt_sim.ble import local_pair
    from lllt_sim.device import SimDevice

    async def main() -> Any:
        device = SimDevice("reference-cap")
        setup = local_pair(device)
        await setup.peripheral.start()
        try:
            return await scan(0.5, central=BumbleCentral(setup.central)), setup.address
        finally:
            await setup.peripheral.close()

    (caps, why), address = clock.run(main(), virtual=True, speed=None)
    assert why is None
    assert [c["name"] for c in caps] == [P.advertised_name("SIM-REF-0001")]
    assert caps[0]["url"] == f"ble://{address}"

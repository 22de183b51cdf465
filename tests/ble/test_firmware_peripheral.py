"""The C firmware behind the lllt GATT peripheral (``blesim://...&device=fw``).

The conformance suite runs on this pairing too (targets ``blefw23`` and ``blefw247``);
here: it really is the firmware that answers, and the firmware itself refuses a key over
Bluetooth (it is told the link is BLE, not USB), as the simulator does.
"""

from __future__ import annotations

from typing import Any

import pytest

from lllt import clock
from lllt import wire as W
from lllt.device import Cap
from lllt.errors import Rejected, URLError
from lllt.transport import make_transport

FW = "blesim://reference-cap?speed=max&device=fw&mtu=23&button=held"


def _run(url: str, body: Any) -> Any:
    async def main() -> Any:
        async with Cap.connect(url) as cap:
            return await body(cap)

    return clock.run(main(), virtual=True, speed=None)


def test_the_firmware_answers_over_ble_and_refuses_a_key(fw_library: None) -> None:
    async def body(cap: Cap) -> tuple[str, int]:
        kind = type(cap.transport.device).__name__  # type: ignore[attr-defined]
        try:
            await cap.provision_key(bytes(range(100, 132)))
        except Rejected as err:
            return kind, int(err.code)  # type: ignore[attr-defined]
        return kind, 0

    # a fresh cap with its button held would take a key over USB; never over Bluetooth
    assert _run(FW, body) == ("FirmwareDevice", W.NackCode.WIRED_ONLY)


def test_an_unknown_device_kind_is_named() -> None:
    with pytest.raises(URLError, match="device=qemu"):
        make_transport("blesim://reference-cap?device=qemu")

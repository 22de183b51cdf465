"""``lllt sim serve --ble TRANSPORT`` in another process, reached by ``ble://NAME?hci=...``.

The test process plays the radio (:class:`lllt_sim.ble.HciRelay`: a Bumble ``LocalLink``
with two virtual controllers, each behind a TCP HCI transport). ``lllt sim serve --ble
tcp-client:...`` drives one of them as the cap; the host's ``ble://`` transport
(``hci=tcp-client:...``, the Bumble backend for bleak) drives the other. Nothing is shared
with the served simulator but HCI packets.
"""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from typing import Any

import pytest

from lllt import wire as W
from lllt.device import Cap
from lllt_sim.ble import HciRelay


@pytest.mark.parametrize("mtu", [23, 247])
def test_served_ble_peripheral_answers_the_ble_transport(mtu: int) -> None:
    async def main() -> Any:
        relay = await HciRelay.start()
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            *("-m", "lllt", "sim", "serve", "--ble", relay.spec(0), "--speed", "10"),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            assert proc.stdout is not None
            line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
            m = re.search(r"ble://(\S+)", line)
            assert m, line
            url = f"ble://{m.group(1)}?hci={relay.spec(1)}&mtu={mtu}&timeout=20"
            async with Cap.connect(url) as cap:
                status = await cap.status()
                info = cap.info
                att = cap.transport.att_mtu  # type: ignore[attr-defined]
                biggest = cap.transport.max_write  # type: ignore[attr-defined]
            return line, info, status, att, biggest
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()
            await relay.close()

    line, info, status, att, biggest = asyncio.run(main())
    assert "serving reference-cap at ble://lllt0001" in line
    assert info.serial == "SIM-REF-0001"
    assert status.state == W.State.IDLE
    assert att == mtu
    assert 0 < biggest <= mtu - 3


def test_serve_ble_on_a_transport_that_cannot_open_says_so() -> None:
    import subprocess

    out = subprocess.run(
        [sys.executable, "-m", "lllt", "sim", "serve", "--ble", "nonsense:1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "cannot open this Bluetooth transport" in out.stderr
    assert "Traceback" not in out.stderr

"""BLE pairing as defence in depth: LE Secure Connections with bonding, and a peer that
offers only legacy pairing refused (Bumble would fall back to it silently)."""

from __future__ import annotations

from typing import Any

import pytest

from lllt import clock
from lllt.device import Cap
from lllt.errors import ConnectionFailed


def test_secure_connections_pairing_with_bonding() -> None:
    async def main() -> Any:
        async with Cap.connect("blesim://reference-cap?speed=max") as cap:
            t: Any = cap.transport
            backend = t._client._backend
            keystore = backend._central.device.keystore
            bonded = await keystore.get_all() if keystore is not None else []
            return backend.security, bonded

    security, bonded = clock.run(main(), virtual=True, speed=None)
    sc, _authenticated, encrypted = security
    assert sc and encrypted
    assert bonded  # keys kept for the next connection


def test_a_legacy_only_peer_is_refused() -> None:
    async def main() -> None:
        async with Cap.connect("blesim://reference-cap?speed=max&pairing=legacy"):
            pass

    with pytest.raises(ConnectionFailed) as err:
        clock.run(main(), virtual=True, speed=None)
    assert "legacy" in str(err.value) and err.value.exit_code == 3

"""The explorer over Bluetooth LE (``--device-scheme blesim``): 100 seeds in CI, 0 violated.

Each host run reaches the simulated cap through the real BLE transport (bleak on the Bumble
backend, ATT MTU 23) and the lllt GATT peripheral, on the virtual clock.
"""

from __future__ import annotations

from typing import Any

import pytest

from lllt.explore import explore, explore_seed

BLE_SEEDS = range(0, 100)


def test_100_seeds_over_ble_violate_no_invariant() -> None:
    bad = [
        f"seed {r.seed}: {r.violations[0]} (replay: {r.replay})"
        for r in explore(BLE_SEEDS, scheme="blesim")
        if r.violations
    ]
    assert not bad, "\n".join(bad)


def test_the_host_really_talks_ble(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every host link of a seed is the BLE transport, its writes cut to ATT MTU - 3."""
    from lllt.explore import ble

    links: list[Any] = []
    init = ble.BleLink.__init__

    def record(self: Any, *args: Any, **kw: Any) -> None:
        init(self, *args, **kw)
        links.append(self)

    monkeypatch.setattr(ble.BleLink, "__init__", record)
    rep = explore_seed(0, "blesim")
    assert not rep.violations and rep.sessions >= 1
    used = [link for link in links if link.writes]
    assert used, "no host link wrote anything"
    assert all(link.att_mtu == ble.MTU for link in used)
    assert max(link.max_write for link in used) <= ble.MTU - 3
    assert all(link.setup is None and link._writer is None for link in links), "left open"

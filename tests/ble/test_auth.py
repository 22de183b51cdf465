"""Who can do what over Bluetooth, the one link anyone nearby can reach.

The cap here has its own key (``key=`` on the simulator: the development key is refused).
An unauthenticated client can read and stop, never add energy; a recorded authenticated
exchange replayed later starts nothing; a wrong key fails clearly (exit 3); and a new
key is never taken over BLE.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lllt import clock
from lllt import wire as W
from lllt.device import Cap
from lllt.errors import AuthError, Rejected

from .conftest import write_protocol

KEY = bytes(range(1, 33))
URL = f"blesim://reference-cap?speed=max&key={KEY.hex()}"


@pytest.fixture(autouse=True)
def _no_stored_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLLT_KEYS", str(tmp_path / "no-keys.toml"))
    monkeypatch.delenv("LLLT_KEY", raising=False)


def _plan(cap: Cap) -> W.UploadPlan:
    red = [c.id for c in cap.info.channels if c.wavelength_nm == 655]
    step = W.PlanStep(
        W.StepKind.DURATION, 5_000, 0, 0.0, 100.0, tuple(W.ChannelSetpoint(c, 3.0) for c in red)
    )
    return W.UploadPlan(Cap.new_plan_id(), W.LinkPolicy.STOP, 1000, (step,))


def run(body: Any, url: str = URL, **kw: Any) -> Any:
    async def main() -> Any:
        async with Cap.connect(url, **kw) as cap:
            return await body(cap)

    return clock.run(main(), virtual=True, speed=None)


def test_unauthenticated_client_can_read_and_abort_but_add_no_energy() -> None:
    async def body(cap: Cap) -> dict[str, Any]:
        out: dict[str, Any] = {}
        plan = _plan(cap)
        for name, msg in (
            ("upload", plan),
            ("start", W.Start(plan.plan_id)),
            ("resume", W.Resume()),
        ):
            try:
                await cap.request(msg)
                out[name] = "accepted"
            except Rejected as err:
                out[name] = err.code  # type: ignore[attr-defined]
        out["status"] = (await cap.status()).state
        await cap.abort()  # stopping is never refused
        out["after_abort"] = (await cap.status()).state
        return out

    out = run(body)
    assert out["upload"] == W.NackCode.AUTH_REQUIRED
    assert out["start"] == W.NackCode.AUTH_REQUIRED
    assert out["resume"] == W.NackCode.AUTH_REQUIRED
    assert out["status"] == out["after_abort"] == W.State.IDLE


def test_a_replayed_authenticated_exchange_starts_nothing() -> None:
    async def body(cap: Cap) -> dict[str, Any]:
        t: Any = cap.transport
        sent: list[bytes] = []
        original = t._write
        t._write = lambda data: (sent.append(bytes(data)), original(data))[1]
        plan = _plan(cap)
        await cap.upload(plan)
        await cap.start(plan.plan_id)
        await cap.abort()
        t._write = original
        recorded = b"".join(sent)
        records_before = len(await cap.records())
        # replayed on the same connection: answered from memory or refused, never run
        t.write(recorded)
        await cap.status()
        same = await cap.status()
        # and on a new connection (a new nonce)
        await cap.reconnect()
        t.write(recorded)
        await cap.status()
        fresh = await cap.status()
        records_after = len(await cap.records())
        return {"same": same, "fresh": fresh, "before": records_before, "after": records_after}

    out = run(body, key=KEY)
    for st in (out["same"], out["fresh"]):
        assert st.state == W.State.IDLE
        assert not st.flags & W.TelemetryFlag.EMITTING
    assert out["after"] == out["before"] == 1  # the one real session, nothing more


def test_wrong_key_fails_with_a_clear_message_and_exit_3(tmp_path: Path) -> None:
    proto = write_protocol(tmp_path / "p.toml")
    env = dict(os.environ, LLLT_KEY="ab" * 32, LLLT_KEYS=str(tmp_path / "none.toml"))
    db = str(tmp_path / "db")
    out = subprocess.run(
        [sys.executable, "-m", "lllt", "run", str(proto), "--device", URL, "--yes", "--db", db],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 3, out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    text = out.stderr.lower()
    assert "key" in text and ("authentication" in text or "auth" in text), out.stderr


def test_the_right_key_runs_a_session_over_ble() -> None:
    async def body(cap: Cap) -> W.Started:
        plan = _plan(cap)
        await cap.upload(plan)
        started = await cap.start(plan.plan_id)
        await cap.abort()
        return started

    assert run(body, key=KEY).result == W.StartResult.STARTED
    with pytest.raises(AuthError):
        run(body, key=bytes(32))


def test_provisioning_over_ble_is_refused_by_the_cap_and_by_lllt_pair(tmp_path: Path) -> None:
    async def body(cap: Cap) -> int:
        try:
            await cap.provision_key(bytes(range(100, 132)))
        except Rejected as err:
            return int(err.code)  # type: ignore[attr-defined]
        return 0

    # even a fresh cap, even with its button held: never over Bluetooth
    assert run(body, "blesim://reference-cap?speed=max&button=held") == W.NackCode.WIRED_ONLY
    out = subprocess.run(
        [sys.executable, "-m", "lllt", "pair", "blesim://reference-cap?speed=max"],
        capture_output=True,
        text=True,
        env=dict(os.environ, LLLT_KEYS=str(tmp_path / "k.toml")),
        timeout=60,
    )
    assert out.returncode == 2
    assert "USB cable only" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "k.toml").exists()

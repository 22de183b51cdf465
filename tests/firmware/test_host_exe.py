"""The host firmware executable: it says where it serves, talks the wire protocol over TCP
and a pseudo-terminal, runs a session through lllt's own client, and refuses bad
arguments with a clear message."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
from collections.abc import Iterator

import pytest

from lllt import wire
from lllt.device import Cap

from .conftest import FIRMWARE, make, need, need_tool

EXE = FIRMWARE / "build" / "lllt-fw-host"
URL = re.compile(r"\b((?:serial|socket)://\S+)")


def _build() -> None:
    need_tool("cc", "gcc")
    make("host")


class Served:
    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [str(EXE), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        m = URL.search(line)
        assert m, f"no address in {line!r}"
        self.url = m.group(1)

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGINT)
        _, err = self.proc.communicate(timeout=5)
        assert self.proc.returncode == 0, err
        return err


@pytest.fixture
def tcp() -> Iterator[Served]:
    _build()
    s = Served("--tcp", "127.0.0.1:0", "--speed", "20")
    yield s
    s.stop()


async def _session(url: str) -> wire.SessionRecord:
    async with Cap.connect(url) as cap:
        assert cap.info.hello.model == "lllt reference cap"
        assert cap.info.hello.clock_rate == 20.0
        step = wire.PlanStep(
            wire.StepKind.DURATION, 3000, 1000, 0.0, 100.0, (wire.ChannelSetpoint(2, 4.0),)
        )
        plan = wire.UploadPlan(
            plan_id=4242, policy=wire.LinkPolicy.STOP, lease_ms=3000, steps=(step,)
        )
        await cap.upload(plan)
        await cap.start(4242)
        for _ in range(200):
            await asyncio.sleep(0.02)
            recs = await cap.records()
            if recs and recs[0].outcome != wire.Outcome.RUNNING:
                return recs[0]
    raise AssertionError("the session did not end")


def test_tcp_serves_a_session_through_the_lllt_client(tcp: Served) -> None:
    assert tcp.url.startswith("socket://127.0.0.1:")
    rec = asyncio.run(_session(tcp.url))
    assert rec.outcome == wire.Outcome.COMPLETED
    # 4 mW/cm² for 3 s less half the 1 s ramp: 10 mJ/cm²
    assert rec.fluence[2] == pytest.approx(0.010, rel=1e-3)
    assert rec.plan_id == 4242


def test_pty_serves_the_same_device() -> None:
    _build()
    need(os.path.exists("/dev/ptmx"), "this machine has no pseudo-terminals")
    s = Served("--pty", "--speed", "20")
    try:
        assert s.url.startswith("serial:///dev/")
        rec = asyncio.run(_session(s.url))
        assert rec.outcome == wire.Outcome.COMPLETED
    finally:
        s.stop()


def test_a_reboot_fault_leaves_power_loss() -> None:
    _build()
    s = Served("--tcp", "127.0.0.1:0", "--speed", "20", "--faults", "reboot@2s")

    async def body() -> wire.SessionRecord:
        async with Cap.connect(s.url) as cap:
            step = wire.PlanStep(
                wire.StepKind.DURATION, 60000, 0, 0.0, 100.0, (wire.ChannelSetpoint(0, 3.0),)
            )
            plan = wire.UploadPlan(
                plan_id=77, policy=wire.LinkPolicy.FINISH, lease_ms=3000, steps=(step,)
            )
            await cap.upload(plan)
            await cap.start(77)
        await asyncio.sleep(0.3)  # 6 s of device time: the reboot came at 2 s
        async with Cap.connect(s.url) as cap:
            assert cap.info.hello.boot_count == 2
            return (await cap.records())[0]

    try:
        rec = asyncio.run(body())
        assert rec.outcome == wire.Outcome.POWER_LOSS
        assert 0.0 <= rec.fluence[0] <= 0.006 + 1e-9  # the last checkpoint before 2 s
    finally:
        s.stop()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ([], "--tcp HOST:PORT or --pty"),
        (["--tcp", "nowhere"], "HOST:PORT"),
        (["--tcp", "127.0.0.1:0", "--speed", "max"], "--speed max"),
        (["--tcp", "127.0.0.1:0", "--profile", "toaster"], "unknown profile toaster"),
        (["--tcp", "127.0.0.1:0", "--faults", "meltdown@1s"], "unknown fault"),
        (["--tcp", "127.0.0.1:0", "--key", "abc"], "64 hex digits"),
        (["--frobnicate"], "unknown option --frobnicate"),
    ],
)
def test_bad_arguments_are_explained(args: list[str], says: str) -> None:
    _build()
    proc = subprocess.run([str(EXE), *args], capture_output=True, text=True, timeout=10)
    assert proc.returncode == 2
    assert says in proc.stderr
    assert "Traceback" not in proc.stderr

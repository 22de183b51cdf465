"""The Cortex-M3 image under QEMU (mps2-an385): it fits its budget, boots, answers over
the TCP serial port through lllt's client, runs a session and keeps its interlocks."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from lllt import wire
from lllt.device import Cap

from .conftest import FIRMWARE, make, need_tool

SERVE = FIRMWARE / "port" / "qemu-mps2-an385" / "serve.py"


def _build() -> None:
    need_tool("arm-none-eabi-gcc", "gcc-arm-none-eabi libnewlib-arm-none-eabi")
    need_tool("qemu-system-arm", "qemu-system-arm")
    make("qemu")


def test_image_fits_64k_flash_and_16k_ram() -> None:
    need_tool("arm-none-eabi-gcc", "gcc-arm-none-eabi libnewlib-arm-none-eabi")
    out = make("size").stdout
    m = re.search(r"flash (\d+) bytes .* RAM (\d+) bytes", out)
    assert m, out
    assert int(m.group(1)) <= 65536 and int(m.group(2)) <= 16384


class Qemu:
    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(SERVE), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        m = re.search(r"socket://\S+", line)
        assert m, f"no address in {line!r}: {self.proc.stderr.read() if self.proc.stderr else ''}"
        self.url = m.group(0)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()


@pytest.fixture
def qemu() -> Iterator[Qemu]:
    _build()
    # 10x: the image's watchdog (100 ms of device time) is then 10 ms of host time; at 50x
    # (2 ms) a loaded machine stalled QEMU long enough to reset the image mid-session
    q = Qemu("--speed", "10", "--faults", "overtemp:2@4s")
    yield q
    q.stop()


def test_qemu_runs_a_session_and_cuts_off_when_hot(qemu: Qemu) -> None:
    async def body() -> tuple[wire.SessionRecord, wire.SessionRecord]:
        async with Cap.connect(qemu.url) as cap:
            hello = cap.info.hello
            assert hello.model == "lllt reference cap" and hello.clock_rate == 10.0
            assert hello.max_payload == 1536  # the small part takes smaller frames
            step = wire.PlanStep(
                wire.StepKind.DURATION, 2000, 0, 0.0, 100.0, (wire.ChannelSetpoint(4, 5.0),)
            )
            plan = wire.UploadPlan(
                plan_id=11, policy=wire.LinkPolicy.FINISH, lease_ms=3000, steps=(step,)
            )
            await cap.upload(plan)
            await cap.start(11)
            for _ in range(100):
                await asyncio.sleep(0.05)
                first = (await cap.records())[0]
                if first.outcome != wire.Outcome.RUNNING:
                    break
            # a long session that the overtemp fault on zone 2 (channel 4) must stop
            long = wire.PlanStep(
                wire.StepKind.DURATION, 3_000_000, 0, 0.0, 100.0, (wire.ChannelSetpoint(4, 5.0),)
            )
            await cap.upload(
                wire.UploadPlan(
                    plan_id=12, policy=wire.LinkPolicy.FINISH, lease_ms=600_000, steps=(long,)
                )
            )
            await cap.start(12)
            for _ in range(600):
                await asyncio.sleep(0.1)
                second = (await cap.records())[0]
                if second.outcome != wire.Outcome.RUNNING:
                    break
            return first, second

    first, second = asyncio.run(body())
    assert first.outcome == wire.Outcome.COMPLETED
    assert first.fluence[4] == pytest.approx(0.010, rel=1e-3)
    assert second.outcome == wire.Outcome.INTERLOCK
    assert second.reason == wire.Interlock.THERMAL_CUTOFF


BOOTS = 30


def test_every_boot_answers_the_handshake() -> None:
    """Thirty fresh boots, each one handshake through lllt's client: every one answers.

    The UART receive interrupt was once acknowledged after the last read; a byte landing in
    between raised no interrupt and the link went deaf for good, about one boot in eight
    (the host's ``\\x00`` and its HELLO arrive as two writes). Thirty boots catch that with
    a chance of about 98 %.
    """
    from lllt_sim import fwharness

    _build()

    async def hello(url: str) -> str:
        async with Cap.connect(url) as cap:
            return cap.info.protocol

    deaf = []
    for boot in range(BOOTS):
        with fwharness.QemuFirmware(None, "--speed", "10") as server:
            try:
                asyncio.run(hello(server.url))
            except Exception as err:  # any failure is a deaf boot
                deaf.append(f"boot {boot}: {type(err).__name__}: {err}")
    assert not deaf, "\n".join(deaf)


def test_a_reset_keeps_the_records_as_flash_would() -> None:
    """A system reset (here QEMU's, as a watchdog or a debugger would make one) keeps the
    persistent storage: the session that was running is in the records after the reboot,
    ended by the power loss, and the boot count has gone up. The image once erased its
    storage at every boot without ``--state``, so a watchdog reset left no records at all."""
    import json
    import shutil
    import socket
    import tempfile
    from pathlib import Path

    from lllt_sim import fwharness

    _build()
    qmp_path = Path(tempfile.mkdtemp(prefix="lllt-qmp-")) / "qmp.sock"
    extra = ["-qmp", f"unix:{qmp_path},server=on,wait=off"]

    def system_reset() -> None:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(str(qmp_path))
            f = sock.makefile("rw")
            f.readline()  # the greeting
            for command in ("qmp_capabilities", "system_reset"):
                f.write(json.dumps({"execute": command}) + "\n")
                f.flush()
                while "return" not in json.loads(f.readline()):
                    pass  # an event before the reply

    async def body() -> tuple[int, tuple[wire.SessionRecord, ...], int]:
        async with Cap.connect(server.url) as cap:
            step = wire.PlanStep(
                wire.StepKind.DURATION, 600_000, 0, 0.0, 100.0, (wire.ChannelSetpoint(4, 5.0),)
            )
            await cap.upload(
                wire.UploadPlan(
                    plan_id=21, policy=wire.LinkPolicy.FINISH, lease_ms=60_000, steps=(step,)
                )
            )
            await cap.start(21)
            await asyncio.sleep(0.5)
            before = (await cap.status()).boot_count
        system_reset()
        await asyncio.sleep(0.5)
        async with Cap.connect(server.url) as cap:
            return before, await cap.records(), (await cap.status()).boot_count

    try:
        with fwharness.QemuFirmware(None, "--speed", "10", extra=extra) as server:
            before, records, after = asyncio.run(body())
    finally:
        shutil.rmtree(qmp_path.parent, ignore_errors=True)
    assert after == before + 1
    assert records, "the reset erased the records"
    assert records[0].plan_id == 21 and records[0].boot_count == before
    assert records[0].outcome == wire.Outcome.POWER_LOSS

"""``fw://``: the C firmware library as a device, with the simulator's plant and faults.

The URL takes the options of ``sim://``; every device fault of the simulator's grammar
reaches the firmware through the plant (or, for reboot and the link faults, through the
runner) and ends the way it ends on the simulator; the state file keeps the firmware's
flash between processes; a run is the same bytes every time; bad input is one clear line.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lllt import clock
from lllt import wire as W
from lllt.device import Cap
from lllt.errors import InvalidInput, URLError

RED = (0, 2, 4, 6)


def _run(url: str, body: Any) -> Any:
    async def main() -> Any:
        async with Cap.connect(url) as cap:
            return await body(cap)

    return clock.run(main(), virtual=True, speed=None)


def _plan(
    seconds: float = 20.0, irr: float = 5.0, policy: int = 0, plan_id: int | None = None
) -> W.UploadPlan:
    step = W.PlanStep(
        W.StepKind.DURATION,
        round(seconds * 1000),
        0,
        0.0,
        100.0,
        tuple(W.ChannelSetpoint(c, irr) for c in RED),
    )
    pid = plan_id if plan_id is not None else Cap.new_plan_id()
    return W.UploadPlan(pid, W.LinkPolicy(policy), 60_000, (step,))


async def _session(cap: Cap, seconds: float = 20.0, plan_id: int | None = None) -> dict[str, Any]:
    """A session with the given plan until SESSION_END (or 30 s): events and records."""
    pid = await cap.upload(_plan(seconds, plan_id=plan_id))
    events: list[W.Event] = []
    tel: list[W.Telemetry] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + cap.host_seconds((seconds + 10) * 1000)
    with cap.stream() as stream:
        await cap.start(pid)
        while loop.time() < deadline:
            msg = await stream.get(cap.host_seconds((seconds + 10) * 1000))
            if isinstance(msg, W.Event):
                events.append(msg)
                if msg.kind in (W.EventKind.SESSION_END, W.EventKind.BOOT):
                    break
            else:
                tel.append(msg)
    records = await cap.records()  # a read: no HELLO needed after a reboot
    return {"pid": pid, "events": events, "tel": tel, "records": records}


def _summary(out: dict[str, Any]) -> dict[str, Any]:
    ev = [(W.EventKind(e.kind).name, e.a, e.b) for e in out["events"]]
    rec = next((r for r in out["records"] if r.plan_id == out["pid"]), None)
    return {
        "events": ev,
        "outcome": None if rec is None else W.Outcome(rec.outcome).name,
        "reason": None if rec is None else rec.reason,
        "fluence": None if rec is None else [round(f * 1e6) for f in rec.fluence],
    }


FAULTS = [
    "overtemp:front@2s",  # heats, but not to the cut-off within 20 s: completes
    "led_open:2@3s",
    "stuck_on:1@4s",
    "brownout@5s+2s",
    "head_off@3s+4s",
    "thermistor_open:top@6s",
    "thermistor_short:back@6s",
    "reboot@7s",
]


@pytest.mark.parametrize("faults", FAULTS)
def test_device_faults_end_as_on_the_simulator(fw_library: None, faults: str) -> None:
    """The same fault at the same moment: the same events, outcome and records."""
    got = {}
    for scheme in ("sim", "fw"):
        url = f"{scheme}://reference-cap?speed=max&seed=4&faults={faults}"
        got[scheme] = _summary(_run(url, _session))
    assert got["fw"]["events"] == got["sim"]["events"]
    assert got["fw"]["outcome"] == got["sim"]["outcome"]
    assert got["fw"]["reason"] == got["sim"]["reason"]
    for f, g in zip(got["sim"]["fluence"], got["fw"]["fluence"], strict=True):
        assert g == pytest.approx(f, rel=0.01, abs=2)
    if faults.startswith("reboot"):
        assert got["fw"]["outcome"] == "POWER_LOSS"
    if faults.startswith(("brownout", "stuck_on", "thermistor")):
        assert got["fw"]["outcome"] == "INTERLOCK"


def test_link_drop_silences_the_firmware_both_ways(fw_library: None) -> None:
    async def body(cap: Cap) -> list[int]:
        pid = await cap.upload(_plan(10.0))
        times = []
        with cap.telemetry() as tel:
            await cap.start(pid)
            while True:
                t = await tel.get(30.0)
                times.append(t.time_ms)
                if t.time_ms > 9000:
                    return times

    times = _run("fw://reference-cap?speed=max&faults=link_drop@2s+3s", body)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert max(gaps) >= 2900  # nothing came through while the link was down
    assert sorted(gaps)[len(gaps) // 2] == 100


def test_the_same_seed_gives_the_same_bytes(fw_library: None) -> None:
    def run_once() -> list[Any]:
        out = _run(
            "fw://reference-cap?speed=max&seed=9&faults=head_off@2s+1s",
            lambda cap: _session(cap, 5.0, plan_id=77),
        )
        return [(t.time_ms, t.temperature, t.fluence) for t in out["tel"]] + out["events"]

    first = run_once()
    assert len(first) > 50
    assert first == run_once()


def test_state_file_keeps_the_records_between_processes(fw_library: None, tmp_path: Path) -> None:
    state = tmp_path / "cap.fwstate"
    url = f"fw://reference-cap?speed=max&state={state}"
    first = _run(url, lambda cap: _session(cap, 2.0))
    assert state.exists()

    async def records(cap: Cap) -> tuple[Any, Any]:
        return await cap.records(), cap.info.hello.boot_count

    recs, boots = _run(url, records)
    assert [r.plan_id for r in recs] == [first["pid"]]
    assert recs[0].outcome == W.Outcome.COMPLETED
    assert boots == 2


def test_a_simulator_state_file_is_refused_clearly(fw_library: None, tmp_path: Path) -> None:
    state = tmp_path / "sim.json"
    _run(f"sim://reference-cap?speed=max&state={state}", lambda cap: cap.status())
    with pytest.raises(URLError, match="not a firmware state file"):
        _run(f"fw://reference-cap?speed=max&state={state}", lambda cap: cap.status())


@pytest.mark.parametrize(
    ("url", "error", "match"),
    [
        ("fw://no-such-cap?speed=max", URLError, "Known profiles"),
        ("fw://reference-cap?speed=max&key=abcd", URLError, "32 bytes"),
        ("fw://reference-cap?speed=max&ambient=90", URLError, "temperature"),
        ("fw://reference-cap?speed=max&faults=led_open:99", URLError, "no channel 99"),
        ("fw://reference-cap?speed=max&bogus=1", URLError, "unknown option"),
    ],
)
def test_bad_urls_are_one_clear_error(
    fw_library: None, url: str, error: type[Exception], match: str
) -> None:
    with pytest.raises(error) as exc:
        _run(url, lambda cap: cap.status())
    assert match in str(exc.value) + str(getattr(exc.value, "advice", ""))


def test_speed_needs_the_virtual_clock(fw_library: None) -> None:
    async def main() -> None:
        async with Cap.connect("fw://reference-cap?speed=max"):
            pass

    with pytest.raises(InvalidInput, match="virtual clock"):
        clock.run(main(), virtual=False)


def test_a_missing_library_names_the_make_command(tmp_path: Path) -> None:
    code = (
        "from lllt import SyncCap\n"
        "try:\n"
        "    SyncCap.connect('fw://reference-cap?speed=max')\n"
        "except Exception as err:\n"
        "    print(type(err).__name__, err, getattr(err, 'advice', ''))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "LLLT_FWLIB": str(tmp_path / "missing.so")},
        check=True,
    )
    assert "make -C firmware lib" in out.stdout
    assert "Traceback" not in out.stdout + out.stderr


def test_status_before_the_first_tick_reports_what_the_sensors_read(fw_library: None) -> None:
    """Spec §8: a STATUS carries readings (or -32768, no reading), never invented ones.

    ``core_boot()`` once filled every zone with 25.00 °C until the first tick; a host asking
    at once in a warm room (explorer seed 160, 33.8 °C) saw a cool scalp and passed a
    pre-flight check that the simulator refused. It now reads the sensors at boot.
    """

    def first_status(scheme: str) -> W.Status:
        return _run(f"{scheme}://reference-cap?speed=max", lambda cap: cap.status())  # type: ignore[no-any-return]

    sim, fw = first_status("sim"), first_status("fw")
    assert fw.time_ms == sim.time_ms == 0
    assert fw.temperature == sim.temperature
    assert fw.supply_mv == sim.supply_mv and fw.ambient == sim.ambient

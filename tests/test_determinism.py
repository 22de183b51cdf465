"""A speed-up changes wall time, nothing else: one seed gives identical telemetry at any speed."""

from __future__ import annotations

import asyncio
import time

from lllt import clock
from lllt import wire as W
from lllt.device import Cap


async def _session(url: str) -> list[dict]:
    out = []
    async with Cap.connect(url) as cap:
        red = [c.id for c in cap.info.channels if c.wavelength_nm == 655]
        step = W.PlanStep(
            W.StepKind.DURATION, 8000, 2000, 10.0, 50.0,
            tuple(W.ChannelSetpoint(c, 8.0) for c in red),
        )  # fmt: skip
        plan = W.UploadPlan(12345, W.LinkPolicy.FINISH, 1000, (step,))
        await cap.upload(plan)
        await cap.set_telemetry_rate(20)
        with cap.stream() as stream:
            await cap.start(plan.plan_id)
            async for msg in stream:
                out.append(W.to_dict(msg) | {"type": msg.TYPE.name})
                if isinstance(msg, W.Event) and msg.kind == W.EventKind.SESSION_END:
                    break
        out.append({"records": W.to_dict(await cap.records())})
    await asyncio.sleep(0)
    return out


def _run(speed: str) -> tuple[list[dict], float]:
    url = f"sim://reference-cap?speed={speed}&seed=7&faults=corrupt:0.001"
    virtual, factor = True, None if speed == "max" else float(speed)
    t0 = time.perf_counter()
    result = clock.run(_session(url), virtual=virtual, speed=factor)
    return result, time.perf_counter() - t0


def test_same_seed_same_telemetry_at_max_and_50x() -> None:
    fast, _ = _run("max")
    paced, paced_wall = _run("50")
    assert len(fast) > 150  # 8 s at 20 Hz, events and records
    assert fast == paced
    # and the pacing was real: 8 s of device time at 50x is at least 0.16 s of wall time
    assert paced_wall >= 8.0 / 50 * 0.9


def test_another_seed_gives_other_readings() -> None:
    a, _ = _run("max")
    url = "sim://reference-cap?speed=max&seed=8&faults=corrupt:0.001"
    b = clock.run(_session(url), virtual=True)
    assert a != b

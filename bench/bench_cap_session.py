"""A 25-minute single-phase plan with 10 Hz telemetry through Cap on sim://?speed=max.

Target (issue 2): at least 1,000x real time, i.e. <= 1.5 s wall. Baseline, measured in
the same run: the bare virtual-clock loop doing the same 15,000 telemetry-period waits
with nothing else, so the ratio shows what the simulator, codec and client add.
"""

from __future__ import annotations

import asyncio

from _common import best_of, report
from lllt import clock
from lllt import wire as W
from lllt.device import Cap

SESSION_S = 25 * 60


async def session() -> int:
    async with Cap.connect("sim://reference-cap?speed=max&seed=1") as cap:
        red = [c.id for c in cap.info.channels if c.wavelength_nm == 655]
        step = W.PlanStep(
            W.StepKind.DURATION,
            SESSION_S * 1000,
            10_000,
            0.0,
            100.0,
            tuple(W.ChannelSetpoint(c, 3.0) for c in red),
        )
        pid = await cap.upload(W.UploadPlan(cap.new_plan_id(), W.LinkPolicy.FINISH, 3000, (step,)))
        frames = 0
        with cap.stream() as stream:
            await cap.start(pid)
            async for msg in stream:
                if isinstance(msg, W.Telemetry):
                    frames += 1
                elif msg.kind == W.EventKind.SESSION_END:
                    break
        return frames


async def baseline() -> None:
    for _ in range(SESSION_S * 10):
        await asyncio.sleep(0.1)


def main() -> None:
    base = best_of(lambda: clock.run(baseline(), virtual=True))
    result: list[int] = []
    t = best_of(lambda: result.append(clock.run(session(), virtual=True)))
    frames = result[-1]
    report(
        "cap_session_25min_10hz",
        wall_s=f"{t:.3f}",
        speedup=f"{SESSION_S / t:.0f}x",
        frames=frames,
        baseline_loop_s=f"{base:.3f}",
        ratio_to_baseline=f"{t / base:.1f}",
        target="<=1.5 s (>=1000x)",
        ok=t <= 1.5,
    )


if __name__ == "__main__":
    main()

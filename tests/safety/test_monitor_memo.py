"""The runtime monitor skips the per-channel loops of a frame whose commanded and measured
outputs are those of the frame before (most frames of a steady session). The verdicts
must be exactly those of a monitor that looks at every frame afresh: checked here on
random frame sequences that repeat outputs, change them, drift off the setpoint, go
stuck on, change step, pause and run hot (the monitor derates; this device does not
follow, so its setpoints soon stand above what the plan allows)."""

from __future__ import annotations

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from lllt import wire
from lllt.safety.monitor import ActionKind, RuntimeMonitor

from ._support import MIN, device, frame, make_plan, on_channels, step

DEV = device()
ST = step(DEV, {655: 3.0}, duration=25 * MIN, ramp=10.0)
PLAN = make_plan(DEV, ST, step(DEV, {655: 1.5}, duration=25 * MIN, ramp=10.0))
SP = on_channels(DEV, ST)
N = len(DEV.channels)


class _Afresh(RuntimeMonitor):
    """The same rules without the memory of the frame before."""

    def on_telemetry(self, t: wire.Telemetry, now: float | None = None):  # type: ignore[no-untyped-def]
        self._output_seen = None
        self._stuck_seen = ((), (), -1)
        return super().on_telemetry(t, now)


# one frame's change against the frame before: what a device or a fault could do
changes = st.one_of(
    st.just(("same",)),
    st.tuples(st.just("drift"), st.integers(0, N - 1), st.floats(0.0, 6.0)),
    st.tuples(st.just("stuck"), st.integers(0, N - 1), st.floats(0.0, 1.0)),
    st.tuples(st.just("derate"), st.sampled_from([1000, 900, 800])),
    st.tuples(st.just("step"), st.integers(0, 1)),
    st.tuples(st.just("state"), st.sampled_from([wire.State.RUNNING, wire.State.PAUSED])),
    st.tuples(
        st.just("restore"),
    ),
    st.tuples(st.just("temperature"), st.sampled_from([36.0, 41.0])),  # 41: derates
)


@given(st.lists(changes, min_size=1, max_size=60), st.sampled_from([1, 3, 10]))
@example([("drift", 0, 2.0), ("state", wire.State.PAUSED), ("state", wire.State.RUNNING)], 3)
@example([("same",), ("step", 1)], 3)  # the second step allows half the output
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_the_verdicts_are_those_of_a_monitor_that_looks_afresh(
    seq: list[tuple[object, ...]], repeat: int
) -> None:
    memo, fresh = RuntimeMonitor(PLAN, plan_id=7), _Afresh(PLAN, plan_id=7)
    sp, irr = list(SP), list(SP)
    factor, stp, state, temp = 1.0, 0, wire.State.RUNNING, 36.0
    t = 0
    for change in seq:
        kind = change[0]
        if kind == "drift":
            irr[change[1]] = change[2]  # type: ignore[index]
        elif kind == "stuck":
            sp[change[1]] = 0.0  # type: ignore[index]
            irr[change[1]] = change[2]  # type: ignore[index]
        elif kind == "derate":
            factor = change[1] / 1000  # type: ignore[operator]
        elif kind == "step":
            stp = change[1]  # type: ignore[assignment]
        elif kind == "state":
            state = change[1]  # type: ignore[assignment]
        elif kind == "restore":
            sp, irr = list(SP), list(SP)
        elif kind == "temperature":
            temp = change[1]  # type: ignore[assignment]
        for _ in range(repeat):  # the same outputs, frame after frame
            t += 100
            on = factor if state == wire.State.RUNNING else 0.0  # paused: no output
            f = frame(
                DEV, t, state=state, step=stp,
                setpoint=[v * on for v in sp], irradiance=[v * on for v in irr],
                fluence=0.0, temperature=temp,
            )  # fmt: skip
            a, b = memo.on_telemetry(f), fresh.on_telemetry(f)
            assert (a.kind, a.rule, a.reason, a.channel) == (b.kind, b.rule, b.reason, b.channel)
            if not a.is_continue and a.kind is not ActionKind.DERATE:
                return  # the session would stop here
            # a derate the device does not follow: its old setpoints soon exceed the plan

"""Named regression scenarios: issue 7's findings and the explorer's own, by hand.

``lllt explore --scenario NAME`` runs one; tests/explore/test_named.py runs them all.
Findings 10-13 of issue 7 (nonces, the development key, units, the decoder and the spec's
open points) are not about sessions and have their own tests (tests/session,
tests/test_wire_vectors.py, tests/protocol).
"""

from __future__ import annotations

from collections.abc import Callable

from lllt.explore.scenario import HostEvent, HostRun, Scenario

#: a 5-minute 655 nm session (within the evidenced band: no --research)
FIVE_MIN = """format = "lllt-protocol/1"
id = "explore-named"
name = "named scenario"
references = ["lllt explore"]

[schedule]
min_interval = "12 h"
max_sessions_per_week = 7

[[phases]]
name = "treatment"
duration = "5 min"
emit = { "655nm" = "3 mW/cm^2" }
"""

#: 735 nm, and the file does not say research
FAR_RED = FIVE_MIN.replace('"655nm" = "3 mW/cm^2"', '"735nm" = "3 mW/cm^2"')


def _run(at: float = 0.0, **kw: object) -> HostRun:
    return HostRun(at_s=at, protocol="named", protocol_text=str(kw.pop("text", FIVE_MIN)), **kw)  # type: ignore[arg-type]


NAMED: dict[str, Callable[[], Scenario]] = {
    # 1: a lost START reply hides a whole session; the next run must be refused
    "lost-start-reply": lambda: Scenario(
        9001,
        name="lost-start-reply",
        runs=[_run(link="drop,to=host,type=STARTED"), _run(900.0)],
    ),
    # 2: a lost ABORT is resent (the monitor's abort on overheating, three ABORTs lost)
    "lost-abort-resent": lambda: Scenario(
        9002,
        name="lost-abort-resent",
        faults="overtemp@10s",
        runs=[_run(abort_temp_c=40.0, link="drop,to=device,type=ABORT,n=3")],
    ),
    # 2 (led_open): the monitor aborts on missing output, first ABORTs lost
    "lost-abort-led-open": lambda: Scenario(
        9003,
        name="lost-abort-led-open",
        faults="led_open:0@5s",
        runs=[_run(link="drop,to=device,type=ABORT,n=2")],
    ),
    # 3: SIGTERM, SIGHUP, SIGQUIT stop like Ctrl-C, with the first ABORT lost
    "termination-signals": lambda: Scenario(
        9004,
        name="termination-signals",
        runs=[
            _run(link="drop,to=device,type=ABORT,n=1", events=[HostEvent("SIGTERM", 20.0)]),
            _run(50000.0, power_cycle=True, events=[HostEvent("SIGHUP", 20.0)]),
            _run(100000.0, power_cycle=True, events=[HostEvent("SIGQUIT", 20.0)]),
        ],
    ),
    # explorer: a second signal (or Ctrl-C) while the first one's ABORTs are being resent
    "second-signal-while-stopping": lambda: Scenario(
        9005,
        name="second-signal-while-stopping",
        runs=[
            _run(
                link="drop,to=device,type=ABORT,n=5",
                events=[
                    HostEvent("SIGTERM", 10.0),
                    HostEvent("SIGHUP", 10.05),
                    HostEvent("ctrl_c", 10.1),
                    HostEvent("ctrl_c", 10.2),
                ],
            )
        ],
    ),
    # 4: two runs on one log at once: the second is refused (pending rows count)
    "two-runs-one-log": lambda: Scenario(
        9006,
        name="two-runs-one-log",
        runs=[_run(), _run(0.5)],
    ),
    # 5: the research gate follows the wavelengths, not the file's word
    "research-gate": lambda: Scenario(
        9007,
        name="research-gate",
        runs=[_run(text=FAR_RED), _run(60000.0, text=FAR_RED, research_ok=True)],
    ),
    # 6: a new log on the same cap starts from the device's records
    "new-log-same-cap": lambda: Scenario(
        9008,
        name="new-log-same-cap",
        runs=[_run(), _run(600.0, log=1)],
    ),
    # 7: after the reconnect window on a noisy link the host still stops the cap
    "noisy-link-still-stops": lambda: Scenario(
        9009,
        name="noisy-link-still-stops",
        faults="corrupt:0.01@20s+60s",
        runs=[_run(policy="finish", reconnect_s=5.0)],
    ),
    # 8: the head-present rule, with a device whose own head interlock is broken
    "head-present-rule": lambda: Scenario(
        9010,
        name="head-present-rule",
        faults="head_off@30s",
        defects="head_interlock",
        runs=[_run()],
    ),
    # 9: an ABORT of any payload length stops (another client's empty ABORT)
    "abort-any-length": lambda: Scenario(
        9011,
        name="abort-any-length",
        runs=[
            _run(events=[HostEvent("estop", 30.0, 0)]),
            _run(60000.0, power_cycle=True, events=[HostEvent("estop", 30.0, 3)]),
        ],
    ),
    # explorer: a reset early in a session (before its first checkpoint), START reply lost
    "reset-before-first-checkpoint": lambda: Scenario(
        9012,
        name="reset-before-first-checkpoint",
        faults="reboot@0.6s",
        runs=[
            _run(link="drop,to=host,type=STARTED,n=1", events=[HostEvent("kill", 0.3)]),
            _run(180000.0, power_cycle=True),
        ],
    ),
    # explorer: a reset mid-session: the record is up to a second old
    "reset-mid-session": lambda: Scenario(
        9013,
        name="reset-mid-session",
        faults="reboot@8.7s",
        runs=[_run()],
    ),
    # explorer (seed 2174): frames delayed on the link overtake each other; a sample from
    # before START, arriving late, must not pass for "the session ended, emitters off"
    "stale-sample": lambda: Scenario(
        9015,
        name="stale-sample",
        runs=[_run(telemetry_hz=10.0, link="delay:600ms,to=host,p=0.5", link_seed=14)],
    ),
    # counted unless proven: the START reply lost, then the cap's records are wiped
    "records-wiped": lambda: Scenario(
        9014,
        name="records-wiped",
        runs=[
            _run(link="drop,to=host,type=STARTED", events=[HostEvent("kill", 1.0)]),
            _run(900.0, power_cycle=True, wiped=True),
        ],
    ),
}

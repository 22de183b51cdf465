"""What one seed does: a cap, its faults, and the host runs against it with their events.

:func:`draw` turns a seed into a :class:`Scenario` (plain data, JSON-able, the same on
every machine: it uses only ``random.Random(seed)``). A scenario is a device (profile,
ambient temperature, device faults of the simulator's grammar) and one to four host runs,
each with a time, a protocol (a shipped one or a short generated one), run options, link
faults (the ``link=`` grammar of :mod:`lllt.linkfault`) and host events:

``ctrl_c``, ``SIGTERM``/``SIGHUP``/``SIGQUIT``
    the one stop path (the task is cancelled, as the CLI's handlers do);
``kill``
    the host process dies: no more bytes, no more writes to its log;
``estop``
    another client on the cap sends one ABORT of 0-3 payload bytes (an emergency-stop
    button, an app written from the spec) and reads STATUS;

and how a run relates to the ones before: on the same log, on a new log (``log`` index),
concurrently, shortly after, or after a power cycle hours later.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

SIGNALS = ("SIGTERM", "SIGHUP", "SIGQUIT")
PROFILES = (("reference-cap", 80), ("led-helmet-rgb", 10), ("laser-cap-678", 10))


@dataclass
class HostEvent:
    """One host event of a run: ``kind`` (``ctrl_c``, ``SIGTERM``, ``SIGHUP``, ``SIGQUIT``,
    ``kill``, ``estop``) ``at_s`` seconds after the run starts; ``arg`` is an estop's ABORT
    payload length (0-3 bytes)."""

    kind: str  # ctrl_c, SIGTERM, SIGHUP, SIGQUIT, kill, estop
    at_s: float  # after the run's start
    arg: int = 0  # estop: ABORT payload length

    def __str__(self) -> str:
        extra = f":{self.arg}" if self.kind == "estop" else ""
        return f"{self.kind}{extra}@{self.at_s:g}s"


@dataclass
class HostRun:
    """One ``lllt run`` of a scenario: when it starts (scenario seconds), its protocol and
    log, its run options, link faults and host events."""

    at_s: float  # scenario time the run starts
    protocol: str  # "shipped:NAME" or "generated"
    protocol_text: str
    log: int = 0  # which session log (0: the first; a new index: a new log)
    power_cycle: bool = False  # the cap is switched off and on before this run
    wiped: bool = False  # ... and its records are gone (a reset or a repaired cap)
    policy: str = "finish"
    telemetry_hz: float = 2.0
    lease_ms: int = 3000
    reconnect_s: float = 30.0
    stop_confirm_s: float = 30.0
    research_ok: bool = False
    abort_temp_c: float | None = None  # a tighter host limit (warn 1 °C below)
    link: str = ""
    link_seed: int = 0
    events: list[HostEvent] = field(default_factory=list)

    def describe(self) -> str:
        """The run in one line, for people."""
        bits = [
            f"t={self.at_s:g}s",
            self.protocol,
            f"log {self.log}",
            self.policy,
            f"{self.telemetry_hz:g} Hz",
        ]
        if self.power_cycle:
            bits.append("after a power cycle" + (" that wiped the records" if self.wiped else ""))
        if self.research_ok:
            bits.append("--research")
        if self.abort_temp_c is not None:
            bits.append(f"abort at {self.abort_temp_c:g} °C")
        if self.link:
            bits.append(f"link={self.link}")
        if self.events:
            bits.append("events " + ",".join(map(str, self.events)))
        return ", ".join(bits)


@dataclass
class Scenario:
    """What one seed does: a cap (profile, ambient °C, device faults, firmware defects) and
    its host runs; plain, JSON-able data."""

    seed: int
    profile: str = "reference-cap"
    ambient_c: float = 25.0
    faults: str = ""
    defects: str = ""  # firmware defects the device models (adapter.DeviceSpec.defects)
    runs: list[HostRun] = field(default_factory=list)
    name: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The scenario as plain dicts and lists (JSON-able)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Scenario:
        """A scenario from the data :meth:`to_dict` gives."""
        runs = [
            HostRun(**{**r, "events": [HostEvent(**e) for e in r.get("events", [])]})
            for r in d.get("runs", [])
        ]
        return cls(**{**d, "runs": runs})

    def describe(self) -> str:
        """The scenario for people: a line for the cap, then one per host run."""
        head = f"seed {self.seed}" + (f" ({self.name})" if self.name else "")
        lines = [
            f"{head}: {self.profile}, ambient {self.ambient_c:g} °C, faults "
            f"{self.faults or 'none'}" + (f", defects {self.defects}" if self.defects else "")
        ]
        lines += [f"  run {i}: {r.describe()}" for i, r in enumerate(self.runs)]
        return "\n".join(lines)


# --- protocols -------------------------------------------------------------------------------


def shipped_dir() -> Path:
    """The folder of lllt's shipped protocol files."""
    return Path(__file__).resolve().parent.parent / "protocols"


@cache
def shipped() -> dict[str, str]:
    """The text of each shipped protocol by file stem (read once)."""
    return {p.stem: p.read_text(encoding="utf-8") for p in sorted(shipped_dir().glob("*.toml"))}


@cache
def _profile(name: str) -> Any:
    from lllt_sim.profiles import load_profile

    return load_profile(name)


def generated_protocol(rng: random.Random, profile: str, *, heavy: bool = False) -> str:
    """A short protocol for this profile: 1-2 phases of duration or fluence."""
    p = _profile(profile)
    waves = sorted({int(c.wavelength_nm) for c in p.channels})
    top = min(float(c.max_irradiance_mw_cm2) for c in p.channels)
    zones = [z.name for z in p.zones]
    interval = rng.choice(["12 h", "12 h", "24 h", "36 h", "48 h"])
    per_week = rng.choice([2, 3, 4, 7, 7, 14])
    lines = [
        'format = "lllt-protocol/1"',
        f'id = "explore-{rng.randrange(10**6):06d}"',
        'name = "explorer protocol"',
        'references = ["generated by lllt explore"]',
        "",
        "[schedule]",
        f'min_interval = "{interval}"',
        f"max_sessions_per_week = {per_week}",
        "",
    ]
    for i in range(1 if heavy or rng.random() < 0.7 else 2):
        chosen = [w for w in waves if rng.random() < 0.6] or [rng.choice(waves)]
        irr = round(rng.uniform(0.3, 1.0) * top, 2) if not heavy else top
        emit = ", ".join(f'"{w}nm" = "{irr:g} mW/cm^2"' for w in chosen)
        lines += ["[[phases]]", f'name = "phase{i}"']
        if heavy:
            lines.append(f'fluence = "{rng.choice([4, 6, 8, 9.5]):g} J/cm^2"')
        elif rng.random() < 0.35:
            secs = rng.uniform(20, 180)
            f = irr * secs / 1000.0
            lines.append(f'fluence = "{max(0.01, round(f, 3)):g} J/cm^2"')
        else:
            lines.append(f'duration = "{rng.randrange(15, 240)} s"')
        if rng.random() < 0.3:
            lines.append(f'ramp = "{rng.randrange(1, 10)} s"')
        lines.append(f"emit = {{ {emit} }}")
        if rng.random() < 0.25 and len(zones) > 1:
            picked = [z for z in zones if rng.random() < 0.5] or [zones[0]]
            lines.append("zones = [" + ", ".join(f'"{z}"' for z in picked) + "]")
        if rng.random() < 0.15:
            lines.append(
                f'pulse = {{ frequency = "{rng.choice([10, 100, 1000])} Hz", '
                f'duty = "{rng.choice([25, 50, 80])} %" }}'
            )
        lines.append("")
    return "\n".join(lines)


# --- drawing ----------------------------------------------------------------------------------


def _weighted(rng: random.Random, items: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([i for i, _ in items], [w for _, w in items])[0]


def _device_faults(rng: random.Random, profile: str) -> str:
    p = _profile(profile)
    zone = rng.randrange(len(p.zones))
    ch = rng.choice(p.channels).id
    out: list[str] = []

    def at(lo: float = 0.0, hi: float = 120.0) -> str:
        return f"@{rng.uniform(lo, hi):.1f}s"

    def dur(lo: float, hi: float) -> str:
        return f"+{rng.uniform(lo, hi):.1f}s"

    if rng.random() < 0.10:
        out.append(f"overtemp:{zone}{at()}")
    if rng.random() < 0.04:
        out.append(f"{rng.choice(['thermistor_open', 'thermistor_short'])}:{zone}{at()}")
    if rng.random() < 0.05:
        out.append(f"led_open:{ch}{at()}")
    if rng.random() < 0.03:
        out.append(f"stuck_on:{ch}{at()}")
    if rng.random() < 0.03:
        out.append(f"brownout{at()}" + (dur(1, 30) if rng.random() < 0.5 else ""))
    if rng.random() < 0.10:
        out.append(f"link_drop{at()}{dur(0.3, 45)}")
    if rng.random() < 0.05:
        out.append(f"corrupt:{rng.choice([0.001, 0.005, 0.01, 0.03])}{at(0, 60)}{dur(1, 60)}")
    if rng.random() < 0.08:
        out.append(f"reboot{at(0, 60)}")
    if rng.random() < 0.08:
        out.append(f"head_off{at()}{dur(3, 400)}")
    return ",".join(out)


_TYPES = (
    "START",
    "STARTED",
    "ABORT",
    "ACK",
    "STATUS",
    "TELEMETRY",
    "EVENT",
    "HELLO",
    "HELLO_INFO",
    "RECORDS",
    "GET_RECORDS",
    "UPLOAD_PLAN",
    "HEARTBEAT",
    "RECORD",
    "RECORDS_END",
    "RECORD_ACCESS",
    "GET_STATUS",
)


def _link_rules(rng: random.Random) -> str:
    if rng.random() < 0.45:
        return ""
    rules: list[str] = []
    for _ in range(rng.choice([1, 1, 1, 2, 2, 3])):
        r = rng.random()
        if r < 0.12:
            rules.append("drop,to=host,type=STARTED" + rng.choice(["", ",n=1", ",n=2"]))
        elif r < 0.26:
            rules.append(f"drop,to=device,type=ABORT,n={rng.randrange(1, 8)}")
        elif r < 0.34:
            rules.append(
                f"drop,to=host,type={rng.choice(['ACK', 'STATUS', 'ACK|STATUS'])}"
                f",n={rng.randrange(1, 6)}"
            )
        elif r < 0.46:
            t = "|".join(rng.sample(_TYPES, rng.randrange(1, 4)))
            rules.append(f"drop,type={t},p={rng.choice([0.05, 0.2, 0.5])}")
        elif r < 0.54:
            rules.append(f"dup,p={rng.choice([0.05, 0.2, 0.5])}")
        elif r < 0.62:
            d = rng.choice(["20ms", "200ms", "600ms", "1500ms"])
            rules.append(
                f"delay:{d},to={rng.choice(['host', 'device'])},p={rng.choice([0.1, 0.5, 1])}"
            )
        elif r < 0.70:
            rules.append(f"corrupt,p={rng.choice([0.005, 0.02, 0.1])}")
        elif r < 0.82:
            rules.append(f"cut,at={rng.uniform(0.2, 90):.1f}s" + rng.choice(["", ",n=2"]))
        elif r < 0.92:
            rules.append(
                f"drop,to=host,type=TELEMETRY|EVENT,at={rng.uniform(0.5, 60):.1f}s,"
                f"for={rng.uniform(1, 50):.1f}s"
            )
        else:
            rules.append(f"drop,at={rng.uniform(0.2, 60):.1f}s,for={rng.uniform(0.5, 45):.1f}s")
    return ";".join(rules)


def _events(rng: random.Random, length_s: float) -> list[HostEvent]:
    out: list[HostEvent] = []
    if rng.random() < 0.5:
        return out
    for _ in range(rng.choice([1, 1, 1, 2])):
        kind = _weighted(
            rng,
            (
                ("ctrl_c", 30),
                ("SIGTERM", 10),
                ("SIGHUP", 5),
                ("SIGQUIT", 5),
                ("kill", 20),
                ("estop", 12),
            ),
        )
        at = rng.choice([rng.uniform(0.0, 0.3), rng.uniform(0.0, length_s + 10)])
        out.append(HostEvent(kind, round(at, 3), rng.randrange(0, 4) if kind == "estop" else 0))
    return sorted(out, key=lambda e: e.at_s)


def _run(rng: random.Random, profile: str, at_s: float, log: int) -> HostRun:
    heavy = rng.random() < 0.04
    if profile == "reference-cap" and rng.random() < 0.10:
        name = rng.choice(sorted(shipped()))
        protocol, text = f"shipped:{name}", shipped()[name]
        hz = 1.0
    else:
        protocol, text = (
            ("generated-heavy" if heavy else "generated"),
            generated_protocol(rng, profile, heavy=heavy),
        )
        hz = rng.choice([1.0, 2.0, 2.0, 2.0, 5.0, 10.0])
    run = HostRun(at_s=round(at_s, 3), protocol=protocol, protocol_text=text, log=log)
    run.policy = "stop" if rng.random() < 0.3 else "finish"
    run.telemetry_hz = hz
    run.lease_ms = rng.choice([1500, 3000, 3000, 5000])
    run.reconnect_s = rng.choice([30.0, 30.0, 10.0, 5.0])
    run.stop_confirm_s = rng.choice([30.0, 30.0, 10.0])
    run.research_ok = rng.random() < 0.3
    if rng.random() < 0.25:
        run.abort_temp_c = round(rng.uniform(38.0, 41.5), 1)
    run.link = _link_rules(rng)
    run.link_seed = rng.randrange(1 << 16)
    run.events = _events(rng, 240.0)
    return run


def draw(seed: int) -> Scenario:
    """The scenario of one seed (deterministic)."""
    rng = random.Random(f"lllt-explore:{seed}")
    profile = _weighted(rng, PROFILES)
    sc = Scenario(seed=seed, profile=profile)
    sc.ambient_c = round(rng.choice([25.0, 25.0, rng.uniform(18.0, 34.0)]), 1)
    sc.faults = _device_faults(rng, profile)
    if rng.random() < 0.04:  # a firmware whose head interlock is broken, off the head soon
        sc.defects = "head_interlock"
        sc.faults = ",".join(x for x in (sc.faults, f"head_off@{rng.uniform(1, 60):.1f}s") if x)
    t = 0.0
    logs = 1
    n = rng.choice([1, 2, 2, 3, 3, 4])
    for i in range(n):
        log = 0
        cycle = False
        if i > 0:
            how = _weighted(rng, (("concurrent", 15), ("soon", 35), ("new_log", 20), ("later", 30)))
            if how == "concurrent":
                t += rng.uniform(0.0, 60.0)
                log = rng.choice([0, logs])
            elif how == "soon":
                t += rng.uniform(60.0, 3600.0)
            elif how == "new_log":
                t += rng.uniform(1.0, 1800.0)
                log = logs
            else:  # hours later, the cap switched off meanwhile
                t += rng.choice([12 * 3600.0, 12.5 * 3600, 24 * 3600.0, 36 * 3600.0, 49 * 3600.0])
                t += rng.uniform(-600.0, 7200.0)
                cycle = True
                log = rng.choice([0, 0, logs])
            if log == logs:
                logs += 1
        run = _run(rng, profile, t, log)
        run.power_cycle = cycle
        sc.runs.append(run)
    # drawn last, so that the seeds drawn before this existed keep their scenarios
    for run in sc.runs[1:]:
        # with one log throughout (a new log on a wiped cap could know nothing)
        if rng.random() < 0.08 and all(r.log == run.log for r in sc.runs):
            run.power_cycle = run.wiped = True
    return sc

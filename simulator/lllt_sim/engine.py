"""What the simulated cap does at each control tick: physics, plan, interlocks, faults.

:class:`Engine` holds the device's state and advances it on a 10 ms control tick; it
knows nothing of frames or of the event loop (``device.SimDevice`` adds the wire protocol,
the link and the clock on top). Each tick: physics of the interval that ended (per-zone
two-node thermal model, LED output falling with board temperature, fluence integrated from
the *measured* output), injected faults, the hardware interlocks (thermal cut-off, sensor
range, over-output, brown-out), the plan (ramps, steps, fluence targets), then the policy
interlocks (maximum duration and fluence, head-off timeout, lease), and the outputs of the
next interval. This is an independent second implementation of the firmware's interlocks
(wire spec §8); it shares nothing with the host but the wire codec.

Speed. Ticks where nothing happens are *jumped*: while outputs are constant the thermal
model advances any number of ticks in closed form (``thermal.ZoneStep.jump``) and fluence
advances linearly, with every threshold (cut-off reading, sensor range, output saturation,
fluence targets) checked against the range the jump sweeps; a jump that could cross one
is halved until the crossing tick is found and processed on its own (``_simulate``).
``_simulate`` has no side effects, so the device can compute ahead speculatively.

Determinism. Emitter tolerance and sensor noise are seeded; the noise is a pure function
of (seed, zone, tick), so results do not depend on how ticks are batched.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from fractions import Fraction

from lllt import wire
from lllt_sim import plans
from lllt_sim.faults import Fault, parse_faults
from lllt_sim.profiles import Profile, load_profile
from lllt_sim.records import Record, load_state, save_state
from lllt_sim.thermal import ZoneStep, ZoneThermal

S = wire.State
IL = wire.Interlock
EK = wire.EventKind

INF = 1 << 62
FULL_DUTY = 10000
NOISE_TABLE = 1024  # a power of two: indexed by the top bits of a 32-bit hash
_NOISE_SHIFT = 32 - (NOISE_TABLE.bit_length() - 1)
_PHI32 = 0x9E3779B1  # 2^32 / golden ratio, odd: consecutive ticks spread over the table
#: thermistor faults: an NTC open reads very cold, a short very hot (both outside 0-80 °C)
READING_OPEN_Q = -5500
READING_SHORT_Q = 15000
SENSOR_MIN_Q = 0
SENSOR_MAX_Q = 8000
BROWNOUT_SAG_MV = 300
DROOP_FULL_MV = 40  # supply droop at full load (all channels at full drive)
TOO_HOT_MARGIN_Q = 100  # START refused (and a thermal fault kept) within 1 °C of the cut-off
#: fluence units: 0.01 mW/cm² × 0.01 % duty × one 10 ms tick = 1e-11 J/cm² = 1e-5 µJ/cm²
UNITS_PER_UJ = 100_000

# channel modes within one interval; from SAT up the output follows the board temperature
OFF, NORM, OPEN, SAT, STUCK = 0, 1, 2, 3, 4

_HARDWARE = (IL.THERMAL_CUTOFF, IL.SENSOR_FAULT, IL.OVER_OUTPUT, IL.BROWNOUT)
_FAULT_FLAG: dict[int, int] = {
    IL.THERMAL_CUTOFF: int(wire.TelemetryFlag.FAULT_THERMAL),
    IL.SENSOR_FAULT: int(wire.TelemetryFlag.FAULT_SENSOR),
    IL.OVER_OUTPUT: int(wire.TelemetryFlag.FAULT_OUTPUT),
    IL.BROWNOUT: int(wire.TelemetryFlag.FAULT_SUPPLY),
}


class _Phys:
    """Continuous state at a tick: temperatures, fluence counters, timers.

    Plain lists, copied on every change, so that speculative runs never touch the
    committed state.
    """

    __slots__ = (
        "ck_el",
        "ck_emit",
        "ck_fl",
        "ck_tick",
        "el",
        "emit",
        "fl",
        "oo",
        "sel",
        "sfl",
        "tb",
        "tick",
        "ts",
    )

    def __init__(self, tick: int, tb: list[float], ts: list[float], n_ch: int) -> None:
        self.tick = tick
        self.tb = tb
        self.ts = ts
        self.fl = [0] * n_ch  # session fluence, units of 1e-5 µJ/cm²
        self.sfl = [0] * n_ch  # fluence in the current step
        self.el = 0  # running ms this session
        self.sel = 0  # running ms this step
        self.emit = 0  # ms with measured output this session
        self.oo = [0] * n_ch  # consecutive over-output ticks
        self.ck_tick = tick
        self.ck_fl = tuple(self.fl)
        self.ck_emit = 0
        self.ck_el = 0

    def copy(self) -> _Phys:
        new = _Phys.__new__(_Phys)
        new.tick = self.tick
        new.tb = self.tb
        new.ts = self.ts
        new.fl = self.fl
        new.sfl = self.sfl
        new.el = self.el
        new.sel = self.sel
        new.emit = self.emit
        new.oo = self.oo
        new.ck_tick = self.ck_tick
        new.ck_fl = self.ck_fl
        new.ck_emit = self.ck_emit
        new.ck_el = self.ck_el
        return new

    def reset_session(self) -> None:
        n = len(self.fl)
        self.fl = [0] * n
        self.sfl = [0] * n
        self.el = self.sel = self.emit = 0
        self.ck_tick = self.tick
        self.ck_fl = tuple(self.fl)
        self.ck_emit = self.ck_el = 0


class _Cfg:
    """What the device drives during one interval (from one tick to the next)."""

    __slots__ = (
        "due",
        "duty",
        "emitting",
        "inc",
        "jumpable",
        "mode",
        "o0",
        "o1",
        "over",
        "ramping",
        "running",
        "session",
        "sp",
        "supply",
        "supply_sensed",
        "tb_hi",
        "tb_lo",
        "tick0",
        "ts_hi",
        "ts_lo",
        "var",
        "zsteps",
    )

    sp: list[int]  # commanded setpoint per channel, 0.01 mW/cm² (ramp and derate applied)
    mode: list[int]
    duty: list[int]  # 0.01 %
    o0: list[float]  # measured output = o0 + o1 * Tb for SAT and STUCK channels
    o1: list[float]
    inc: list[tuple[int, int]]  # (channel, fluence units per tick) for NORM channels
    var: list[int]  # channels whose output follows Tb (SAT, STUCK)
    zsteps: list[ZoneStep]
    tb_lo: list[float]  # per zone: the Tb interval in which every channel keeps its mode
    tb_hi: list[float]
    ts_lo: list[float]  # per zone: Ts interval in which no reading can trip an interlock
    ts_hi: list[float]
    running: bool  # the plan runs (elapsed time counts)
    session: bool  # a session exists (fluence counts)
    ramping: bool
    emitting: bool
    over: bool  # some channel measures over its allowed output now
    jumpable: bool | None  # None: not worked out yet (eigen-decomposition on first use)
    due: int  # absolute tick of the next scheduled event
    supply: int  # mV, under this interval's load
    tick0: int  # the tick the interval starts at (when it was built)
    supply_sensed: int  # mV sensed at ``tick0``: under the load before it, as a board reads it

    def sensed_at(self, tick: int) -> int:
        """The supply a board reads at ``tick`` (mV) while this interval is driven: it
        senses first and acts second, so at the interval's first tick the reading is still
        the previous load's (differential seed 4877), and later this interval's."""
        return self.supply_sensed if tick == self.tick0 else self.supply


#: plant faults that change the emitters' load on the supply the moment they start or end
#: (a head sensor or a thermistor fault changes a reading; the device's answer is an act)
_LOAD_FAULTS = frozenset({"led_open", "stuck_on", "brownout"})


def _fault_order(e: tuple[int, int, bool]) -> tuple[int, bool, int]:
    """Fault changes by tick, offs before ons, then by position in the fault list."""
    return (e[0], not e[2], e[1])


def _scaled(irr: int, num: int, den: int, derate: int) -> int:
    """A setpoint ``irr`` × ``num``/``den`` (a ramp) × ``derate``/1000, in integers of
    0.01 mW/cm² rounded half to even, as the firmware computes it: in floating point an
    exact half came out either side (differential seeds 3083, 3107, 4159)."""
    if num == den and derate == 1000:
        return irr
    return round(Fraction(irr * num * derate, den * 1000))


def emitter_tolerances(profile: Profile, seed: int) -> list[float]:
    """Each channel's seeded emitter tolerance (a fraction of its output), within 3 sigma."""
    rng = random.Random(f"{seed}:tolerance")
    sigma = profile.sim.tolerance_pct / 100.0
    return [
        max(-3 * sigma, min(3 * sigma, rng.gauss(0.0, sigma))) if sigma > 0 else 0.0
        for _ in profile.channels
    ]


def zone_models(profile: Profile, ambient_c: float, tick_ms: int) -> list[ZoneThermal]:
    """Each zone's thermal model; zones with the same constants share one and its tick maps."""
    models: dict[tuple[float, ...], ZoneThermal] = {}
    out = []
    for z in profile.zones:
        consts = z.thermal_constants
        if consts not in models:
            models[consts] = ZoneThermal(z, ambient_c, tick_ms / 1000.0)
        out.append(models[consts])
    return out


def noise_tables(profile: Profile, seed: int) -> tuple[list[int], int, list[int]]:
    """The seeded sensor noise: a table of clipped normal values (0.01 °C) and the hash mixes."""
    rng = random.Random(f"{seed}:noise")
    scale_q = profile.sim.sensor_noise_c * 100.0
    table = [round(max(-3.0, min(3.0, rng.gauss(0.0, 1.0))) * scale_q) for _ in range(NOISE_TABLE)]
    tick_mix = rng.getrandbits(32)
    zone_mix = [rng.getrandbits(32) for _ in profile.zones]
    return table, tick_mix, zone_mix


class Engine:
    """The device's state and its control tick (see the module docstring)."""

    def __init__(
        self,
        profile: str | Profile = "reference-cap",
        *,
        seed: int = 0,
        faults: str | Iterable[Fault] = (),
        ambient_c: float = 25.0,
        state_file: str | None = None,
    ) -> None:
        self.profile = load_profile(profile) if isinstance(profile, str) else profile
        self.seed = int(seed)
        self.ambient_c = float(ambient_c)
        if not math.isfinite(self.ambient_c):
            raise ValueError(f"ambient temperature must be a number, got {ambient_c!r}")
        self.state_file = state_file
        self.limits = self.profile.limits
        self.tick_ms = self.profile.sim.control_tick_ms
        self._ck_ticks = max(1, 1000 // self.tick_ms)  # checkpoint once a second
        self._stats = dict.fromkeys(("ticks", "jumps", "jumped_ticks", "events", "state_errors"), 0)
        self._init_channels_and_zones()
        self._init_limits()
        self._init_faults(faults)
        self._load_records(state_file)
        self._init_control_state()
        # physics: every zone at its steady state, emitters off
        ss = [th.steady_state() for th in self._thermal]
        self._ph = _Phys(0, [x[0] for x in ss], [x[1] for x in ss], self.n_ch)
        self._cfg = self._build_cfg(self._ph)
        self._dirty = False
        self._persisted_ck = -1
        self.last_error: BaseException | None = None

    def _init_channels_and_zones(self) -> None:
        """Constants per channel and zone: indices, emitters, thermal models, sensor noise."""
        p = self.profile
        self._zone_index = {z.id: i for i, z in enumerate(p.zones)}
        self._ch_index = {c.id: i for i, c in enumerate(p.channels)}
        self.n_ch = len(p.channels)
        self.n_z = len(p.zones)
        self._ch_zone = [self._zone_index[c.zone] for c in p.channels]
        self._ch_k = [c.tempco_pct_per_k / 100.0 for c in p.channels]
        self._ch_hb = [c.heat_board_w_per_mw_cm2 for c in p.channels]
        self._ch_hs = [c.heat_scalp_w_per_mw_cm2 for c in p.channels]
        self._ch_d = [c.max_irradiance_mw_cm2 * p.sim.headroom for c in p.channels]
        self.tolerance = emitter_tolerances(p, self.seed)
        self._ch_tf = [1.0 + t for t in self.tolerance]
        # identical zones driven alike share their tick maps: a jump computes them once
        self._thermal = zone_models(p, self.ambient_c, self.tick_ms)
        self._noise, self._noise_mix, self._noise_zone = noise_tables(p, self.seed)
        self._noise_max = max((abs(v) for v in self._noise), default=0)

    def _init_limits(self) -> None:
        """The device's limits in the engine's units, and the Ts bounds of a jump inside them."""
        limits = self.limits
        self._cutoff_q = round(limits.cutoff_c * 100)
        self._max_ms = round(limits.max_session_s * 1000)
        self._max_units = round(limits.max_fluence_j_cm2 * 1e6) * UNITS_PER_UJ
        self._head_abort_ms = round(limits.head_off_abort_s * 1000)
        # jump bounds on Ts that keep every reading inside the interlock thresholds
        margin = self._noise_max + 1
        self._ts_cut = (self._cutoff_q - margin) / 100.0
        self._ts_range = ((SENSOR_MIN_Q + margin) / 100.0, (SENSOR_MAX_Q - margin) / 100.0)

    def _init_faults(self, faults: str | Iterable[Fault]) -> None:
        """The faults and their targets, none active; they are scheduled at the first START."""
        fault_list = parse_faults(faults) if isinstance(faults, str) else list(faults)
        self.faults = fault_list
        self._fault_targets = [self._resolve_fault(f) for f in fault_list]
        self._fault_sched: list[tuple[int, int, bool]] = []  # (tick, fault index, on)
        self._next_fault = INF
        self._armed = False
        self._link_windows: list[tuple[str, int, int, float]] = []
        self._overtemp: set[int] = set()
        self._therm_override: dict[int, int] = {}
        self._led_open: set[int] = set()
        self._stuck: set[int] = set()
        self._brownout = False

    def _load_records(self, state_file: str | None) -> None:
        """Records, boot count and record sequence numbers from the state file, if any."""
        self._records: list[Record] = []
        boots = 0
        if state_file:
            boots, self._records = load_state(state_file, self.profile.name)
            for r in self._records:
                if r.outcome == wire.Outcome.RUNNING:
                    r.outcome = wire.Outcome.POWER_LOSS  # the process died mid-session
        self.boot_count = boots + 1
        self._boot_tick = 0
        # record-access sequence numbers persist across reboots and deletions
        self._next_seq = 1 + max([r.seq for r in self._records] + [0])
        if state_file:
            from lllt_sim.records import load_next_seq

            self._next_seq = max(self._next_seq, load_next_seq(state_file))

    def _init_control_state(self) -> None:
        """The discrete state of a device just booted: idle, no plan, no session, no fault."""
        self._state = S.IDLE
        self._plan: plans.Plan | None = None
        self._session: Record | None = None
        self._splan: plans.Plan | None = None  # plan of the running session
        self._step = 0
        self._done = [False] * self.n_ch
        self._maxdur_hit = False
        self._paused_host = False
        self._paused_head = False
        self._head = True
        self._head_off_ms = 0
        self._lease_deadline = INF
        self._lease_renew = 0
        self._lease_expired = False
        self._derate = 1000
        #: latched hardware faults: (interlock, index) -> index reported in events
        self._latched: dict[tuple[int, int], int] = {}
        self._fault_flags = 0  # telemetry flags of the latched faults
        self._tel_plan = 0

    # --- hooks for the device ------------------------------------------------------------

    def _send_unsolicited(self, msg_type: int, payload: bytes, at_abs: int) -> None:
        """Send an unsolicited message (the device frames it and sends it)."""
        raise NotImplementedError

    def _on_reboot(self, tick: int) -> None:
        """RAM is lost: the device resets its protocol state (nonce, telemetry, ...)."""

    # --- time -----------------------------------------------------------------------------

    def _dev_ms(self, abs_ms: int) -> int:
        return (abs_ms - self._boot_tick * self.tick_ms) & 0xFFFFFFFF

    # --- simulation (pure: nothing here changes the device) -------------------------------

    def _simulate(
        self, ph: _Phys, cfg: _Cfg, dirty: bool, target: int
    ) -> tuple[_Phys, _Cfg, bool, bool]:
        """Advance to tick ``target`` without side effects.

        Stops early, before the first tick at which something happens (an event, a
        state change), and then returns ``event=True`` with the state just before it.
        """
        ck = self._ck_ticks
        stats = self._stats
        while ph.tick < target:
            if cfg.jumpable is None:
                cfg.jumpable = all(st.can_jump() for st in cfg.zsteps)
            if not (dirty or cfg.ramping or cfg.over or not cfg.jumpable):
                limit = min(target, cfg.due - 1, self._lease_tick() - 1, (ph.tick // ck + 1) * ck)
                n = limit - ph.tick
                while n > 0:
                    nph = self._jump(ph, cfg, n)
                    if nph is not None:
                        ph = nph
                        stats["jumps"] += 1
                        stats["jumped_ticks"] += n
                        break
                    n //= 2
                if n > 0:
                    if ph.tick % ck == 0:
                        self._take_checkpoint(ph)
                    continue
            # a tick of its own: it may change modes, end a ramp or hold an event
            nph = self._physics_tick(ph, cfg)
            stats["ticks"] += 1
            if self._has_event(nph, cfg):
                return ph, cfg, dirty, True
            ph = nph
            cfg = self._build_cfg(ph, cfg.sensed_at(ph.tick))
            dirty = False
            if ph.tick % ck == 0:
                self._take_checkpoint(ph)
        return ph, cfg, dirty, False

    @staticmethod
    def _take_checkpoint(ph: _Phys) -> None:
        ph.ck_tick = ph.tick
        ph.ck_fl = tuple(ph.fl)
        ph.ck_emit = ph.emit
        ph.ck_el = ph.el

    def _measured(self, cfg: _Cfg, i: int, tb: float) -> float:
        """Measured on-state output of channel ``i`` in mW/cm² at board temperature ``tb``."""
        m = cfg.mode[i]
        if m == NORM:
            return cfg.sp[i] / 100.0
        if m in (SAT, STUCK):
            v = cfg.o0[i] + cfg.o1[i] * tb
            return v if v > 0.0 else 0.0
        return 0.0

    def _physics_tick(self, ph: _Phys, cfg: _Cfg) -> _Phys:
        """One control tick of physics and counters under ``cfg`` (a new state)."""
        T = self.tick_ms
        new = ph.copy()
        tb = ph.tb
        zs = cfg.zsteps
        nb = []
        ns = []
        for z in range(self.n_z):
            b, s = zs[z].tick(tb[z], ph.ts[z])
            nb.append(b)
            ns.append(s)
        new.tb = nb
        new.ts = ns
        if cfg.session:
            fl = list(ph.fl)
            sfl = list(ph.sfl) if cfg.running else ph.sfl
            for i, inc in cfg.inc:
                fl[i] += inc
                if cfg.running:
                    sfl[i] += inc
            for i in cfg.var:
                u = round(self._measured(cfg, i, tb[self._ch_zone[i]]) * 100.0) * cfg.duty[i]
                fl[i] += u
                if cfg.running:
                    sfl[i] += u
            new.fl = fl
            new.sfl = sfl
            if cfg.emitting:
                new.emit = ph.emit + T
        if cfg.running:
            new.el = ph.el + T
            new.sel = ph.sel + T
        if cfg.over or any(ph.oo):
            oo = [0] * self.n_ch
            for i in range(self.n_ch):
                if cfg.mode[i] == STUCK:
                    meas = self._measured(cfg, i, tb[self._ch_zone[i]])
                    if meas > self._allowed(cfg.sp[i]):
                        oo[i] = ph.oo[i] + 1
            new.oo = oo
        new.tick = ph.tick + 1
        return new

    @staticmethod
    def _allowed(sp_q: int) -> float:
        """Most a channel may measure (mW/cm²) before OVER_OUTPUT counts it (spec §8)."""
        if sp_q == 0:
            return 0.0  # commanded off: any light is too much
        return 1.2 * sp_q / 100.0 + 0.05

    def _jump(self, ph: _Phys, cfg: _Cfg, n: int) -> _Phys | None:
        """``n`` uneventful ticks at once, or None when a threshold might be crossed."""
        T = self.tick_ms
        nb = []
        ns = []
        sums = []
        tb_lo, tb_hi, ts_lo, ts_hi = cfg.tb_lo, cfg.tb_hi, cfg.ts_lo, cfg.ts_hi
        zs = cfg.zsteps
        tbs = ph.tb
        tss = ph.ts
        # zones with the same outputs and the same state (the usual case: one setting for
        # the whole cap) evolve identically: reuse the previous zone's result
        prev: ZoneStep | None = None
        pb = ps = 0.0
        r: tuple[float, float, float, float, float, float, float] = (0.0,) * 7
        for z in range(self.n_z):
            st = zs[z]
            b0 = tbs[z]
            s0 = tss[z]
            if st is not prev or b0 != pb or s0 != ps:
                r = st.jump(b0, s0, n)
                prev, pb, ps = st, b0, s0
            b1, s1, blo, bhi, slo, shi, sb = r
            if shi >= ts_hi[z] or slo <= ts_lo[z] or bhi >= tb_hi[z] or blo <= tb_lo[z]:
                return None
            nb.append(b1)
            ns.append(s1)
            sums.append(sb)
        new = ph.copy()
        new.tb = nb
        new.ts = ns
        if cfg.session:
            fl = list(ph.fl)
            sfl = list(ph.sfl) if cfg.running else ph.sfl
            for i, inc in cfg.inc:
                fl[i] += inc * n
                if cfg.running:
                    sfl[i] += inc * n
            if cfg.var:
                # outputs that follow Tb: their fluence is affine in the sum of Tb
                step = self._splan.steps[self._step] if (cfg.running and self._splan) else None
                for i in cfg.var:
                    out = n * cfg.o0[i] + cfg.o1[i] * sums[self._ch_zone[i]]
                    u = round(out * 100.0) * cfg.duty[i]
                    fl[i] += u
                    if fl[i] >= self._max_units:
                        return None
                    if cfg.running:
                        sfl[i] += u
                        if step is not None and step.kind == wire.StepKind.FLUENCE:
                            for sp in step.setpoints:
                                if (
                                    sp.index == i
                                    and not self._done[i]
                                    and sfl[i] >= sp.target_uj * UNITS_PER_UJ
                                ):
                                    return None
            new.fl = fl
            new.sfl = sfl
            if cfg.emitting:
                new.emit = ph.emit + T * n
        if cfg.running:
            new.el = ph.el + T * n
            new.sel = ph.sel + T * n
        if any(ph.oo):
            new.oo = [0] * self.n_ch
        new.tick = ph.tick + n
        return new

    def _readings(self, tick: int, ts: list[float]) -> list[int]:
        """Every zone's reading at ``tick`` with no thermistor fault (the per-sample path)."""
        noise = self._noise
        base = tick * _PHI32 + self._noise_mix
        return [
            round(ts[z] * 100.0) + noise[((base + off) & 0xFFFFFFFF) >> _NOISE_SHIFT]
            for z, off in enumerate(self._noise_zone)
        ]

    def _reading_q(self, z: int, tick: int, ts: float) -> int:
        """Sensor reading of zone ``z`` in 0.01 °C: model plus seeded noise, or a fault.

        The noise is a pure function of (seed, zone, tick): a Fibonacci hash of the tick
        picks an entry of a seeded table of clipped normal values.
        """
        ov = self._therm_override.get(z)
        if ov is not None:
            return ov
        h = (tick * _PHI32 + self._noise_mix + self._noise_zone[z]) & 0xFFFFFFFF
        return round(ts * 100.0) + self._noise[h >> _NOISE_SHIFT]

    def _supply_mv(self, load: float) -> int:
        if self._brownout:
            return self.profile.sim.brownout_mv - BROWNOUT_SAG_MV
        return self.profile.sim.supply_mv - round(DROOP_FULL_MV * load)

    def _reading_trip(self, r: int) -> wire.Interlock | None:
        """The interlock a zone reading trips: outside 0-80 °C the sensor is broken and
        the reading means nothing (SENSOR_FAULT); else THERMAL_CUTOFF at the cut-off."""
        if not SENSOR_MIN_Q <= r <= SENSOR_MAX_Q:
            return IL.SENSOR_FAULT
        if r >= self._cutoff_q:
            return IL.THERMAL_CUTOFF
        return None

    def _has_event(self, ph: _Phys, cfg: _Cfg) -> bool:
        """Does anything happen at tick ``ph.tick``? (no side effects; errs towards yes)"""
        n = ph.tick
        if n >= self._next_fault or n >= cfg.due:
            return True
        latched = self._latched
        for z in range(self.n_z):
            kind = self._reading_trip(self._reading_q(z, n, ph.ts[z]))
            if kind and (kind, z) not in latched:
                return True
        if self._brownout and (IL.BROWNOUT, wire.NO_INDEX) not in latched:
            return True
        if (IL.OVER_OUTPUT, wire.NO_INDEX) not in latched and any(v >= 2 for v in ph.oo):
            return True
        if self._session is None:
            return False
        if cfg.running and self._splan is not None:
            step = self._splan.steps[self._step]
            if ph.sel >= step.duration_ms:
                return True
            if step.kind == wire.StepKind.FLUENCE:
                for sp in step.setpoints:
                    if not self._done[sp.index] and ph.sfl[sp.index] >= sp.target_uj * UNITS_PER_UJ:
                        return True
        if ph.el >= self._max_ms or any(v >= self._max_units for v in ph.fl):
            return True
        T = self.tick_ms
        if not self._head and n * T >= self._head_off_ms + self._head_abort_ms:
            return True
        if not self._lease_expired and n * T >= self._lease_deadline:
            return True
        return self._lease_expired and self._paused_host

    def _build_cfg(self, ph: _Phys, sensed_mv: int | None = None) -> _Cfg:
        """The outputs for the interval starting at ``ph.tick`` (no side effects);
        ``sensed_mv``: the supply read at that tick (None: this interval's own, at boot)."""
        cfg = _Cfg()
        step = self._plan_setpoints(ph, cfg)
        load = self._drive_channels(ph, cfg)
        cfg.ts_lo, cfg.ts_hi = self._scalp_bounds()
        cfg.emitting = any(m in (NORM, SAT, STUCK) for m in cfg.mode)
        cfg.jumpable = None
        cfg.supply = self._supply_mv(load / self.n_ch)
        cfg.tick0 = ph.tick
        cfg.supply_sensed = cfg.supply if sensed_mv is None else sensed_mv
        cfg.due = self._due(ph, cfg, step)
        return cfg

    def _plan_setpoints(self, ph: _Phys, cfg: _Cfg) -> plans.Step | None:
        """What the plan commands per channel (``cfg.sp``, ``cfg.duty``); the running step."""
        T = self.tick_ms
        session = self._session is not None
        running = session and self._state == S.RUNNING and self._splan is not None
        setpoint_q = [0] * self.n_ch  # 0.01 mW/cm², ramp and derating applied
        duty_q = [FULL_DUTY] * self.n_ch  # 0.01 %
        ramping = False
        step = None
        if running:
            assert self._splan is not None
            step = self._splan.steps[self._step]
            num = den = 1
            if step.ramp_ms and ph.sel < step.ramp_ms:
                ramping = True
                # midpoint of the tick: a linear ramp delivers exactly half its fluence
                num, den = min(2 * ph.sel + T, 2 * step.ramp_ms), 2 * step.ramp_ms
            fluence_step = step.kind == wire.StepKind.FLUENCE
            for s in step.setpoints:
                if fluence_step and self._done[s.index]:
                    continue
                setpoint_q[s.index] = _scaled(s.irr, num, den, self._derate)
                duty_q[s.index] = step.duty
        cfg.sp = setpoint_q
        cfg.duty = duty_q
        cfg.running = running
        cfg.session = session
        cfg.ramping = ramping
        return step

    def _drive_channels(self, ph: _Phys, cfg: _Cfg) -> float:
        """Modes, outputs, fluence and heat of the channels under ``cfg.sp``; the load."""
        n_z = self.n_z
        setpoint_q = cfg.sp
        duty_q = cfg.duty
        cfg.mode = mode = [OFF] * self.n_ch
        # a channel at full drive measures o0 + o1 × Tb: mW/cm² and mW/cm² per K
        cfg.o0 = out_0c = [0.0] * self.n_ch
        cfg.o1 = out_per_k = [0.0] * self.n_ch
        inc: list[tuple[int, int]] = []
        var: list[int] = []
        # heat into each zone's board and scalp nodes: W, plus W/K × Tb
        board_w = [0.0] * n_z
        board_w_per_k = [0.0] * n_z
        scalp_w = [0.0] * n_z
        scalp_w_per_k = [0.0] * n_z
        # per zone, the board temperatures (°C) between which every channel keeps its mode
        cfg.tb_lo = board_min_c = [-math.inf] * n_z
        cfg.tb_hi = board_max_c = [math.inf] * n_z
        over = False
        load = 0.0  # drive summed over the channels, 1 = one channel at full drive
        led_open, stuck, ch_zone, ch_k = self._led_open, self._stuck, self._ch_zone, self._ch_k
        ch_d, ch_tf, ch_hb, ch_hs = self._ch_d, self._ch_tf, self._ch_hb, self._ch_hs
        master = (IL.OVER_OUTPUT, wire.NO_INDEX) not in self._latched and not self._brownout
        for i in range(self.n_ch if master else 0):
            if i in led_open:
                mode[i] = OPEN
                continue
            sp_q = setpoint_q[i]
            is_stuck = i in stuck
            if not is_stuck and sp_q == 0:
                continue
            sp_mw_cm2 = sp_q / 100.0
            z = ch_zone[i]
            board_c = ph.tb[z]
            tempco = ch_k[i]  # per K
            full_mw_cm2 = ch_d[i] * ch_tf[i]  # most the channel can emit at 25 °C
            if is_stuck:
                m = STUCK
                duty_q[i] = FULL_DUTY
            else:
                cap_mw_cm2 = full_mw_cm2 * (1.0 + tempco * (board_c - 25.0))
                m = NORM if sp_mw_cm2 <= cap_mw_cm2 else SAT
                if tempco != 0.0:
                    # the board temperature at which the channel would change mode
                    sat_c = 25.0 + (sp_mw_cm2 / full_mw_cm2 - 1.0) / tempco
                    if (m == NORM) == (tempco < 0):
                        board_max_c[z] = min(board_max_c[z], sat_c)
                    else:
                        board_min_c[z] = max(board_min_c[z], sat_c)
            mode[i] = m
            duty = duty_q[i] / FULL_DUTY
            heat_board = ch_hb[i]  # W per mW/cm²
            heat_scalp = ch_hs[i]
            if m == NORM:
                # optical feedback holds the output; drive rises as efficiency falls. The
                # channel is calibrated at 25 °C, so its drive there equals its output.
                board_w[z] += heat_board * duty * sp_mw_cm2 * (1.0 + 25.0 * tempco)
                board_w_per_k[z] -= heat_board * duty * sp_mw_cm2 * tempco
                scalp_w[z] += heat_scalp * duty * sp_q / 100.0
                inc.append((i, sp_q * duty_q[i]))
                load += duty * sp_mw_cm2 / ch_d[i]
            else:
                # full drive: the output follows the board temperature
                out_0c[i] = at_0c = full_mw_cm2 * (1.0 - 25.0 * tempco)
                out_per_k[i] = per_k = full_mw_cm2 * tempco
                board_w[z] += heat_board * duty * ch_d[i]
                scalp_w[z] += heat_scalp * duty * at_0c
                scalp_w_per_k[z] += heat_scalp * duty * per_k
                var.append(i)
                load += duty
                if m == STUCK and self._stuck_over(cfg, i, board_c):
                    over = True
        cfg.zsteps = self._zone_steps(board_w, board_w_per_k, scalp_w, scalp_w_per_k)
        cfg.inc = inc
        cfg.var = var
        cfg.over = over
        return load

    def _stuck_over(self, cfg: _Cfg, i: int, board_c: float) -> bool:
        """Whether stuck channel ``i`` measures too much; its zone's Tb bounds keep the answer."""
        allowed = self._allowed(cfg.sp[i])
        at_0c = cfg.o0[i]
        per_k = cfg.o1[i]
        if per_k == 0.0:
            return at_0c > allowed
        z = self._ch_zone[i]
        now_over = at_0c + per_k * board_c > allowed
        # the board temperature at which the channel would cross its allowed output
        over_c = (allowed - at_0c) / per_k
        if (not now_over) == (self._ch_k[i] < 0):
            cfg.tb_lo[z] = max(cfg.tb_lo[z], over_c)
        else:
            cfg.tb_hi[z] = min(cfg.tb_hi[z], over_c)
        return now_over

    def _zone_steps(
        self,
        board_w: list[float],
        board_w_per_k: list[float],
        scalp_w: list[float],
        scalp_w_per_k: list[float],
    ) -> list[ZoneStep]:
        """Each zone's tick map under the heat of its channels and of an ``overtemp`` fault."""
        for z in self._overtemp:
            board_w[z] += self.profile.sim.overtemp_w
        th = self._thermal
        return [
            th[z].step(board_w[z], board_w_per_k[z], scalp_w[z], scalp_w_per_k[z])
            for z in range(self.n_z)
        ]

    def _scalp_bounds(self) -> tuple[list[float], list[float]]:
        """Per zone, the Ts interval (°C) in which no reading trips an interlock not latched."""
        scalp_min_c = []
        scalp_max_c = []
        for z in range(self.n_z):
            if z in self._therm_override:
                scalp_min_c.append(-math.inf)
                scalp_max_c.append(math.inf)
                continue
            hi = self._ts_range[1]
            if (IL.THERMAL_CUTOFF, z) not in self._latched:
                hi = min(hi, self._ts_cut)
            lo = self._ts_range[0] if (IL.SENSOR_FAULT, z) not in self._latched else -math.inf
            scalp_min_c.append(lo)
            scalp_max_c.append(hi)
        return scalp_min_c, scalp_max_c

    def _lease_tick(self) -> int:
        """Absolute tick at which the live lease runs out (INF: none runs).

        A renewal only moves it later, so a state computed ahead up to the old deadline
        stays right (``SimDevice._keeps_plan``)."""
        if self._session is None or self._lease_expired:
            return INF
        return -(-self._lease_deadline // self.tick_ms)

    def _due(self, ph: _Phys, cfg: _Cfg, step: plans.Step | None) -> int:
        """Absolute tick of the next event that can be computed in advance."""
        T = self.tick_ms
        t = ph.tick
        due = self._next_fault
        if t == self._boot_tick:
            due = t + 1  # the first control tick after a boot checks the interlocks
        if self._session is not None:
            # the lease deadline is not among them: a heartbeat moves it every second, and
            # a computed interval would end at each old one; _lease_tick reads it live
            if not self._head:
                due = min(due, -(-(self._head_off_ms + self._head_abort_ms) // T))
            if cfg.running and step is not None:
                due = min(due, t + -(-(step.duration_ms - ph.sel) // T))
                due = min(due, t + -(-(self._max_ms - ph.el) // T))
                if step.kind == wire.StepKind.FLUENCE:
                    incs = dict(cfg.inc)
                    for s in step.setpoints:
                        inc = incs.get(s.index, 0)
                        if inc and not self._done[s.index]:
                            left = s.target_uj * UNITS_PER_UJ - ph.sfl[s.index]
                            due = min(due, t + -(-left // inc))
            for i, inc in cfg.inc:
                due = min(due, t + -(-(self._max_units - ph.fl[i]) // inc))
        return max(due, t + 1)

    # --- events (committing) --------------------------------------------------------------

    def _event_tick(self) -> None:
        """Process the next tick with everything that happens at it."""
        ph = self._physics_tick(self._ph, self._cfg)
        self._stats["ticks"] += 1
        self._ph = ph
        n = ph.tick
        T = self.tick_ms
        t_abs = n * T
        cfg = self._cfg  # the interval that just ended
        boots = self.boot_count
        # the supply a board senses at this tick: under the load of the interval that ended,
        # or, when a plant fault changes now (an LED opens, a brown-out), under that load
        # with the fault; either way before the device acts on what happens at the tick
        sensed_mv = cfg.supply
        load_changed = False
        while self._next_fault <= n:
            load_changed |= self._apply_fault_change() in _LOAD_FAULTS
            ph = self._ph  # a reboot resets the counters
        if load_changed:
            sensed_mv = self._build_cfg(ph).supply
        if self.boot_count == boots:
            self._hardware_interlocks(ph, cfg, t_abs)
        # else: the device booted in this tick; its first control tick, one tick later,
        # checks the interlocks (as the firmware does), and _has_event finds that tick
        if self._session is not None and cfg.running and self._splan is not None:
            self._advance_plan(t_abs)
        # policy interlocks
        if self._session is not None:
            self._policy_checks(t_abs)
        self._cfg = self._build_cfg(self._ph, sensed_mv)
        self._dirty = False
        if n % self._ck_ticks == 0:
            self._take_checkpoint(self._ph)
        self._checkpoint_persist()

    def _hardware_interlocks(self, ph: _Phys, cfg: _Cfg, t_abs: int) -> None:
        """Hardware interlocks: emitters off in this very tick, fault latched."""
        n = ph.tick
        latched = self._latched
        for z in range(self.n_z):
            r = self._reading_q(z, n, ph.ts[z])
            kind = self._reading_trip(r)
            if kind and (kind, z) not in latched:
                if kind == IL.SENSOR_FAULT:
                    lim = SENSOR_MIN_Q if r < SENSOR_MIN_Q else SENSOR_MAX_Q
                else:
                    lim = self._cutoff_q
                self._trip(kind, z, r, lim, t_abs)
        if self._brownout and (IL.BROWNOUT, wire.NO_INDEX) not in latched:
            mv = self._supply_mv(0.0)
            self._trip(IL.BROWNOUT, wire.NO_INDEX, mv, self.profile.sim.brownout_mv, t_abs)
        if (IL.OVER_OUTPUT, wire.NO_INDEX) not in latched:
            for i, count in enumerate(ph.oo):
                if count >= 2:
                    meas = self._measured(cfg, i, self._ph.tb[self._ch_zone[i]])
                    allowed = round(self._allowed(cfg.sp[i]) * 100)
                    # the master switch cuts every channel: latch under no particular index
                    self._trip(
                        IL.OVER_OUTPUT, wire.NO_INDEX, round(meas * 100), allowed, t_abs, ch=i
                    )
                    break

    def _advance_plan(self, t_abs: int) -> None:
        ph = self._ph
        plan = self._splan
        assert plan is not None and self._session is not None
        step = plan.steps[self._step]
        if step.kind == wire.StepKind.FLUENCE:
            for s in step.setpoints:
                target = s.target_uj * UNITS_PER_UJ
                if not self._done[s.index] and ph.sfl[s.index] >= target:
                    self._done[s.index] = True
                    self._event(
                        EK.TARGET_REACHED,
                        t_abs,
                        b=s.index,
                        value=_u2uj(ph.sfl[s.index]),
                        limit=s.target_uj,
                    )
            all_done = all(self._done[s.index] for s in step.setpoints)
            if not all_done and ph.sel >= step.duration_ms:
                self._maxdur_hit = True
            ended = all_done or ph.sel >= step.duration_ms
        else:
            ended = ph.sel >= step.duration_ms
        if not ended:
            return
        if self._step + 1 < len(plan.steps):
            self._step += 1
            self._done = [False] * self.n_ch
            ph = ph.copy()
            ph.sfl = [0] * self.n_ch
            ph.sel = 0
            self._ph = ph
            self._event(EK.STEP, t_abs, a=self._step, value=plan.plan_id & 0x7FFFFFFF)
        else:
            outcome = wire.Outcome.MAX_DURATION if self._maxdur_hit else wire.Outcome.COMPLETED
            self._end_session(outcome, 0, S.IDLE, t_abs)

    def _policy_checks(self, t_abs: int) -> None:
        ph = self._ph
        if ph.el >= self._max_ms:
            self._trip(IL.MAX_DURATION, wire.NO_INDEX, ph.el, self._max_ms, t_abs)
            return
        for i, units in enumerate(ph.fl):
            if units >= self._max_units:
                self._trip(IL.MAX_FLUENCE, i, _u2uj(units), self._max_units // UNITS_PER_UJ, t_abs)
                return
        if not self._head and t_abs >= self._head_off_ms + self._head_abort_ms:
            off = t_abs - self._head_off_ms
            self._trip(IL.HEAD_OFF_TIMEOUT, wire.NO_INDEX, off, self._head_abort_ms, t_abs)
            return
        assert self._splan is not None
        lease_ms = self._splan.lease_ms
        if not self._lease_expired and t_abs >= self._lease_deadline:
            self._lease_expired = True
            since = t_abs - self._lease_renew
            stop = self._splan.policy == wire.LinkPolicy.STOP or self._paused_host
            applied = wire.LinkPolicy.STOP if stop else wire.LinkPolicy.FINISH
            self._event(EK.LEASE_EXPIRED, t_abs, a=applied, value=since, limit=lease_ms)
            if stop:
                self._trip(IL.LEASE_STOP, wire.NO_INDEX, since, lease_ms, t_abs)
            return
        if self._lease_expired and self._paused_host:
            since = t_abs - self._lease_renew
            self._trip(IL.LEASE_STOP, wire.NO_INDEX, since, lease_ms, t_abs)

    def _trip(
        self,
        kind: wire.Interlock,
        index: int,
        value: int,
        limit: int,
        t_abs: int,
        *,
        ch: int | None = None,
    ) -> None:
        """An interlock: event, emitters off now, the session ends with a complete record."""
        b = index if ch is None else ch
        self._event(EK.INTERLOCK, t_abs, a=kind, b=b, value=value, limit=limit)
        hardware = kind in _HARDWARE
        if hardware:
            self._latched[(kind, index)] = b
            self._fault_flags |= _FAULT_FLAG[kind]
            self._event(EK.FAULT, t_abs, a=kind, b=b, value=1)
        new_state = S.FAULT if hardware else S.IDLE
        if self._session is not None:
            outcome = wire.Outcome.LEASE_STOP if kind == IL.LEASE_STOP else wire.Outcome.INTERLOCK
            self._end_session(outcome, int(kind), new_state, t_abs)
        elif hardware:
            self._plan = None
            self._set_state(S.FAULT, int(kind), t_abs)
        # the emitters go off in this very tick: _event_tick builds the outputs after this

    def _start_session(self, plan: plans.Plan, now: int) -> None:
        rec = Record(
            plan_id=plan.plan_id,
            boot_count=self.boot_count & 0xFFFF,
            start_ms=self._dev_ms(now),
            fluence_uj=[0] * self.n_ch,
            seq=self._next_seq,
        )
        self._next_seq += 1
        self._records.insert(0, rec)
        del self._records[wire.MAX_RECORDS :]
        self._session = rec
        self._splan = plan
        self._tel_plan = plan.plan_id
        self._step = 0
        self._done = [False] * self.n_ch
        self._maxdur_hit = False
        self._paused_host = False
        self._paused_head = False
        self._derate = 1000
        self._lease_renew = now
        self._lease_deadline = now + plan.lease_ms
        self._lease_expired = False
        ph = self._ph.copy()
        ph.reset_session()
        self._ph = ph
        self._set_state(S.RUNNING, 0, now)
        self._event(EK.STEP, now, a=0, value=plan.plan_id & 0x7FFFFFFF)
        if not self._armed:
            self._arm_faults(now)
        self._dirty = True
        self._persist()

    def _end_session(self, outcome: int, reason: int, new_state: wire.State, t_abs: int) -> None:
        rec = self._session
        assert rec is not None
        ph = self._ph
        rec.end_ms = self._dev_ms(t_abs)
        rec.outcome = outcome
        rec.reason = reason
        rec.emitting_ms = ph.emit
        rec.fluence_uj = [_u2uj(v) for v in ph.fl]
        plan_id = rec.plan_id
        self._session = None
        self._splan = None
        self._plan = None
        self._paused_host = self._paused_head = False
        self._lease_deadline = INF
        self._derate = 1000
        self._done = [False] * self.n_ch
        if self._state == S.FAULT:
            new_state = S.FAULT
        self._set_state(new_state, reason, t_abs)
        self._event(EK.SESSION_END, t_abs, a=outcome, b=reason & 0xFF, value=ph.emit, limit=plan_id)
        self._dirty = True
        self._persist()

    def _set_state(self, new: wire.State, reason: int, t_abs: int) -> None:
        old = self._state
        if new == old:
            return
        self._state = new
        self._event(EK.STATE, t_abs, a=new, b=old, value=reason)

    def _set_head(self, present: bool, t_abs: int) -> None:
        if present == self._head:
            return
        self._head = present
        self._event(EK.HEAD, t_abs, a=1 if present else 0)
        if not present:
            self._head_off_ms = t_abs
            if self._session is not None:
                self._paused_head = True
                self._set_state(S.PAUSED, 0, t_abs)
        elif self._session is not None and self._paused_head:
            self._paused_head = False
            if not self._paused_host:
                self._set_state(S.RUNNING, 0, t_abs)
        self._dirty = True

    def _fault_cause(self, kind: wire.Interlock, index: int) -> tuple[int, int] | None:
        """(limit, observed) while the cause of a latched fault is still there."""
        ph = self._ph
        if kind == IL.THERMAL_CUTOFF:
            # hysteresis: cool enough to START again, not just a noisy dip under the cut-off
            r = self._reading_q(index, ph.tick, ph.ts[index])
            limit = self._cutoff_q - TOO_HOT_MARGIN_Q
            return (limit, r) if r >= limit else None
        if kind == IL.SENSOR_FAULT:
            r = self._reading_q(index, ph.tick, ph.ts[index])
            return (SENSOR_MAX_Q, r) if not SENSOR_MIN_Q <= r <= SENSOR_MAX_Q else None
        if kind == IL.BROWNOUT:
            mv = self._supply_mv(0.0)
            return (self.profile.sim.brownout_mv, mv) if self._brownout else None
        if kind == IL.OVER_OUTPUT:
            # the device re-tests its drivers with the master switch open
            return (0, 1) if self._stuck else None
        return None

    def _event(
        self,
        kind: int,
        t_abs: int,
        *,
        a: int = 0,
        b: int = wire.NO_INDEX,
        value: int = 0,
        limit: int = 0,
    ) -> None:
        payload = wire.Event(
            self._dev_ms(t_abs), EK(kind), a & 0xFF, b & 0xFF, _i32(value), _i32(limit)
        ).payload()
        self._stats["events"] += 1
        self._send_unsolicited(wire.MsgType.EVENT, payload, t_abs)

    # --- faults ---------------------------------------------------------------------------

    def _resolve_fault(self, f: Fault) -> int:
        """Zone or channel index a fault acts on (-1: none); ValueError for a bad argument."""
        if f.name in ("overtemp", "thermistor_open", "thermistor_short"):
            if f.arg is None:
                return 0
            if isinstance(f.arg, int) and f.arg in self._zone_index:
                return self._zone_index[f.arg]
            for i, z in enumerate(self.profile.zones):
                if str(f.arg) == z.name:
                    return i
            zones = ", ".join(f"{z.id} ({z.name})" for z in self.profile.zones)
            raise ValueError(
                f"fault {f}: {self.profile.name} has no zone {f.arg!r}; zones: {zones}"
            )
        if f.name in ("led_open", "stuck_on"):
            if not isinstance(f.arg, int) or f.arg not in self._ch_index:
                ids = ", ".join(str(c.id) for c in self.profile.channels)
                raise ValueError(
                    f"fault {f}: {self.profile.name} has no channel {f.arg!r}; channels: {ids}"
                )
            return self._ch_index[f.arg]
        return -1

    def _arm_faults(self, start_abs: int) -> None:
        """Faults count from the START of the first session on this device."""
        self._armed = True
        T = self.tick_ms
        first = self._ph.tick + 1
        sched: list[tuple[int, int, bool]] = []
        for idx, f in enumerate(self.faults):
            on = start_abs + round(f.at_s * 1000)
            off = INF if f.duration_s is None else on + round(f.duration_s * 1000)
            if f.name in ("link_drop", "corrupt"):
                rate = float(f.arg) if f.name == "corrupt" and f.arg is not None else 1.0
                self._link_windows.append((f.name, on, off, rate))
                continue
            sched.append((max(first, -(-on // T)), idx, True))
            if off < INF and f.name != "reboot":
                sched.append((max(first, -(-off // T)), idx, False))
        sched.sort(key=_fault_order)
        self._fault_sched = sched
        self._next_fault = sched[0][0] if sched else INF
        self._dirty = True

    def _apply_fault_change(self) -> str:
        """Start or end the next scheduled fault; returns its name."""
        tick, idx, on = self._fault_sched.pop(0)
        self._next_fault = self._fault_sched[0][0] if self._fault_sched else INF
        f = self.faults[idx]
        target = self._fault_targets[idx]
        t_abs = tick * self.tick_ms
        name = f.name
        if name == "overtemp":
            (self._overtemp.add if on else self._overtemp.discard)(target)
        elif name == "thermistor_open" or name == "thermistor_short":
            if on:
                q = READING_OPEN_Q if name == "thermistor_open" else READING_SHORT_Q
                self._therm_override[target] = q
            else:
                self._therm_override.pop(target, None)
        elif name == "led_open":
            (self._led_open.add if on else self._led_open.discard)(target)
        elif name == "stuck_on":
            (self._stuck.add if on else self._stuck.discard)(target)
        elif name == "brownout":
            self._brownout = on
        elif name == "head_off":
            self._set_head(not on, t_abs)
        elif name == "reboot":
            self._reboot(tick)
        self._dirty = True
        return name

    def _reboot(self, tick: int) -> None:
        """Watchdog reset: emitters off, RAM lost, records kept, BOOT event."""
        T = self.tick_ms
        ph = self._ph
        rec = self._session
        if rec is not None:
            # found unfinished at boot: the last checkpoint is all the device knows
            rec.outcome = wire.Outcome.POWER_LOSS
            rec.end_ms = self._dev_ms(ph.ck_tick * T)
            rec.fluence_uj = [_u2uj(v) for v in ph.ck_fl]
            rec.emitting_ms = ph.ck_emit
        self._session = None
        self._splan = None
        self._plan = None
        self._state = S.IDLE
        self._step = 0
        self._done = [False] * self.n_ch
        self._maxdur_hit = False
        self._paused_host = self._paused_head = False
        self._lease_deadline = INF
        self._lease_expired = False
        self._derate = 1000
        self._latched = {}
        self._fault_flags = 0
        self._tel_plan = 0
        self.boot_count += 1
        self._boot_tick = tick
        self._on_reboot(tick)
        ph = ph.copy()
        ph.reset_session()
        ph.oo = [0] * self.n_ch
        self._ph = ph
        self._event(EK.BOOT, tick * T, a=wire.BootCause.WATCHDOG, value=self.boot_count & 0xFFFF)
        if not self._head:
            # RAM lost: the device assumes a head until its first reading, one tick later,
            # finds none (a HEAD event, the head-off clock restarted), as the firmware does
            self._head = True
            idx = next(i for i, f in enumerate(self.faults) if f.name == "head_off")
            self._fault_sched.append((tick + 1, idx, True))
            self._fault_sched.sort(key=_fault_order)
            self._next_fault = self._fault_sched[0][0]
        self._dirty = True
        self._persist()

    # --- records and state file -----------------------------------------------------------

    def _record_now(self, r: Record) -> Record:
        if r is not self._session:
            return r
        ph = self._ph
        return Record(
            r.plan_id,
            r.boot_count,
            r.start_ms,
            0,
            wire.Outcome.RUNNING,
            0,
            ph.emit,
            [_u2uj(v) for v in ph.fl],
            r.seq,
        )

    def _checkpoint_persist(self) -> None:
        if self.state_file and self._session is not None and self._ph.ck_tick != self._persisted_ck:
            self._persist()

    def _persist(self) -> None:
        if not self.state_file:
            return
        ph = self._ph
        self._persisted_ck = ph.ck_tick
        recs = []
        for r in self._records:
            if r is self._session:
                # what survives a power cut: the last checkpoint
                r = Record(
                    r.plan_id,
                    r.boot_count,
                    r.start_ms,
                    self._dev_ms(ph.ck_tick * self.tick_ms),
                    wire.Outcome.RUNNING,
                    0,
                    ph.ck_emit,
                    [_u2uj(v) for v in ph.ck_fl],
                    r.seq,
                )
            recs.append(r)
        try:
            save_state(self.state_file, self.profile.name, self.boot_count, recs, self._next_seq)
        except OSError as err:
            self._stats["state_errors"] += 1
            self.last_error = err


def _u2uj(units: int) -> int:
    """Fluence units (1e-5 µJ/cm²) to whole µJ/cm², rounded half up."""
    return (units + UNITS_PER_UJ // 2) // UNITS_PER_UJ


def _i32(v: int) -> int:
    return max(-(2**31), min(2**31 - 1, int(v)))


__all__ = ["Engine"]

"""The simulated cap's physics on its own, for a firmware that does the control.

:class:`lllt_sim.engine.Engine` is a whole device: plant *and* control (plan, interlocks,
records). A firmware build (``fw://``, the C core loaded as a library) brings its own
control and needs only the plant around it: what its sensors read and what its emitters
do with what it commands. :class:`Plant` is that plant, with the same numbers as the
engine for the same profile, seed and ambient temperature:

- the two-node thermal model per zone (``thermal.ZoneThermal``, the same tick maps);
- emitters with a seeded tolerance, an output that falls with the board temperature
  (tempco), optical feedback that holds the commanded irradiance while the drive can, and
  saturation at full drive beyond that; heat into board and scalp as the engine computes it;
- thermistor readings with the engine's seeded noise, a pure function of (seed, zone, tick);
- the supply with its droop under load, the head sensor;
- the device faults of ``faults.py`` that act on hardware: ``overtemp``, ``thermistor_open``,
  ``thermistor_short``, ``led_open``, ``stuck_on``, ``brownout`` and ``head_off``. ``reboot``
  and the link faults (``link_drop``, ``corrupt``) are not physics: whoever runs the
  firmware applies them (:meth:`due_faults` hands them over at their tick).

Time is counted in control ticks. At tick ``n`` the firmware reads the sensors
(:meth:`reading_q`, :meth:`measured_q`, ...) and commands the outputs for the interval
``n -> n+1`` (:meth:`command`); :meth:`advance` then moves the physics to tick ``n+1``
under those outputs (zero-order hold, like the engine).

Faults are armed, as on the engine, at the START of the first session (:meth:`arm`); the
caller tells the plant when that START happened.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from lllt_sim.engine import (
    _NOISE_SHIFT,
    _PHI32,
    BROWNOUT_SAG_MV,
    DROOP_FULL_MV,
    FULL_DUTY,
    INF,
    READING_OPEN_Q,
    READING_SHORT_Q,
    SENSOR_MAX_Q,
    SENSOR_MIN_Q,
    emitter_tolerances,
    noise_tables,
    zone_models,
)
from lllt_sim.faults import Fault, parse_faults
from lllt_sim.profiles import Profile, load_profile

#: faults the plant does not model itself; the firmware's runner applies them
RUNNER_FAULTS = frozenset({"reboot", "link_drop", "corrupt"})


@dataclass(frozen=True, slots=True)
class FaultChange:
    """A fault switching on or off at a tick (absolute tick of the plant's clock)."""

    tick: int
    index: int  # in :attr:`Plant.faults`
    on: bool
    fault: Fault


class Plant:
    """Physics of one cap around a firmware (see the module docstring)."""

    def __init__(
        self,
        profile: str | Profile = "reference-cap",
        *,
        seed: int = 0,
        faults: str | Iterable[Fault] = (),
        ambient_c: float = 25.0,
    ) -> None:
        self.profile = p = load_profile(profile) if isinstance(profile, str) else profile
        self.seed = int(seed)
        self.ambient_c = float(ambient_c)
        if not math.isfinite(self.ambient_c):
            raise ValueError(f"ambient temperature must be a number, got {ambient_c!r}")
        self.tick_ms = p.sim.control_tick_ms
        self.n_ch = len(p.channels)
        self.n_z = len(p.zones)
        self._zone_index = {z.id: i for i, z in enumerate(p.zones)}
        self._ch_index = {c.id: i for i, c in enumerate(p.channels)}
        self._init_emitters()
        # the engine's recipes, draw for draw (tests/sim/test_plant.py holds them equal)
        self._thermal = zone_models(p, self.ambient_c, self.tick_ms)
        self._noise, self._noise_mix, self._noise_zone = noise_tables(p, self.seed)
        self._noise_max = max((abs(v) for v in self._noise), default=0)
        self._cutoff_q = round(p.limits.cutoff_c * 100)
        self._init_faults(faults)
        self._init_state()

    def _init_emitters(self) -> None:
        """Per channel: zone, tempco, heat, full drive and the seeded tolerance, as the engine."""
        p = self.profile
        self.ch_zone = [self._zone_index[c.zone] for c in p.channels]
        self._k = [c.tempco_pct_per_k / 100.0 for c in p.channels]
        self._hb = [c.heat_board_w_per_mw_cm2 for c in p.channels]
        self._hs = [c.heat_scalp_w_per_mw_cm2 for c in p.channels]
        self._d = [c.max_irradiance_mw_cm2 * p.sim.headroom for c in p.channels]
        self.tolerance = emitter_tolerances(p, self.seed)
        self._tf = [1.0 + t for t in self.tolerance]

    def _init_faults(self, faults: str | Iterable[Fault]) -> None:
        """The faults and their targets, none active until :meth:`arm` schedules them."""
        fault_list = parse_faults(faults) if isinstance(faults, str) else list(faults)
        self.faults = fault_list
        self._targets = [self._resolve(f) for f in fault_list]
        self._sched: list[FaultChange] = []
        self.armed = False
        self._overtemp: set[int] = set()
        self._override: dict[int, int] = {}
        self._led_open: set[int] = set()
        self._stuck: set[int] = set()
        self.brownout = False
        self.head_present = True

    def _init_state(self) -> None:
        """Every zone at its steady state, nothing emitted yet, every channel commanded off."""
        ss = [th.steady_state() for th in self._thermal]
        self.tb = [x[0] for x in ss]
        self.ts = [x[1] for x in ss]
        self.tick = 0
        #: light actually emitted since the plant was made, per channel, in the engine's
        #: fluence units (0.01 mW/cm² x 0.01 % duty x one tick = 1e-5 µJ/cm²), and the
        #: ticks with any channel emitting: ground truth, whatever the firmware counts
        self.emitted = [0] * self.n_ch
        self.emitting_ticks = 0
        # the commands for the current interval
        self.master = True
        self.sp = [0] * self.n_ch  # commanded on-state irradiance, 0.01 mW/cm²
        self.duty = [FULL_DUTY] * self.n_ch  # 0.01 %
        self._mode_cache: tuple[list[int], list[float], list[float], float] | None = None
        self._idle_key: frozenset[int] | None = None
        self._idle: list[Any] = []

    # --- faults -----------------------------------------------------------------------

    def _resolve(self, f: Fault) -> int:
        p = self.profile
        if f.name in ("overtemp", "thermistor_open", "thermistor_short"):
            if f.arg is None:
                return 0
            if isinstance(f.arg, int) and f.arg in self._zone_index:
                return self._zone_index[f.arg]
            for i, z in enumerate(p.zones):
                if str(f.arg) == z.name:
                    return i
            zones = ", ".join(f"{z.id} ({z.name})" for z in p.zones)
            raise ValueError(f"fault {f}: {p.name} has no zone {f.arg!r}; zones: {zones}")
        if f.name in ("led_open", "stuck_on"):
            if not isinstance(f.arg, int) or f.arg not in self._ch_index:
                ids = ", ".join(str(c.id) for c in p.channels)
                raise ValueError(f"fault {f}: {p.name} has no channel {f.arg!r}; channels: {ids}")
            return self._ch_index[f.arg]
        return -1

    def arm(self, start_abs_ms: int) -> None:
        """Schedule the faults from a START at absolute ms ``start_abs_ms`` (once)."""
        if self.armed:
            return
        self.armed = True
        T = self.tick_ms
        first = self.tick + 1
        sched: list[FaultChange] = []
        for idx, f in enumerate(self.faults):
            on = start_abs_ms + round(f.at_s * 1000)
            off = INF if f.duration_s is None else on + round(f.duration_s * 1000)
            if f.name in ("link_drop", "corrupt"):
                continue  # windows in ms: link_windows()
            sched.append(FaultChange(max(first, -(-on // T)), idx, True, f))
            if off < INF and f.name != "reboot":
                sched.append(FaultChange(max(first, -(-off // T)), idx, False, f))
        sched.sort(key=lambda c: (c.tick, not c.on, c.index))
        self._sched = sched
        self._start_ms = start_abs_ms

    def link_windows(self) -> list[tuple[str, int, int, float]]:
        """The link faults as (name, on ms, off ms, rate) windows (after :meth:`arm`)."""
        if not self.armed:
            return []
        out = []
        for f in self.faults:
            if f.name not in ("link_drop", "corrupt"):
                continue
            on = self._start_ms + round(f.at_s * 1000)
            off = INF if f.duration_s is None else on + round(f.duration_s * 1000)
            rate = float(f.arg) if f.name == "corrupt" and f.arg is not None else 1.0
            out.append((f.name, on, off, rate))
        return out

    @property
    def next_fault_tick(self) -> int:
        return self._sched[0].tick if self._sched else INF

    def due_faults(self) -> list[FaultChange]:
        """Apply the hardware faults due at the current tick; return the runner's ones.

        Called at tick ``n`` before the firmware reads its sensors, in the engine's order
        (by tick, offs before ons, then by position in the list).
        """
        runner: list[FaultChange] = []
        while self._sched and self._sched[0].tick <= self.tick:
            ch = self._sched.pop(0)
            name = ch.fault.name
            target = self._targets[ch.index]
            if name in RUNNER_FAULTS:
                runner.append(ch)
            elif name == "overtemp":
                (self._overtemp.add if ch.on else self._overtemp.discard)(target)
            elif name in ("thermistor_open", "thermistor_short"):
                if ch.on:
                    q = READING_OPEN_Q if name == "thermistor_open" else READING_SHORT_Q
                    self._override[target] = q
                else:
                    self._override.pop(target, None)
            elif name == "led_open":
                (self._led_open.add if ch.on else self._led_open.discard)(target)
            elif name == "stuck_on":
                (self._stuck.add if ch.on else self._stuck.discard)(target)
            elif name == "brownout":
                self.brownout = ch.on
            elif name == "head_off":
                self.head_present = not ch.on
            self._mode_cache = None
        return runner

    # --- what the firmware commands ---------------------------------------------------

    def command(self, channel: int, setpoint_q: int, duty_q: int) -> None:
        """Channel index ``channel``: on-state irradiance (0.01 mW/cm²) and duty (0.01 %)."""
        sp = max(0, int(setpoint_q))
        duty = max(0, min(FULL_DUTY, int(duty_q)))
        if sp != self.sp[channel] or duty != self.duty[channel]:
            self.sp[channel] = sp
            self.duty[channel] = duty
            self._mode_cache = None

    def set_master(self, closed: bool) -> None:
        """The master emitter switch: open (False) cuts every channel, stuck ones too."""
        if bool(closed) != self.master:
            self.master = bool(closed)
            self._mode_cache = None

    # --- what the sensors read --------------------------------------------------------

    def reading_q(self, zone: int) -> int:
        """Thermistor reading of zone index ``zone`` at the current tick, 0.01 °C."""
        ov = self._override.get(zone)
        if ov is not None:
            return ov
        h = (self.tick * _PHI32 + self._noise_mix + self._noise_zone[zone]) & 0xFFFFFFFF
        return round(self.ts[zone] * 100.0) + self._noise[h >> _NOISE_SHIFT]

    def readings(self) -> list[int]:
        """Every zone's :meth:`reading_q` at the current tick (the per-tick path)."""
        if self._override:
            return [self.reading_q(z) for z in range(self.n_z)]
        noise = self._noise
        base = self.tick * _PHI32 + self._noise_mix
        return [
            round(ts * 100.0) + noise[((base + off) & 0xFFFFFFFF) >> _NOISE_SHIFT]
            for ts, off in zip(self.ts, self._noise_zone, strict=True)
        ]

    def measured_q(self, channel: int) -> int:
        """Measured on-state output of channel index ``channel`` now, 0.01 mW/cm²."""
        mode, o0, o1, _ = self._modes()
        m = mode[channel]
        if m == _NORM:
            return self.sp[channel]
        if m == _VAR:
            v = round((o0[channel] + o1[channel] * self.tb[self.ch_zone[channel]]) * 100.0)
            return 0 if v < 0 else 0xFFFF if v > 0xFFFF else v
        return 0

    @property
    def stuck(self) -> bool:
        """A driver conducts whatever it is commanded (a ``stuck_on`` fault is active)."""
        return bool(self._stuck)

    def emitting(self, channel: int) -> bool:
        return self._modes()[0][channel] != _OFF

    def supply_mv(self) -> int:
        if self.brownout:
            return self.profile.sim.brownout_mv - BROWNOUT_SAG_MV
        return self.profile.sim.supply_mv - round(DROOP_FULL_MV * self._modes()[3] / self.n_ch)

    def ambient_q(self) -> int:
        return round(self.ambient_c * 100)

    # --- idle stretches in closed form ------------------------------------------------

    def dark(self) -> bool:
        """No channel emits under the current commands (nor would, whatever the board
        temperature: off channels stay off)."""
        return all(m == _OFF for m in self._modes()[0])

    def quiet_ticks(self, n: int) -> int:
        """How many of the next ``n`` ticks can pass in closed form, dark and uneventful.

        At most ``n``; 0 unless no channel emits. The stretch ends before the next fault
        change, and before any tick at which a thermistor reading could reach the cut-off
        (unless that zone reads it already: the firmware has latched it) or leave 0-80 °C
        (the engine's bounds: each mode of the two-node model decays monotonically, and
        the noise is bounded), so a firmware that skips those ticks misses nothing it
        would have acted on. Call it after the firmware has read the current tick.
        Halved until the bounds hold.
        """
        if n <= 0 or not self.dark():
            return 0
        n = min(n, self.next_fault_tick - 1 - self.tick)
        zs = self._idle_steps()
        if not all(st.can_jump() for st in zs):
            return 0
        margin = self._noise_max + 1
        hi = (self._cutoff_q - margin) / 100.0
        lo = (SENSOR_MIN_Q + margin) / 100.0
        top = (SENSOR_MAX_Q - margin) / 100.0
        hi = min(hi, top)
        # what the firmware read at this tick decides what can still trip: a constant
        # faulted thermistor trips nothing new; a zone already at the cut-off is latched
        # (it can only trip again through a CLEAR_FAULT, a request, which ends the skip)
        bounds = []
        for z in range(self.n_z):
            if z in self._override:
                bounds.append((-math.inf, math.inf))
            elif self.reading_q(z) >= self._cutoff_q:
                bounds.append((lo, top))
            else:
                bounds.append((lo, hi))
        while n > 0:
            ok = True
            for z in range(self.n_z):
                r = zs[z].jump(self.tb[z], self.ts[z], n)
                if r[5] >= bounds[z][1] or r[4] <= bounds[z][0]:
                    ok = False
                    break
            if ok:
                return n
            n //= 2
        return 0

    def jump(self, n: int) -> None:
        """``n`` dark ticks at once (only after :meth:`quiet_ticks` allowed them)."""
        zs = self._idle_steps()
        nb = []
        ns = []
        for z in range(self.n_z):
            r = zs[z].jump(self.tb[z], self.ts[z], n)
            nb.append(r[0])
            ns.append(r[1])
        self.tb = nb
        self.ts = ns
        self.tick += n
        self._mode_cache = None

    def idle(self, n: int) -> None:
        """``n`` dark ticks, each computed as :meth:`advance` computes it: to the last bit
        the state ``n`` calls would leave (only after :meth:`quiet_ticks` allowed them).
        Unlike :meth:`jump`, a run is then the same however its dark stretches are cut."""
        zs = self._idle_steps()
        nb = []
        ns = []
        for z in range(self.n_z):
            step = zs[z].tick
            b, s = self.tb[z], self.ts[z]
            for _ in range(n):
                b, s = step(b, s)
            nb.append(b)
            ns.append(s)
        self.tb = nb
        self.ts = ns
        self.tick += n

    def _idle_steps(self) -> list[Any]:
        key = frozenset(self._overtemp)
        if self._idle_key != key:
            extra = self.profile.sim.overtemp_w
            self._idle_key = key
            self._idle = [
                self._thermal[z].step(extra if z in key else 0.0, 0.0, 0.0, 0.0)
                for z in range(self.n_z)
            ]
        return self._idle

    # --- physics ----------------------------------------------------------------------

    def _modes(self) -> tuple[list[int], list[float], list[float], float]:
        """Per channel: mode, output = o0 + o1 * Tb (for full-drive ones), and the load."""
        if self._mode_cache is not None:
            return self._mode_cache
        n = self.n_ch
        mode = [_OFF] * n
        o0 = [0.0] * n
        o1 = [0.0] * n
        load = 0.0
        # the brown-out sags the emitter supply too: the drivers drop out with it
        live = self.master and not self.brownout
        for i in range(n):
            if not live or i in self._led_open:
                continue
            k = self._k[i]
            dmax = self._d[i] * self._tf[i]
            stuck = i in self._stuck
            sp = self.sp[i]
            if not stuck and sp == 0:
                continue
            tb = self.tb[self.ch_zone[i]]
            if not stuck and sp / 100.0 <= dmax * (1.0 + k * (tb - 25.0)):
                mode[i] = _NORM
                load += (self.duty[i] / FULL_DUTY) * (sp / 100.0) / self._d[i]
            else:
                mode[i] = _VAR
                o0[i] = dmax * (1.0 - 25.0 * k)
                o1[i] = dmax * k
                load += 1.0 if stuck else self.duty[i] / FULL_DUTY
        self._mode_cache = (mode, o0, o1, load)
        return self._mode_cache

    def advance(self) -> None:
        """Physics of the interval from the current tick to the next, under the commands."""
        mode, o0, o1, _ = self._modes()
        lit = [i for i in range(self.n_ch) if mode[i] != _OFF]
        tb = self.tb
        ts = self.ts
        if not lit:
            # dark: the modes cannot change with the board temperature (nothing is driven)
            zs = self._idle_steps()
            self.tb = []
            self.ts = []
            for z in range(self.n_z):
                b, s = zs[z].tick(tb[z], ts[z])
                self.tb.append(b)
                self.ts.append(s)
            self.tick += 1
            return
        for i in lit:
            duty = FULL_DUTY if i in self._stuck else self.duty[i]
            self.emitted[i] += self.measured_q(i) * duty
        self.emitting_ticks += 1
        nz = self.n_z
        qb0 = [0.0] * nz
        qb1 = [0.0] * nz
        qs0 = [0.0] * nz
        qs1 = [0.0] * nz
        for i in lit:
            m = mode[i]
            z = self.ch_zone[i]
            d = 1.0 if i in self._stuck else self.duty[i] / FULL_DUTY
            hb = self._hb[i]
            hs = self._hs[i]
            if m == _NORM:
                drv = self.sp[i] / 100.0
                k = self._k[i]
                qb0[z] += hb * d * drv * (1.0 + 25.0 * k)
                qb1[z] -= hb * d * drv * k
                qs0[z] += hs * d * drv
            else:
                qb0[z] += hb * d * self._d[i]
                qs0[z] += hs * d * o0[i]
                qs1[z] += hs * d * o1[i]
        for z in self._overtemp:
            qb0[z] += self.profile.sim.overtemp_w
        nb = []
        ns = []
        for z in range(nz):
            b, s = self._thermal[z].step(qb0[z], qb1[z], qs0[z], qs1[z]).tick(tb[z], ts[z])
            nb.append(b)
            ns.append(s)
        self.tb = nb
        self.ts = ns
        self.tick += 1
        self._mode_cache = None  # modes follow the board temperature


_OFF, _NORM, _VAR = 0, 1, 2

__all__ = ["RUNNER_FAULTS", "FaultChange", "Plant"]

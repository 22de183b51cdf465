"""Safety limits: the defaults (docs/clinical-basis.md) and the limits file that tightens them.

``DEFAULT_LIMITS`` is the host's default limit table; every number in it comes from
``docs/clinical-basis.md`` (source given in :data:`LIMIT_SPECS`) or, where no source gives
no number, is derived from its figures as explained in ``docs/safety.md``. A user's or
clinician's limits file (TOML, ``format = "lllt-limits/1"``) can lower a maximum or
lengthen a minimum, never the other way round; :func:`load_limits` refuses a file that
tries and names the key, the default and the value. Limits never live in protocol files:
nothing a protocol says can change a :class:`Limits`.

The temperature thresholds the monitor and the thermal prediction use are the limits less
the sensor uncertainty the device reports (:func:`temperature_thresholds`), and both use
the one :class:`DeratePolicy` so the prediction models the derating the monitor will do.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from lllt import units, wire
from lllt.errors import FieldProblem, FileFormatError
from lllt.units import Kind

FORMAT = "lllt-limits/1"
_FORMAT_RE = re.compile(r"^lllt-limits/(\d+)$")

#: A temperature threshold below this is a mistake (a resting scalp reads 32-35 °C).
MIN_PLAUSIBLE_TEMP_C = 36.0

HOUR = 3600.0
DAY = 24 * HOUR
WEEK = 7 * DAY


@dataclass(frozen=True, slots=True)
class Limits:
    """Host limits in engineering units. Build one with :func:`load_limits` or ``replace``."""

    max_irradiance_mw_cm2: float = 100.0  # on-state, any channel
    max_fluence_session_j_cm2: float = 10.0  # per wavelength per session
    max_total_fluence_session_j_cm2: float = 10.0  # all wavelengths together, per session
    max_fluence_24h_j_cm2: float = 20.0  # per wavelength, rolling 24 h (history included)
    max_fluence_7d_j_cm2: float = 70.0  # per wavelength, rolling 7 days
    min_interval_s: float = 12 * HOUR  # from the end of one session to the next start
    max_sessions_per_week: int = 14  # rolling 7 days
    warn_temp_c: float = 41.0  # derate (less the sensor uncertainty)
    abort_temp_c: float = 43.0  # abort (less the sensor uncertainty)
    max_session_s: float = 3600.0  # longest session, fluence-target maxima included
    max_laser_emitter_mw: float = 5.0  # one laser emitter, 400-700 nm (scaled above 700 nm)
    min_pulse_hz: float = 2.0
    max_pulse_hz: float = 10_000.0
    #: where the values come from: None for the defaults, else the limits file's path
    path: str | None = field(default=None, compare=False)
    #: attribute names the limits file set (each tighter than the default)
    from_file: frozenset[str] = field(default=frozenset(), compare=False)

    def source_of(self, attr: str) -> str:
        """``"limits-file"`` when the file set ``attr``, else ``"default"``."""
        return "limits-file" if attr in self.from_file else "default"

    def to_dict(self) -> dict[str, Any]:
        """JSON form: per limits-file key, its ``value``, ``unit`` and ``source`` (``default`` or
        ``limits-file``); ``file`` is the limits file's path when the limits came from one."""
        out: dict[str, Any] = {}
        for spec in LIMIT_SPECS:
            out[spec.key] = {
                "value": getattr(self, spec.attr),
                "unit": spec.unit_label,
                "source": self.source_of(spec.attr),
            }
        if self.path is not None:
            out["file"] = self.path
        return out


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True, slots=True)
class LimitSpec:
    """One row of the default limit table: file key, unit, direction and source."""

    key: str  # key in a limits file
    attr: str  # Limits attribute
    unit: str | None  # pint unit the file's quantity converts to; None: a plain integer
    unit_label: str
    tighter: Literal["lower", "higher"]  # which way a limits file may move it
    label: str
    source: str

    @property
    def default(self) -> float:
        """The default value, in the unit of the :class:`Limits` attribute."""
        return float(getattr(DEFAULT_LIMITS, self.attr))


LIMIT_SPECS: tuple[LimitSpec, ...] = (
    LimitSpec(
        "max_irradiance", "max_irradiance_mw_cm2", "mW/cm^2", "mW/cm²", "lower",
        "irradiance at the scalp, absolute cap",
        "WALT dose table ceiling; top of the 3-90 mW/cm² LLLT range (Avci 2014)",
    ),
    LimitSpec(
        "max_fluence_per_session", "max_fluence_session_j_cm2", "J/cm^2", "J/cm²", "lower",
        "fluence per session per wavelength (scalp average)",
        "top of the 1-10 J/cm² LLLT range (Avci 2014); biphasic dose response (Huang 2009)",
    ),
    LimitSpec(
        "max_total_fluence_per_session", "max_total_fluence_session_j_cm2", "J/cm^2", "J/cm²",
        "lower",
        "fluence per session over all wavelengths together (scalp average, per zone)",
        "top of the 1-10 J/cm² LLLT range (Avci 2014), a dose whatever its wavelength",
    ),
    LimitSpec(
        "max_fluence_per_24h", "max_fluence_24h_j_cm2", "J/cm^2", "J/cm²", "lower",
        "fluence per wavelength in any 24 h",
        "derived: two sessions at the 10 J/cm² cap, the most the 12 h spacing allows",
    ),
    LimitSpec(
        "max_fluence_per_7d", "max_fluence_7d_j_cm2", "J/cm^2", "J/cm²", "lower",
        "fluence per wavelength in any 7 days",
        "derived: daily sessions (the most frequent published schedule, Kim 2013) "
        "at the 10 J/cm² cap",
    ),
    LimitSpec(
        "min_interval", "min_interval_s", "s", "s", "higher",
        "time from the end of one session to the next start",
        "Theradome instructions: at least 12 h between sessions",
    ),
    LimitSpec(
        "max_sessions_per_week", "max_sessions_per_week", None, "sessions", "lower",
        "sessions in any 7 days",
        "derived: the 12 h spacing allows at most 14",
    ),
    LimitSpec(
        "warn_temperature", "warn_temp_c", "degC", "°C", "lower",
        "scalp-contact temperature that derates (less the sensor uncertainty)",
        "IEC 60601-1 cl. 42.3: applied parts at most 41 °C",
    ),
    LimitSpec(
        "abort_temperature", "abort_temp_c", "degC", "°C", "lower",
        "scalp-contact temperature that aborts (less the sensor uncertainty)",
        "IEC 60601-1 ed.3 Table 24: skin contact of 10 min or more, 43 °C",
    ),
    LimitSpec(
        "max_session_duration", "max_session_s", "s", "s", "lower",
        "session duration, fluence-target maxima included",
        "derived: no published session exceeds 25 min (Lanzafame 2013); 60 min leaves room "
        "for a derated fluence-target phase",
    ),
    LimitSpec(
        "max_laser_emitter_power", "max_laser_emitter_mw", "mW", "mW", "lower",
        "optical power of one laser emitter at 400-700 nm (scaled by 0.39 x C4 above 700 nm)",
        "IEC 60825-1 Class 3R: 5 mW at 400-700 nm",
    ),
    LimitSpec(
        "min_pulse_frequency", "min_pulse_hz", "Hz", "Hz", "higher",
        "lowest pulse frequency",
        "pulsed therapy devices run 2-10 000 Hz",
    ),
    LimitSpec(
        "max_pulse_frequency", "max_pulse_hz", "Hz", "Hz", "lower",
        "highest pulse frequency",
        "pulsed therapy devices run 2-10 000 Hz",
    ),
)  # fmt: skip

SPEC_BY_KEY = {s.key: s for s in LIMIT_SPECS}

#: Laser wavelengths for which lllt knows the Class 3R accessible emission limit (nm).
LASER_LIMIT_NM = (400.0, 1050.0)
#: IEC 60825-1 Class 1 limit for long continuous-wave exposure at 700-1050 nm is
#: 0.39 mW x C4; Class 3R is 5 x Class 1.
CLASS1_IR_MW = 0.39
CLASS3R_VISIBLE_MW = 5.0


def c4(wavelength_nm: float) -> float:
    """IEC 60825-1 correction factor C4 = 10^(0.002 (λ - 700)) for 700-1050 nm (1 below)."""
    return 10 ** (0.002 * (min(max(wavelength_nm, 700.0), 1050.0) - 700.0))


def laser_emitter_limit_mw(
    wavelength_nm: float, visible_cap_mw: float = CLASS3R_VISIBLE_MW
) -> float | None:
    """The most one laser emitter at this wavelength may emit (continuous wave), in mW.

    IEC 60825-1 Class 3R: 5 mW from 400 to 700 nm; from 700 to 1050 nm 5 x the Class 1
    limit, 5 x 0.39 mW x C4 (2.29 mW at 735 nm, 3.21 mW at 808 nm). ``visible_cap_mw`` is
    the 400-700 nm value of the limits in force (5 mW unless a limits file lowers it);
    above 700 nm it is scaled by the same ratio, 0.39 x C4. None outside 400-1050 nm,
    where other terms of the standard apply that lllt does not implement.
    """
    lo, hi = LASER_LIMIT_NM
    if not lo <= wavelength_nm <= hi:
        return None
    if wavelength_nm <= 700.0:
        return visible_cap_mw
    return visible_cap_mw * CLASS1_IR_MW * c4(wavelength_nm)


SPEC_BY_ATTR = {s.attr: s for s in LIMIT_SPECS}
_META_KEYS = {"format", "description", "issued_by"}


# --- temperature thresholds and the derate policy ----------------------------------------


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Contact-temperature readings at which the host derates and aborts (°C)."""

    warn_c: float
    abort_c: float
    uncertainty_c: float


def temperature_thresholds(limits: Limits, device: wire.DeviceLimits) -> Thresholds:
    """The limits less the device's sensor uncertainty ("41 °C minus the sensor uncertainty").

    The abort threshold is never above the device's own cut-off, so the host acts no later
    than the device would.
    """
    unc = max(0.0, device.sensor_uncertainty_c)
    abort = min(limits.abort_temp_c - unc, device.cutoff_c)
    warn = min(limits.warn_temp_c - unc, abort)
    return Thresholds(warn_c=warn, abort_c=abort, uncertainty_c=unc)


@dataclass(frozen=True, slots=True)
class DeratePolicy:
    """How the host steps the output down while a zone reads at or above the warning.

    Every ``interval_s`` of device time spent at or above the warning threshold the output
    factor is multiplied by ``factor`` (−10 % of the current level), never below
    ``floor_permille``. The host never raises it again during a session: a cooling scalp
    keeps the lower output, so the host cannot oscillate around the threshold and a
    session that needed derating stays derated (a fluence-target phase runs longer).
    Below the floor dimming does not help any more (a quarter of the heat leaves the
    scalp hot for another reason, fever or a hot room); the abort threshold takes over.
    """

    interval_s: float = 10.0
    factor: float = 0.9
    floor_permille: int = 250

    def next_permille(self, permille: int) -> int:
        """One step down from ``permille``: times ``factor``, rounded down, never below
        ``floor_permille`` (and never above ``permille``)."""
        return max(self.floor_permille, min(permille, math.floor(permille * self.factor)))

    def step_at(self, permille: int, last_step_s: float | None, now_s: float) -> int | None:
        """The output factor to step down to at ``now_s`` (a zone at or above the warning).

        None when no step is due: ``permille`` is already at the floor, or less than
        ``interval_s`` (less a nanosecond for rounding) has passed since the last step at
        ``last_step_s`` (None: no step yet). Times are device seconds. The one home of the
        rule, shared by the runtime monitor and the thermal prediction so both derate at the
        same moments.
        """
        if permille > self.floor_permille and (
            last_step_s is None or now_s - last_step_s >= self.interval_s - 1e-9
        ):
            return self.next_permille(permille)
        return None


DEFAULT_DERATE = DeratePolicy()


# --- limits file ---------------------------------------------------------------------------


def load_limits(path: str | Path) -> Limits:
    """Read a limits file; raises FileFormatError listing every problem found."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileFormatError(
            str(p),
            [FieldProblem("", "no such file")],
            advice="Give the path of an existing limits file (see docs/safety.md).",
        ) from None
    except (OSError, UnicodeDecodeError) as err:
        raise FileFormatError(str(p), [FieldProblem("", f"cannot be read: {err}")]) from None
    return parse_limits(text, source=str(p))


def parse_limits(text: str, *, source: str = "<limits>") -> Limits:
    """Parse limits TOML text; every key must tighten its default."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise FileFormatError(source, [FieldProblem("", f"not valid TOML: {err}")]) from None
    problems: list[FieldProblem] = []
    _check_format(data.get("format"), source, problems)
    if problems and problems[0].field == "format" and "upgrade" in problems[0].message:
        raise FileFormatError(source, problems, advice="Upgrade lllt to read this file.")
    values: dict[str, Any] = {}
    for key, raw in data.items():
        if key in _META_KEYS:
            if key != "format" and not isinstance(raw, str):
                problems.append(FieldProblem(key, "expected a string"))
            continue
        spec = SPEC_BY_KEY.get(key)
        if spec is None:
            known = ", ".join(s.key for s in LIMIT_SPECS)
            problems.append(FieldProblem(key, f"unknown key; a limits file knows {known}"))
            continue
        value = _convert(spec, raw, problems)
        if value is None:
            continue
        if not _is_tighter_or_equal(spec, value):
            problems.append(FieldProblem(key, _loosening_message(spec, raw, value)))
            continue
        values[spec.attr] = value
    limits = replace(DEFAULT_LIMITS, **values, path=source, from_file=frozenset(values))
    if limits.warn_temp_c > limits.abort_temp_c:
        problems.append(
            FieldProblem(
                "warn_temperature",
                f"{limits.warn_temp_c:g} °C is above the abort temperature "
                f"{limits.abort_temp_c:g} °C; the warning must come first",
            )
        )
    if limits.min_pulse_hz > limits.max_pulse_hz:
        problems.append(
            FieldProblem(
                "min_pulse_frequency",
                f"{limits.min_pulse_hz:g} Hz is above max_pulse_frequency "
                f"{limits.max_pulse_hz:g} Hz",
            )
        )
    if problems:
        raise FileFormatError(
            source,
            problems,
            advice="A limits file may only tighten the defaults (see docs/safety.md).",
        )
    return limits


def _check_format(fmt: Any, source: str, problems: list[FieldProblem]) -> None:
    if fmt == FORMAT:
        return
    if fmt is None:
        problems.append(
            FieldProblem("format", f'missing; the first line should be format = "{FORMAT}"')
        )
        return
    m = _FORMAT_RE.match(str(fmt))
    if m and int(m.group(1)) > 1:
        problems.append(
            FieldProblem(
                "format", f"{fmt!r} is newer than this lllt knows ({FORMAT!r}); upgrade lllt"
            )
        )
    else:
        problems.append(FieldProblem("format", f"expected {FORMAT!r}, found {fmt!r}"))


def _convert(spec: LimitSpec, raw: Any, problems: list[FieldProblem]) -> float | int | None:
    """The file's value in the attribute's unit, or None after recording a problem."""
    if spec.unit is None:
        if isinstance(raw, bool) or not isinstance(raw, int):
            problems.append(FieldProblem(spec.key, f"expected a whole number, found {raw!r}"))
            return None
        if raw < 1:
            problems.append(FieldProblem(spec.key, f"must be at least 1, found {raw}"))
            return None
        return raw
    value = _to_unit(raw, spec.unit)
    if isinstance(value, str):
        problems.append(FieldProblem(spec.key, value))
        return None
    if spec.unit == "degC" and value < MIN_PLAUSIBLE_TEMP_C:
        # lower is tighter, but a threshold below a resting scalp would stop every session
        problems.append(
            FieldProblem(
                spec.key,
                f"{raw!r} is below {MIN_PLAUSIBLE_TEMP_C:g} °C, under a resting scalp's "
                "temperature: every session would stop at once",
            )
        )
        return None
    if spec.unit != "degC" and value <= 0:
        problems.append(FieldProblem(spec.key, f"must be positive, found {raw!r}"))
        return None
    return value


def _is_tighter_or_equal(spec: LimitSpec, value: float) -> bool:
    # a tiny tolerance so that "12 h" written as "720 min" is not a loosening
    eps = 1e-9 * max(1.0, abs(spec.default))
    if spec.tighter == "lower":
        return value <= spec.default + eps
    return value >= spec.default - eps


def _loosening_message(spec: LimitSpec, raw: Any, value: float) -> str:
    verb, allowed = ("raises", "lower") if spec.tighter == "lower" else ("lowers", "raise")
    shown = _human(value, spec)
    given = repr(raw) if str(raw) == shown else f"{raw!r} ({shown})"
    return (
        f"{given} {verb} the default {_human(spec.default, spec)} ({spec.source}); "
        f"a limits file may only {allowed} the {spec.label}"
    )


def _human(value: float, spec: LimitSpec) -> str:
    if spec.unit == "s":
        return format_duration(value)
    return f"{value:g} {spec.unit_label}"


_KINDS = {
    "mW/cm^2": Kind.IRRADIANCE,
    "J/cm^2": Kind.FLUENCE,
    "s": Kind.TIME,
    "degC": Kind.TEMPERATURE,
    "Hz": Kind.FREQUENCY,
}


def _to_unit(raw: Any, unit: str) -> float | str:
    """``raw`` ("12 h", "41 °C", "5 mW") in ``unit``, or what is wrong with it.

    Units go through the one registry of :mod:`lllt.units`, as in protocol files; a bare
    number is refused there, never guessed.
    """
    kind = _KINDS.get(unit)
    if kind is not None:
        result = units.try_parse(raw, kind)
        return str(result) if isinstance(result, units.UnitProblem) else result
    # optical power of one emitter: a kind protocol files do not need
    expected = f"a power with its unit, such as '5 {unit}'"
    m = _QTY_RE.match(raw) if isinstance(raw, str) else None
    if m is None or not m.group(2):
        return f"found {raw!r}; expected {expected}"
    ureg = units.registry()
    try:
        parsed = ureg.parse_units(m.group(2))
        if parsed.dimensionality != ureg.parse_units(unit).dimensionality:
            return f"found {raw!r}, which is not a power; expected {expected}"
        value = float(ureg.Quantity(float(m.group(1)), parsed).to(unit).magnitude)
    except Exception:  # pint raises many kinds of errors for text it cannot read
        return f"found {raw!r}, whose unit lllt does not know; expected {expected}"
    return value if math.isfinite(value) else f"found {raw!r}; expected {expected}"


_QTY_RE = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(.*?)\s*$")


def format_duration(seconds: float) -> str:
    """A short human form: "11 h 58 min", "3 d 4 h", "45 s"."""
    s = max(0, math.ceil(seconds))
    if s < 60:
        return f"{s} s"
    minutes = math.ceil(s / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 72:  # "48 h" reads better than "2 d" for session intervals
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"

"""Treatment protocol files: the ``lllt-protocol/1`` model, its one loader, its JSON Schema.

A protocol says what light to give (wavelength or channel, irradiance, pulse, zones) for
how long or to what fluence, in phases, and how often (``[schedule]``). It holds no limits:
limits never live in the file they constrain (docs/safety.md). Files are TOML (primary), YAML
or JSON, chosen by extension, and all load into the same pydantic models through
:func:`load_protocol`; every quantity is a string with its unit, stored on the model in
the canonical unit of :mod:`lllt.units` (``phase.duration`` is seconds, an irradiance is
mW/cm²). Every problem in a file is reported at once, as
``FileFormatError(path, [FieldProblem("phases[1].emit.655nm", "found ...; expected ..."), ...])``.

:func:`describe` is the device-independent summary; :func:`lllt.plan.analyze` adds what
a device would run (``lllt protocol check``), and preflight its safety analysis. The dose
arithmetic lives in :mod:`lllt.dose`, below this module and :mod:`lllt.plan`.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

from lllt import units
from lllt.dose import duration_for_fluence, phase_fluence
from lllt.errors import FieldProblem, FileFormatError, InvalidInput
from lllt.units import Kind

if TYPE_CHECKING:
    pass

FORMAT = "lllt-protocol/1"
FORMAT_MAJOR = 1
#: Files above this size are refused before they are read or parsed.
MAX_FILE_BYTES = 1_000_000
#: A fluence phase without ``max_duration`` may run this many times its expected duration
#: (time at full output), so a derated, dimmer session still reaches its dose.
DEFAULT_MAX_DURATION_FACTOR = 1.5
#: The wire protocol carries at most 16 steps per plan (docs/wire-protocol.md §6).
MAX_PHASES = 16
#: Pulse frequencies and duty cycles any protocol may ask for (docs/clinical-basis.md:
#: pulsed devices run 2-10 000 Hz); a device may accept less, which planning checks.
PULSE_HZ_RANGE = (2.0, 10_000.0)
DUTY_PCT_RANGE = (1.0, 100.0)
#: Emission keys name light, 200-2000 nm; anything else is a typo in the unit.
WAVELENGTH_NM_RANGE = (200, 2000)

EXTENSIONS = {".toml": "toml", ".yaml": "yaml", ".yml": "yaml", ".json": "json"}

_QUANTITY_PATTERN = r"^\s*[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*[^\s\d.].*$"
_CHANNEL_KEY = re.compile(r"ch(\d{1,3})\Z")
_ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}\Z")
_NEWER = re.compile(r"lllt-protocol/(\d+)(?:\.\d+)?\Z")


# --- field types -------------------------------------------------------------------------


def _fail(message: str, **ctx: Any) -> PydanticCustomError:
    """A validation error whose text is exactly ``message``.

    ``field`` in ctx appends a key to the error's location (for checks that look at
    several fields at once); ``problems`` carries several (field, message) pairs.
    """
    return PydanticCustomError("lllt", "{message}", {"message": message, **ctx})


def _describe(value: Any) -> str:
    """What a person wrote, in words: ``the text '25'``, ``the number 25``, ``a table``."""
    if isinstance(value, bool):
        return f"the value {str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        shown = value if len(value) <= 60 else value[:57] + "..."
        return f"the text {shown!r}"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list | tuple):
        return "a list"
    if value is None:
        return "nothing (null)"
    return f"a {type(value).__name__}"


@dataclass(frozen=True)
class Quantity:
    """Field metadata: a float written as a string with a unit, kept in ``kind``'s unit.

    ``Annotated[float, Quantity(Kind.TIME)]`` validates ``"25 min"`` to ``1500.0``,
    serialises back to ``"25 min"``, and shows as a string pattern in the JSON Schema.
    ``low``/``high`` bound the canonical value (``low`` exclusive unless ``low_inclusive``).
    """

    kind: Kind
    low: float | None = 0.0
    low_inclusive: bool = False
    high: float | None = None
    what: str | None = None
    example: str | None = None

    def validate(self, value: Any) -> float:
        """A file's value (text with a unit) as a float in ``kind``'s canonical unit. Raises a
        validation error saying what was found and what was expected when the unit is missing
        or of another kind, or the value is outside ``low``/``high``."""
        kind, low, high = self.kind, self.low, self.high
        noun = self.what or kind.noun
        result = units.try_parse(value, kind)
        if isinstance(result, units.UnitProblem):
            raise _fail(str(result))
        canonical = units.format_quantity(result, kind)
        shown = repr(value) if str(value).strip() == canonical else f"{value!r} ({canonical})"
        if low is not None and (result < low or (result == low and not self.low_inclusive)):
            bound = f"at least {low:g}" if self.low_inclusive else f"more than {low:g}"
            if high is not None:
                bound = f"{low:g} to {high:g}"
            raise _fail(f"found {shown}; expected {noun} of {bound} {kind.symbol}")
        if high is not None and result > high:
            raise _fail(f"found {shown}; expected {noun} of {low:g} to {high:g} {kind.symbol}")
        return result

    def text(self, value: float) -> str:
        """The value as a file writes it, with its unit (``1500.0`` s -> ``"25 min"``)."""
        return units.format_quantity(value, self.kind)

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_before_validator_function(
            self.validate,
            core_schema.float_schema(),
            serialization=core_schema.plain_serializer_function_ser_schema(
                self.text, return_schema=core_schema.str_schema()
            ),
        )

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        example = self.example or self.kind.example
        return {
            "type": "string",
            "pattern": _QUANTITY_PATTERN,
            "description": f"{self.what or self.kind.noun} with its unit, e.g. '{example}'",
            "examples": [example],
        }


Duration = Annotated[float, Quantity(Kind.TIME)]
Ramp = Annotated[float, Quantity(Kind.TIME, low_inclusive=True, what="a ramp", example="10 s")]
Fluence = Annotated[float, Quantity(Kind.FLUENCE)]
Irradiance = Annotated[float, Quantity(Kind.IRRADIANCE)]
Frequency = Annotated[
    float,
    Quantity(
        Kind.FREQUENCY,
        low=PULSE_HZ_RANGE[0],
        high=PULSE_HZ_RANGE[1],
        low_inclusive=True,
        what="a pulse frequency",
    ),
]
Duty = Annotated[
    float,
    Quantity(
        Kind.DUTY,
        low=DUTY_PCT_RANGE[0],
        high=DUTY_PCT_RANGE[1],
        low_inclusive=True,
        what="a duty cycle",
    ),
]


def parse_emit_key(key: Any) -> tuple[Literal["wavelength", "channel"], int]:
    """``"655nm"`` → ``("wavelength", 655)``; ``"ch3"`` → ``("channel", 3)``.

    Raises ValueError with a message saying what was expected.
    """
    expected = "a wavelength such as '655nm' or a channel id such as 'ch3'"
    if not isinstance(key, str):
        raise ValueError(f"found {_describe(key)}; expected {expected}")
    match = _CHANNEL_KEY.match(key.strip())
    if match:
        return "channel", int(match.group(1))
    result = units.try_parse(key, Kind.WAVELENGTH)
    if isinstance(result, units.UnitProblem):
        raise ValueError(f"found {key!r}; expected {expected}")
    nm = round(result)
    if abs(result - nm) > 1e-6:
        raise ValueError(f"found {key!r}; a wavelength is a whole number of nm, such as '655nm'")
    lo, hi = WAVELENGTH_NM_RANGE
    if not lo <= nm <= hi:
        raise ValueError(f"found {key!r} ({nm} nm); expected light of {lo} to {hi} nm")
    return "wavelength", nm


def emit_key(kind: Literal["wavelength", "channel"], number: int) -> str:
    """The canonical spelling of an emission key: ``655nm`` or ``ch3``."""
    return f"{number}nm" if kind == "wavelength" else f"ch{number}"


def _check_emit_key(key: Any) -> str:
    try:
        parse_emit_key(key)
    except ValueError as err:
        raise _fail(str(err)) from None
    return key


def _canonical_emit(emit: dict[str, float]) -> dict[str, float]:
    out: dict[str, float] = {}
    first: dict[str, str] = {}
    for key, value in emit.items():
        canon = emit_key(*parse_emit_key(key))
        if canon in out:
            raise _fail(f"{first[canon]!r} and {key!r} name the same light; give it once")
        out[canon] = value
        first[canon] = key
    return out


_EMIT_SCHEMA = {
    "type": "object",
    "minProperties": 1,
    "description": (
        "irradiance (on-state, at the scalp) by wavelength ('655nm') or by channel id ('ch3')"
    ),
    "propertyNames": {"pattern": r"^\s*(ch\d{1,3}|\d+(\.\d*)?\s*[a-zµμ]*m)\s*$"},
    "additionalProperties": {
        "type": "string",
        "pattern": _QUANTITY_PATTERN,
        "description": "an irradiance with its unit, e.g. '3 mW/cm^2'",
    },
    "examples": [{"655nm": "3 mW/cm^2"}],
}

Emit = Annotated[
    dict[Annotated[str, BeforeValidator(_check_emit_key)], Irradiance],
    Field(min_length=1),
    AfterValidator(_canonical_emit),
    WithJsonSchema(_EMIT_SCHEMA),
]


def _check_zones(zones: list[str]) -> list[str]:
    if "all" in zones and len(zones) > 1:
        raise _fail(f"found {zones}; 'all' already means every zone, give it alone")
    seen = set()
    for zone in zones:
        if zone in seen:
            raise _fail(f"zone {zone!r} is listed twice")
        seen.add(zone)
    return zones


def _check_id(value: str) -> str:
    if not _ID.match(value):
        raise _fail(
            f"found {value!r}; expected 1 to 64 lowercase letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return value


Name = Annotated[StrictStr, Field(min_length=1, max_length=200)]


# --- models ------------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Pulse(_Model):
    """Pulsed output: ``irradiance`` is the on-state value, the average is × duty."""

    frequency: Frequency  # Hz
    duty: Duty  # %


class Phase(_Model):
    """One phase of a session; becomes one step of the plan.

    Times are in s, fluence in J/cm², irradiance in mW/cm² (on-state), keyed ``655nm`` or
    ``ch3``. Exactly one of ``duration`` and ``fluence`` is given; the duration includes
    the ramp.
    """

    name: Annotated[StrictStr, Field(min_length=1, max_length=40)]
    duration: Duration | None = None
    fluence: Fluence | None = None
    max_duration: Duration | None = None
    ramp: Annotated[Ramp, Field(json_schema_extra={"default": "0 s"})] = 0.0
    emit: Emit
    zones: Annotated[
        list[Annotated[StrictStr, Field(min_length=1, max_length=40)]],
        Field(min_length=1),
        AfterValidator(_check_zones),
    ] = ["all"]
    pulse: Pulse | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Phase:
        problems: list[tuple[str, str]] = []
        if (self.duration is None) == (self.fluence is None):
            which = "both" if self.duration is not None else "neither"
            problems.append(
                ("duration", f"{which} of duration and fluence given; give exactly one")
            )
        elif self.duration is not None:
            if self.max_duration is not None:
                problems.append(
                    ("max_duration", "only a fluence phase has a max_duration; remove it")
                )
            if self.ramp > self.duration:
                problems.append(
                    ("ramp", self._longer("ramp", self.ramp, "duration", self.duration))
                )
        else:
            expected = self.expected_duration_s
            if self.ramp > expected:
                problems.append(
                    ("ramp", self._longer("ramp", self.ramp, "time to the fluence", expected))
                )
            if self.max_duration is not None and self.max_duration < expected:
                problems.append(
                    (
                        "max_duration",
                        f"found {units.human_duration(self.max_duration)}; the phase needs "
                        f"{units.human_duration(expected)} to reach "
                        f"{units.number_text(self.fluence or 0.0)} J/cm² at full output",
                    )
                )
        if problems:
            raise _fail("; ".join(f"{f}: {m}" for f, m in problems), problems=problems)
        return self

    @staticmethod
    def _longer(what: str, value: float, other: str, limit: float) -> str:
        return (
            f"found {what} {units.human_duration(value)}, longer than the {other} "
            f"({units.human_duration(limit)}); a {what} must fit in its phase"
        )

    # --- derived values (canonical units) --------------------------------------------
    @property
    def is_fluence(self) -> bool:
        """True when the phase ends on a fluence target rather than a duration."""
        return self.fluence is not None

    @property
    def duty_pct(self) -> float:
        """Duty cycle in percent: the pulse's, or 100 for continuous wave."""
        return self.pulse.duty if self.pulse else 100.0

    @property
    def pulse_hz(self) -> float:
        """0 for continuous wave."""
        return self.pulse.frequency if self.pulse else 0.0

    def wavelength_emits(self) -> dict[int, float]:
        """nm → mW/cm² for the keys that name a wavelength."""
        out = {}
        for key, irradiance in self.emit.items():
            kind, number = parse_emit_key(key)
            if kind == "wavelength":
                out[number] = irradiance
        return out

    def channel_emits(self) -> dict[int, float]:
        """channel id → mW/cm² for the keys that name a channel."""
        out = {}
        for key, irradiance in self.emit.items():
            kind, number = parse_emit_key(key)
            if kind == "channel":
                out[number] = irradiance
        return out

    def fluence_at(self, irradiance_mw_cm2: float) -> float:
        """J/cm² a channel at this (on-state) irradiance receives in this phase."""
        if self.fluence is not None:
            return self.fluence
        assert self.duration is not None
        return phase_fluence(irradiance_mw_cm2, self.duty_pct, self.duration, self.ramp)

    def duration_at(self, irradiance_mw_cm2: float) -> float:
        """Seconds a channel at this irradiance emits in this phase (at full output)."""
        if self.fluence is None:
            assert self.duration is not None
            return self.duration
        return duration_for_fluence(self.fluence, irradiance_mw_cm2, self.duty_pct, self.ramp)

    @property
    def expected_duration_s(self) -> float:
        """The duration, or for a fluence phase the time its slowest channel needs."""
        return max(self.duration_at(irr) for irr in self.emit.values())

    @property
    def max_duration_s(self) -> float:
        """The most the phase may run: its duration, or a fluence phase's bound."""
        if self.duration is not None:
            return self.duration
        if self.max_duration is not None:
            return self.max_duration
        return DEFAULT_MAX_DURATION_FACTOR * self.expected_duration_s


class Stage(_Model):
    """One stage of a course: a session every ``every`` for ``length``."""

    name: Annotated[StrictStr, Field(min_length=1, max_length=40)] | None = None
    every: Duration  # from the start of one session to the start of the next, as planned
    length: Duration  # how long the stage lasts

    @model_validator(mode="after")
    def _fits(self) -> Stage:
        if self.every > self.length:
            raise _fail(
                f"every ({units.human_duration(self.every)}) is longer than the stage "
                f"({units.human_duration(self.length)}); the stage would hold no session",
                field="every",
            )
        return self


class Schedule(_Model):
    """How often sessions may run; preflight enforces it against the session history.

    ``course`` and ``stages`` describe the course of treatment (``lllt course``); they
    never allow a session that ``min_interval`` or ``max_sessions_per_week`` refuses.
    """

    min_interval: Duration | None = None  # from the end of one session to the next start
    max_sessions_per_week: Annotated[StrictInt, Field(ge=1, le=100)] | None = None
    course: Duration | None = None  # length of the whole course of treatment
    stages: Annotated[list[Stage], Field(min_length=1, max_length=16)] | None = None

    @model_validator(mode="after")
    def _stages_fit_the_course(self) -> Schedule:
        if self.stages and self.course is not None:
            total = sum(s.length for s in self.stages)
            if abs(total - self.course) > 1e-6:
                raise _fail(
                    f"the stages last {units.human_duration(total)} but the course is "
                    f"{units.human_duration(self.course)}; make them agree or leave out "
                    "course",
                    field="course",
                )
        return self

    def stage_numbers(self) -> dict[str, str]:
        """Provenance paths of the numbers in the course's stages."""
        out: dict[str, str] = {}
        for i, stage in enumerate(self.stages or []):
            dumped = stage.model_dump(mode="json", exclude_none=True)
            out[f"schedule.stages[{i}].every"] = dumped["every"]
            out[f"schedule.stages[{i}].length"] = dumped["length"]
        return out


class Meta(_Model):
    """Informational only: nothing here changes what a session does or may do."""

    #: the packaged device profile the protocol was written for (``lllt protocol list``)
    profile: Annotated[StrictStr, Field(min_length=1, max_length=64)] | None = None


#: The kinds of provenance a number can have (docs/protocol-format.md, "Provenance").
PROVENANCE_KINDS = ("published", "derived", "chosen")
#: What each kind must give: the source, the calculation or the reason.
_PROVENANCE_NEEDS = {"published": "source", "derived": "calculation", "chosen": "reason"}
_PROV_TEXT = Annotated[StrictStr, Field(min_length=1, max_length=2000)]


class Provenance(_Model):
    """Where one number of the file comes from.

    ``published`` names its ``source``; ``derived`` gives its ``calculation`` from published
    numbers; ``chosen`` gives the ``reason`` for lllt's (or the author's) choice.
    ``departs`` says how the value departs from the source the protocol follows, if it does.
    """

    kind: Literal["published", "derived", "chosen"]
    source: _PROV_TEXT | None = None
    calculation: _PROV_TEXT | None = None
    reason: _PROV_TEXT | None = None
    departs: _PROV_TEXT | None = None

    @model_validator(mode="after")
    def _says_why(self) -> Provenance:
        need = _PROVENANCE_NEEDS[self.kind]
        if getattr(self, need) is None:
            raise _fail(f'a {self.kind} value needs its {need}; add {need} = "..."')
        return self

    @property
    def text(self) -> str:
        """One line: ``published: Lanzafame 2013``, ``derived: 21 x 5 mW / 300 cm^2 ...``."""
        body = getattr(self, _PROVENANCE_NEEDS[self.kind])
        extra = [f"source: {self.source}"] if self.kind != "published" and self.source else []
        if self.departs:
            extra.append(f"departs from its source: {self.departs}")
        return f"{self.kind}: {body}" + "".join(f"; {e}" for e in extra)


class Protocol(_Model):
    """A treatment protocol, format ``lllt-protocol/1``."""

    format: Literal["lllt-protocol/1"] = "lllt-protocol/1"
    id: Annotated[StrictStr, AfterValidator(_check_id)]
    name: Name
    references: list[Annotated[StrictStr, Field(min_length=1)]] = []
    research: StrictBool = False
    notes: StrictStr | None = None
    meta: Meta | None = None
    schedule: Schedule | None = None
    phases: Annotated[list[Phase], Field(min_length=1, max_length=MAX_PHASES)]
    #: where each number comes from, keyed by its path (``phases.treatment.duration``)
    provenance: dict[Annotated[StrictStr, Field(min_length=1, max_length=200)], Provenance] = {}

    @model_validator(mode="before")
    @classmethod
    def _known_format(cls, data: Any) -> Any:
        # Checked before anything else: a newer file is reported as one clear line, not
        # as the unknown keys of a format this code has never seen.
        if not isinstance(data, dict) or "format" not in data:
            return data
        fmt = data["format"]
        if fmt == FORMAT:
            return data
        newer = _NEWER.match(fmt) if isinstance(fmt, str) else None
        if newer and int(newer.group(1)) > FORMAT_MAJOR:
            raise _fail(
                f"this file is {fmt}, newer than this lllt understands ({FORMAT}); "
                "upgrade lllt (pip install -U lllt) to use it",
                field="format",
            )
        raise _fail(f'found {_describe(fmt)}; expected format = "{FORMAT}"', field="format")

    @model_validator(mode="after")
    def _unique_phase_names(self) -> Protocol:
        seen: dict[str, int] = {}
        problems = []
        for i, phase in enumerate(self.phases):
            if phase.name in seen:
                problems.append(
                    (
                        f"phases[{i}].name",
                        f"{phase.name!r} is already the name of phases[{seen[phase.name]}]; "
                        "phase names must be unique",
                    )
                )
            seen.setdefault(phase.name, i)
        if problems:
            raise _fail("; ".join(f"{f}: {m}" for f, m in problems), problems=problems)
        return self

    @model_validator(mode="after")
    def _provenance_names_numbers(self) -> Protocol:
        numbers = self.numbers()
        problems = []
        for key in self.provenance:
            if key not in numbers:
                known = ", ".join(numbers) or "none"
                problems.append(
                    (
                        f"provenance.{json.dumps(key)}",
                        f"names no number of this protocol; the numbers are: {known}",
                    )
                )
        if problems:
            raise _fail("; ".join(f"{f}: {m}" for f, m in problems), problems=problems)
        return self

    def numbers(self) -> dict[str, str]:
        """Every number the file gives, by provenance path, as written back (``"25 min"``).

        Paths: ``schedule.min_interval``, ``schedule.max_sessions_per_week``,
        ``schedule.course``, and per phase ``phases.NAME.duration`` (``fluence``,
        ``max_duration``, ``ramp``, ``emit.655nm``, ``pulse.frequency``, ``pulse.duty``).
        """
        out: dict[str, str] = {}
        if self.schedule is not None:
            dumped = self.schedule.model_dump(mode="json", exclude_none=True, exclude_unset=True)
            for key, value in dumped.items():
                if not isinstance(value, list | dict):
                    out[f"schedule.{key}"] = str(value)
            out.update(self.schedule.stage_numbers())
        for phase, dumped in zip(
            self.phases,
            [p.model_dump(mode="json", exclude_none=True, exclude_unset=True) for p in self.phases],
            strict=True,
        ):
            base = f"phases.{phase.name}"
            for key in ("duration", "fluence", "max_duration", "ramp"):
                if key in dumped:
                    out[f"{base}.{key}"] = dumped[key]
            for key, value in dumped["emit"].items():
                out[f"{base}.emit.{key}"] = value
            for key, value in (dumped.get("pulse") or {}).items():
                out[f"{base}.pulse.{key}"] = value
        return out

    def missing_provenance(self) -> list[str]:
        """Paths of the numbers that have no provenance entry."""
        return [key for key in self.numbers() if key not in self.provenance]

    # --- derived values ------------------------------------------------------------
    @property
    def wavelengths(self) -> tuple[int, ...]:
        """Wavelengths named in the emit tables (channel keys need a device to resolve)."""
        return tuple(sorted({wl for p in self.phases for wl in p.wavelength_emits()}))

    @property
    def expected_duration_s(self) -> float:
        """Seconds the session takes at full output: the phases' expected durations added up."""
        return sum(p.expected_duration_s for p in self.phases)

    @property
    def max_duration_s(self) -> float:
        """The most the session may run, in seconds: the phases' maxima added up."""
        return sum(p.max_duration_s for p in self.phases)

    def fluence_by_wavelength(self) -> dict[int, float]:
        """J/cm² per wavelength from the wavelength-keyed emits, without a device.

        Every channel of a wavelength gets the same irradiance, so each receives the same
        fluence; wavelengths are never added together.
        """
        out: dict[int, float] = {}
        for phase in self.phases:
            for wl, irr in phase.wavelength_emits().items():
                out[wl] = out.get(wl, 0.0) + phase.fluence_at(irr)
        return dict(sorted(out.items()))


# --- pydantic errors → FieldProblems -------------------------------------------------


def _path(loc: Iterable[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            text = str(part)
            if not re.fullmatch(r"[A-Za-z0-9_-]+", text):
                text = json.dumps(text, ensure_ascii=False)
            out += f".{text}" if out else text
    return out


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model class that holds the keys at ``loc`` (to list the allowed keys)."""
    import typing

    model: Any = Protocol
    for part in loc:
        if isinstance(part, int):
            continue
        fields = getattr(model, "model_fields", None)
        field = fields.get(part) if isinstance(fields, dict) else None
        if field is None:
            return None
        model = None
        stack = [field.annotation]
        while stack:
            tp = stack.pop()
            if isinstance(tp, type) and issubclass(tp, BaseModel):
                model = tp
                break
            stack.extend(typing.get_args(tp))
        if model is None:
            return None
    return model if isinstance(model, type) else None


_TYPE_WORDS = {
    "string_type": "text in quotes",
    "int_type": "a whole number",
    "bool_type": "true or false",
    "list_type": "a list",
    "dict_type": "a table",
    "model_type": "a table",
    "model_attributes_type": "a table",
}


def _problem(error: Any) -> list[FieldProblem]:
    loc = tuple(error["loc"])
    kind = error["type"]
    ctx = error.get("ctx") or {}
    found = error.get("input")
    if loc and loc[-1] == "[key]":  # a bad key of a table: name the key itself
        loc = loc[:-1]
    if kind == "lllt":
        if "problems" in ctx:
            prefix = _path(loc)
            return [FieldProblem(f"{prefix}.{f}" if prefix else f, m) for f, m in ctx["problems"]]
        if "field" in ctx:
            loc = (*loc, ctx["field"])
        return [FieldProblem(_path(loc), ctx["message"])]
    # a few problems whose paths are relative to the protocol: see _unique_phase_names
    if kind == "missing":
        message = "missing; this key is required"
    elif kind == "extra_forbidden":
        model = _model_at(loc[:-1])
        allowed = ", ".join(model.model_fields) if model else ""
        message = "unknown key" + (f"; expected one of: {allowed}" if allowed else "")
    elif kind in _TYPE_WORDS:
        message = f"found {_describe(found)}; expected {_TYPE_WORDS[kind]}"
    elif kind == "string_too_short":
        message = "is empty; expected some text"
    elif kind == "string_too_long":
        message = f"is too long; expected at most {ctx.get('max_length')} characters"
    elif kind == "too_short":
        n = ctx.get("min_length")
        message = f"is empty; expected at least {n} {'entry' if n == 1 else 'entries'}"
    elif kind == "too_long":
        message = f"has {ctx.get('actual_length')}; expected at most {ctx.get('max_length')}"
    elif kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        message = f"found {_describe(found)}; expected {error['msg'].lower()}"
    else:
        message = f"found {_describe(found)}; {error['msg']}"
    return [FieldProblem(_path(loc), message)]


def problems_from(err: ValidationError) -> list[FieldProblem]:
    """Every problem of a pydantic ValidationError as FieldProblems with file paths."""
    out: list[FieldProblem] = []
    for error in err.errors(include_url=False):
        for problem in _problem(error):
            if problem not in out:
                out.append(problem)
    return out


# --- loading -----------------------------------------------------------------------------


def protocol_from_dict(data: Any, *, source: str = "<data>") -> Protocol:
    """Validate parsed data (a dict from TOML/YAML/JSON or built in code) as a protocol."""
    if not isinstance(data, dict):
        raise FileFormatError(
            source, [FieldProblem("", f"found {_describe(data)}; expected a table of keys")]
        )
    problems = []
    if "format" not in data:
        problems.append(FieldProblem("format", f'missing; expected format = "{FORMAT}"'))
    try:
        protocol = Protocol.model_validate(data)
    except ValidationError as err:
        problems.extend(problems_from(err))
    if problems:
        raise FileFormatError(source, problems)
    return protocol


def _one(source: str, message: str) -> FileFormatError:
    return FileFormatError(source, [FieldProblem("", message)])


def _too_large(source: str, size: int) -> FileFormatError:
    return _one(
        source,
        f"the file is {size / 1e6:.1f} MB; protocol files are at most "
        f"{MAX_FILE_BYTES / 1e6:g} MB (is this the right file?)",
    )


def _decode(data: bytes, source: str) -> str:
    if len(data) > MAX_FILE_BYTES:
        raise _too_large(source, len(data))
    if b"\x00" in data:
        raise _one(source, "binary data, not a text file; expected a protocol file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        bad = data[err.start : err.start + 1].hex()
        raise _one(
            source, f"not UTF-8 text (byte 0x{bad} at offset {err.start}); save it as UTF-8"
        ) from None


def _yaml_loader() -> type:
    import yaml

    class Loader(yaml.SafeLoader):
        """safe_load without aliases (a YAML bomb) and without duplicate keys."""

        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                message = "aliases (*name) are not allowed in protocol files"
                raise yaml.composer.ComposerError(None, None, message, event.start_mark)
            return super().compose_node(parent, index)

        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            keys = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                if isinstance(key, str | int | float | bool) and key in keys:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r}", key_node.start_mark
                    )
                keys.add(key) if isinstance(key, str | int | float | bool) else None
            return super().construct_mapping(node, deep=deep)

    return Loader


def _parse(text: str, fmt: str, source: str) -> Any:
    if fmt == "toml":
        import tomllib

        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise _one(source, f"not valid TOML: {err}") from None
    if fmt == "yaml":
        import yaml

        try:
            return yaml.load(text, Loader=_yaml_loader())  # a SafeLoader subclass
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            what = getattr(err, "problem", None) or str(err).splitlines()[0]
            raise _one(source, f"not valid YAML: {what}{where}") from None
    if fmt == "json":

        def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for key, value in pairs:
                if key in out:
                    raise ValueError(f"duplicate key {key!r}")
                out[key] = value
            return out

        try:
            return json.loads(text, object_pairs_hook=no_duplicates)
        except json.JSONDecodeError as err:
            raise _one(
                source, f"not valid JSON: {err.msg} at line {err.lineno}, column {err.colno}"
            ) from None
        except ValueError as err:
            raise _one(source, f"not valid JSON: {err}") from None
    raise InvalidInput(f"unknown protocol format {fmt!r}; expected toml, yaml or json")


def loads_protocol(text: str | bytes, *, fmt: str = "toml", source: str = "<string>") -> Protocol:
    """Parse and validate protocol text; ``fmt`` is ``toml``, ``yaml`` or ``json``."""
    if isinstance(text, bytes):
        text = _decode(text, source)
    elif len(text) > MAX_FILE_BYTES:
        raise _too_large(source, len(text.encode("utf-8", "replace")))
    if not text.strip():
        raise _one(source, "the file is empty; expected a protocol (see docs/protocol-format.md)")
    try:
        data = _parse(text, fmt, source)
    except RecursionError:
        raise _one(source, f"nested too deeply to be a protocol ({fmt})") from None
    if not isinstance(data, dict):
        raise _one(source, f"found {_describe(data)} at the top level; expected a table of keys")
    try:
        return protocol_from_dict(data, source=source)
    except RecursionError:
        raise _one(source, "nested too deeply to be a protocol") from None


def load_protocol(path: str | os.PathLike[str]) -> Protocol:
    """Load a protocol file (.toml, .yaml, .yml or .json); the one loader of lllt.

    Raises FileFormatError naming the file and every problem found.
    """
    source = os.fspath(path)
    suffix = Path(source).suffix.lower()
    fmt = EXTENSIONS.get(suffix)
    if fmt is None:
        raise _one(
            source,
            f"unknown file type {suffix or '(no extension)'!r}; expected .toml, .yaml, .yml "
            "or .json",
        )
    try:
        with open(source, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > MAX_FILE_BYTES:
                raise _too_large(source, size)
            data = f.read(MAX_FILE_BYTES + 1)  # a pipe or device has no size: read a bound
    except FileNotFoundError:
        raise _one(source, "no such file") from None
    except IsADirectoryError:
        raise _one(source, "is a directory; expected a protocol file") from None
    except PermissionError:
        raise _one(source, "cannot be read: permission denied") from None
    except OSError as err:
        raise _one(source, f"cannot be read: {err.strerror or err}") from None
    return loads_protocol(data, fmt=fmt, source=source)


# --- shipped protocols ----------------------------------------------------------------


def shipped_dir() -> Path:
    """Where the shipped protocols are (package data of lllt: ``lllt/protocols/``)."""
    from importlib import resources

    return Path(str(resources.files("lllt").joinpath("protocols")))


def shipped_protocols() -> list[Path]:
    """Paths of the shipped protocol files, sorted by name."""
    return sorted(shipped_dir().glob("*.toml"))


def resolve(name_or_path: str | os.PathLike[str]) -> Path:
    """A protocol file path, or the shipped protocol whose id is ``name_or_path``."""
    path = Path(name_or_path)
    if path.exists() or path.suffix:
        return path
    shipped = shipped_dir() / f"{name_or_path}.toml"
    return shipped if shipped.is_file() else path


# --- writing -----------------------------------------------------------------------------


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, str):
        # JSON escapes are valid TOML escapes; TOML also forbids a raw DEL
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        items = ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items())
        return "{ " + items + " }"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key, ensure_ascii=False)


def dumps_protocol(protocol: Protocol, fmt: str = "toml") -> str:
    """The protocol as file text; :func:`loads_protocol` reads it back to an equal model."""
    data = protocol.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
    data = {"format": FORMAT, **{k: v for k, v in data.items() if k != "format"}}
    data["phases"] = [
        {"name": p.name, **{k: v for k, v in d.items() if k != "name"}}
        for p, d in zip(protocol.phases, data["phases"], strict=True)
    ]
    if fmt == "json":
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    if fmt == "yaml":
        import yaml

        text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
        if yaml.safe_load(text) != data:  # e.g. U+0085, which YAML reads as a line break
            text = yaml.safe_dump(data, sort_keys=False, allow_unicode=False)
        return text
    if fmt != "toml":
        raise InvalidInput(f"unknown protocol format {fmt!r}; expected toml, yaml or json")
    lines = []
    for key, value in data.items():
        if not isinstance(value, dict) and key != "phases":
            lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
    for key, value in data.items():
        if isinstance(value, dict):
            lines += ["", f"[{key}]"]
            lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()]
    for phase in data["phases"]:
        lines += ["", "[[phases]]"]
        lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in phase.items()]
    return "\n".join(lines) + "\n"


# --- JSON Schema -------------------------------------------------------------------------


def _strip_null(node: Any) -> Any:
    """Optional keys are absent in files, never null: drop ``{"type": "null"}`` branches."""
    if isinstance(node, dict):
        any_of = node.get("anyOf")
        if isinstance(any_of, list):
            rest = [branch for branch in any_of if branch != {"type": "null"}]
            if len(rest) == 1 and len(rest) < len(any_of):
                merged = {k: v for k, v in node.items() if k not in ("anyOf", "default")}
                return _strip_null({**rest[0], **merged})
        return {k: _strip_null(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_strip_null(v) for v in node]
    return node


@cache
def _json_schema_text() -> str:
    schema = _strip_null(Protocol.model_json_schema(mode="validation"))
    schema["properties"]["format"] = {"const": FORMAT, "description": "file format and version"}
    schema["required"] = ["format", *schema.get("required", [])]
    out = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://lllt.example/schema/lllt-protocol-1.json",
        **schema,
        "title": "lllt treatment protocol (lllt-protocol/1)",
        "description": "See docs/protocol-format.md. Quantities are strings with units.",
    }
    return json.dumps(out)


def json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of ``lllt-protocol/1`` files, for editors."""
    result: dict[str, Any] = json.loads(_json_schema_text())
    return result


# --- analysis ----------------------------------------------------------------------------


def _wl_dict(values: dict[int, float]) -> dict[str, float]:
    return {str(k): v for k, v in sorted(values.items())}


def describe(protocol: Protocol) -> dict[str, Any]:
    """What the protocol asks for without a device, as plain data.

    Durations and the fluence of wavelength-keyed emits; :func:`lllt.plan.analyze` adds
    what a given device would run (the body of ``lllt protocol check``). Keys: ``id``,
    ``name``, ``valid``, ``errors`` ([{field, message}]), ``research``, ``references``,
    ``total_duration_s``, ``max_duration_s``, ``fluence_j_cm2`` (nm as text → J/cm²),
    ``phases`` (each ``name``, ``kind``, ``duration_s``, ``max_duration_s``, ``ramp_s``,
    ``pulse``, ``emit``, ``zones``, ``fluence_j_cm2``), ``schedule``, ``device``.
    """
    phases: list[dict[str, Any]] = []
    for phase in protocol.phases:
        phases.append(
            {
                "name": phase.name,
                "kind": "fluence" if phase.is_fluence else "duration",
                "duration_s": phase.expected_duration_s,
                "max_duration_s": phase.max_duration_s,
                "ramp_s": phase.ramp,
                "pulse": (
                    {"frequency_hz": phase.pulse.frequency, "duty_pct": phase.pulse.duty}
                    if phase.pulse
                    else None
                ),
                "emit": dict(phase.emit),
                "zones": list(phase.zones),
                "fluence_target_j_cm2": phase.fluence,
                "fluence_j_cm2": _wl_dict(
                    {wl: phase.fluence_at(irr) for wl, irr in phase.wavelength_emits().items()}
                ),
                "channel_fluence_j_cm2": {
                    f"ch{ch}": phase.fluence_at(irr) for ch, irr in phase.channel_emits().items()
                },
            }
        )
    schedule = protocol.schedule
    out: dict[str, Any] = {
        "id": protocol.id,
        "name": protocol.name,
        "format": protocol.format,
        "valid": True,
        "errors": [],
        "research": protocol.research,
        "references": list(protocol.references),
        "notes": protocol.notes,
        "profile": protocol.meta.profile if protocol.meta else None,
        "total_duration_s": protocol.expected_duration_s,
        "max_duration_s": protocol.max_duration_s,
        "fluence_j_cm2": _wl_dict(protocol.fluence_by_wavelength()),
        "phases": phases,
        "schedule": (
            {
                "min_interval_s": schedule.min_interval,
                "max_sessions_per_week": schedule.max_sessions_per_week,
                "course_s": schedule.course,
            }
            if schedule
            else None
        ),
        "device": None,
    }
    return out


def invalid_result(source: str, problems: list[FieldProblem], data_id: Any = None) -> dict:
    """The analysis entry of a file that did not load."""
    return {
        "file": source,
        "id": data_id if isinstance(data_id, str) else None,
        "valid": False,
        "errors": [p.to_dict() for p in problems],
        "total_duration_s": None,
        "max_duration_s": None,
        "fluence_j_cm2": {},
        "phases": [],
    }


def peek_id(source: str) -> Any:
    """The id of a file that failed validation, if it can be read at all (for --json)."""
    try:
        size = os.stat(source).st_size
        if size > MAX_FILE_BYTES:
            return None
        fmt = EXTENSIONS.get(Path(source).suffix.lower(), "")
        data = _parse(Path(source).read_text(encoding="utf-8-sig"), fmt, source)
    except Exception:  # a file that cannot be read has no id; the error is reported already
        return None
    return data.get("id") if isinstance(data, dict) else None


__all__ = [
    "DEFAULT_MAX_DURATION_FACTOR",
    "FORMAT",
    "MAX_FILE_BYTES",
    "PROVENANCE_KINDS",
    "Meta",
    "Phase",
    "Protocol",
    "Provenance",
    "Pulse",
    "Schedule",
    "Stage",
    "describe",
    "dumps_protocol",
    "invalid_result",
    "json_schema",
    "load_protocol",
    "loads_protocol",
    "parse_emit_key",
    "peek_id",
    "problems_from",
    "protocol_from_dict",
    "resolve",
    "shipped_dir",
    "shipped_protocols",
]

"""Host-side safety: preflight (layer 1) and the runtime monitor (layer 2), docs/safety.md.

- :mod:`lllt.safety.limits`: the default limits of docs/clinical-basis.md, the limits file that may
  only tighten them, the temperature thresholds and the derate policy;
- :mod:`lllt.safety.history`: the interface the session log offers the checks;
- :mod:`lllt.safety.thermal`: the thermal prediction from the device's zone model;
- :mod:`lllt.safety.preflight`: the constraint pipeline run before anything is sent;
- :mod:`lllt.safety.monitor`: the check of every telemetry frame and event while a
  session runs.

Pure logic: no device I/O, no clock reads, no printing. ``docs/safety.md`` maps each
hazard to its controls and to the tests that show them working.
"""

from lllt.safety.history import History, MemoryHistory, PastSession, StoreHistory
from lllt.safety.limits import (
    DEFAULT_DERATE,
    DEFAULT_LIMITS,
    DeratePolicy,
    Limits,
    Thresholds,
    load_limits,
    parse_limits,
    temperature_thresholds,
)
from lllt.safety.monitor import CONTINUE, ActionKind, MonitorAction, RuntimeMonitor
from lllt.safety.preflight import (
    NextSession,
    PreflightResult,
    Reason,
    ScheduleRules,
    analyze,
    check,
    next_session,
    next_session_allowed_at,
)
from lllt.safety.thermal import ThermalPrediction, predict

__all__ = [
    "CONTINUE",
    "DEFAULT_DERATE",
    "DEFAULT_LIMITS",
    "ActionKind",
    "DeratePolicy",
    "History",
    "Limits",
    "MemoryHistory",
    "MonitorAction",
    "NextSession",
    "PastSession",
    "PreflightResult",
    "Reason",
    "RuntimeMonitor",
    "ScheduleRules",
    "StoreHistory",
    "ThermalPrediction",
    "Thresholds",
    "analyze",
    "check",
    "load_limits",
    "next_session",
    "next_session_allowed_at",
    "parse_limits",
    "predict",
    "temperature_thresholds",
]

"""lllt: host stack for photobiomodulation (low-level light therapy) caps.

The Python API (each name is imported on first use, so ``import lllt`` stays cheap)::

    from lllt import Cap, SyncCap, run_protocol, load_protocol, PreflightRefused

- :func:`run_protocol` runs one session (a shipped protocol id or a file) and returns a
  :class:`SessionOutcome`; a refusal raises :class:`PreflightRefused` with ``.reasons``;
- :func:`load_protocol` loads and validates a protocol file or a shipped id;
- :class:`Cap` is the async device client, :class:`SyncCap` the blocking one for scripts;
- :class:`RunOptions`, :class:`Limits` and :func:`shipped_protocols` for the rest;
- every error is an :class:`LlltError` with an ``exit_code`` and ``advice``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "run_protocol": "lllt.api",
    "load_protocol": "lllt.api",
    "Cap": "lllt.device",
    "SyncCap": "lllt.device",
    "RunOptions": "lllt.session",
    "SessionOutcome": "lllt.session",
    "Observer": "lllt.session",
    "Protocol": "lllt.protocol",
    "shipped_protocols": "lllt.protocol",
    "Limits": "lllt.safety",
    "load_limits": "lllt.safety",
    "Reason": "lllt.safety",
    "LlltError": "lllt.errors",
    "InvalidInput": "lllt.errors",
    "URLError": "lllt.errors",
    "FileFormatError": "lllt.errors",
    "PlanError": "lllt.errors",
    "SafetyError": "lllt.errors",
    "PreflightRefused": "lllt.errors",
    "SafetyAbort": "lllt.errors",
    "DeviceFault": "lllt.errors",
    "DeviceError": "lllt.errors",
    "ConnectionFailed": "lllt.errors",
    "LinkLost": "lllt.errors",
    "DeviceTimeout": "lllt.errors",
    "StoreError": "lllt.errors",
    "NotASessionLog": "lllt.errors",
    "UserAborted": "lllt.errors",
}

__all__ = [
    "Cap",
    "ConnectionFailed",
    "DeviceError",
    "DeviceFault",
    "DeviceTimeout",
    "FileFormatError",
    "InvalidInput",
    "Limits",
    "LinkLost",
    "LlltError",
    "NotASessionLog",
    "Observer",
    "PlanError",
    "PreflightRefused",
    "Protocol",
    "Reason",
    "RunOptions",
    "SafetyAbort",
    "SafetyError",
    "SessionOutcome",
    "StoreError",
    "SyncCap",
    "URLError",
    "UserAborted",
    "__version__",
    "load_limits",
    "load_protocol",
    "run_protocol",
    "shipped_protocols",
]

if TYPE_CHECKING:
    from lllt.api import load_protocol, run_protocol
    from lllt.device import Cap, SyncCap
    from lllt.errors import (
        ConnectionFailed,
        DeviceError,
        DeviceFault,
        DeviceTimeout,
        FileFormatError,
        InvalidInput,
        LinkLost,
        LlltError,
        NotASessionLog,
        PlanError,
        PreflightRefused,
        SafetyAbort,
        SafetyError,
        StoreError,
        URLError,
        UserAborted,
    )
    from lllt.protocol import Protocol, shipped_protocols
    from lllt.safety import Limits, Reason, load_limits
    from lllt.session import Observer, RunOptions, SessionOutcome


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'lllt' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))

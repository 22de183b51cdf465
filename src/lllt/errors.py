"""The one exception tree of lllt.

Every failure a person or a script can meet is a ``LlltError``. Leaves carry the
numbers that explain them (``limit``, ``observed``, ``channel``) and end with one line
of advice; the CLI prints ``str(err)`` and exits with ``err.exit_code``::

    LlltError                          exit
    ├── InvalidInput (ValueError)         2   something a person typed or wrote is wrong
    │   ├── URLError                          malformed device URL, unknown scheme or option
    │   ├── FileFormatError                   a protocol, limits or profile file is invalid
    │   │                                     (carries every FieldProblem found)
    │   └── PlanError                         the device cannot run this protocol
    ├── SafetyError                       1   refused or stopped by a safety limit
    │   ├── PreflightRefused                  preflight refused the session (reasons)
    │   ├── SafetyAbort                       the runtime monitor stopped a session
    │   └── DeviceFault                       a device interlock or fault stopped it
    ├── DeviceError                       3   the device or the link to it failed
    │   ├── ConnectionFailed                  nothing answered at that address
    │   ├── LinkLost                          the link dropped mid-conversation
    │   ├── DeviceTimeout (TimeoutError)      no reply within the deadline
    │   ├── VersionMismatch                   protocol major versions differ
    │   ├── MalformedReply                    the device sent something undecodable
    │   ├── Rejected                          the device answered NACK (code, detail)
    │   │   ├── AuthError                     the device wants proof of the key
    │   │   └── RefusedByDevice           1   a NACK for a safety reason (hard limit, too hot,
    │   │                                     off the head, fault latched)
    │   └── NotConnected                      used after close
    └── StoreError                        3   the session log cannot be read or written
        └── NotASessionLog                2   the file given as the log is something else

``UserAborted`` (exit 130) is raised when the user stopped a session and the emitters
were confirmed off; it is a ``LlltError`` so that scripts can catch everything at once.

Driver errors (``OSError``, ``serial.SerialException``, ``BleakError``) are converted at
the transport boundary with ``raise ... from err``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


class LlltError(Exception):
    """Root of every error lllt raises on purpose.

    Keyword ``fields`` become attributes of the error and entries of :meth:`to_dict`;
    each class that carries some declares them below (with their types), so that code
    reading ``err.reasons`` or ``err.code`` is checked like any other attribute access.
    """

    exit_code = 1
    default_advice = ""

    def __init__(self, message: str, *, advice: str | None = None, **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        self.advice = self.default_advice if advice is None else advice
        self.fields: dict[str, Any] = fields
        for key, value in fields.items():
            setattr(self, key, value)

    def __str__(self) -> str:
        if self.advice:
            return f"{self.message}\n{self.advice}"
        return self.message

    def to_dict(self) -> dict[str, Any]:
        """The error as JSON: ``error`` (the class name), ``message``, ``advice`` when there is
        some, and every field. Numbers, text, booleans and None stay as they are; a list or
        tuple becomes a list of its items' ``to_dict()`` (or ``str``); anything else ``str``."""
        out: dict[str, Any] = {"error": type(self).__name__, "message": self.message}
        if self.advice:
            out["advice"] = self.advice
        for key, value in self.fields.items():
            if isinstance(value, int | float | str | bool) or value is None:
                out[key] = value
            elif isinstance(value, list | tuple):
                out[key] = [v.to_dict() if hasattr(v, "to_dict") else str(v) for v in value]
            else:
                out[key] = str(value)
        return out


# --- invalid input (exit 2) ------------------------------------------------------------


class InvalidInput(LlltError, ValueError):
    """Something a person typed or wrote is wrong (exit 2); also a :class:`ValueError`."""

    exit_code = 2


class URLError(InvalidInput):
    """A device URL is malformed, or names an unknown scheme or option."""

    default_advice = (
        "Expected a device URL such as sim://reference-cap, serial:///dev/ttyACM0 or "
        "socket://127.0.0.1:7878 (see `lllt devices`)."
    )


@dataclass(frozen=True)
class FieldProblem:
    """One thing wrong in a file: where (``phases[1].emit.655nm``) and what."""

    field: str
    message: str

    def to_dict(self) -> dict[str, str]:
        """``{"field": ..., "message": ...}``, for JSON output."""
        return {"field": self.field, "message": self.message}

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class FileFormatError(InvalidInput):
    """A data file is invalid. ``problems`` lists every problem found, not just the first."""

    def __init__(
        self,
        path: str,
        problems: list[FieldProblem],
        *,
        advice: str | None = None,
    ) -> None:
        self.path = path
        self.problems = list(problems)
        if len(self.problems) == 1:
            message = f"{path}: {self.problems[0]}"
        else:
            lines = "\n".join(f"  {p}" for p in self.problems)
            message = f"{path}: {len(self.problems)} problems\n{lines}"
        super().__init__(message, advice=advice, path=path, problems=self.problems)


class PlanError(InvalidInput):
    """The device cannot run this protocol (exit 2): it lacks a zone, channel or wavelength
    the protocol names, or the protocol asks for more than its pulse range or hard limits
    allow. ``problems`` lists every reason as a :class:`FieldProblem`."""

    problems: Sequence[FieldProblem] = ()  # everything the device cannot run, not just the first
    protocol: str | None = None  # the protocol's id, when known

    default_advice = "Check the protocol against `lllt info --device URL` for this device."


# --- safety (exit 1) ------------------------------------------------------------------


class SafetyError(LlltError):
    """Refused or stopped by a safety limit (exit 1)."""

    exit_code = 1


class PreflightRefused(SafetyError):
    """Preflight refused the session; ``reasons`` are its ``lllt.safety.Reason`` objects."""

    reasons: list[Any]
    next_allowed_at: float | None = None  # epoch seconds, when refused for timing


class SafetyAbort(SafetyError):
    """The host's runtime monitor stopped a running session. ``rule`` names the rule that
    fired; ``limit``, ``observed``, ``unit``, ``channel`` (id) and ``zone`` (id) say what it saw."""


class DeviceFault(SafetyError):
    """The device stopped the session itself (an interlock, a fault, a reboot, an outcome other
    than completed), or will not start one because a fault is latched."""


# --- device and link (exit 3) ---------------------------------------------------------


class DeviceError(LlltError):
    """The device, or the link to it, failed (exit 3)."""

    exit_code = 3


class ConnectionFailed(DeviceError):
    """Nothing answered at the device's address: a port that will not open, a refused
    connection, no Bluetooth adapter."""

    default_advice = "Check the cable or address, and that the cap is switched on."


class LinkLost(DeviceError):
    """The link to the device dropped, or went silent, mid-conversation; requests waiting for
    a reply and open subscriptions end with it."""

    default_advice = "Reconnect the cap; the session record is kept and will be reconciled."


class DeviceTimeout(DeviceError, TimeoutError):
    """No reply within the deadline, retries included; also a :class:`TimeoutError`.
    ``bytes_dropped`` counts the garbage that came back meanwhile, when it was counted."""

    bytes_dropped: int = 0  # garbage on the link while waiting, when counted

    default_advice = "The device did not answer in time; check the link and try again."


class VersionMismatch(DeviceError):
    """The cap speaks another major version of the wire protocol. ``device_version`` and
    ``host_version`` are ``"major.minor"``; the advice says which side to upgrade."""

    device_version: str = ""  # "major.minor" the cap speaks
    host_version: str = ""  # "major.minor" this lllt speaks


class MalformedReply(DeviceError):
    """The device answered a request with a reply of the wrong type: it does not follow the
    protocol. (Frames that do not decode are counted in ``Cap.link_stats()`` and dropped.)"""


class Rejected(DeviceError):
    """The device answered NACK. ``code`` is a :class:`lllt.wire.NackCode`."""

    code: int | None = None


class AuthError(Rejected):
    """The device wants proof of its key: none is known for it, or it refused the one used
    (NACK ``AUTH_REQUIRED`` or ``AUTH_FAILED``)."""

    default_advice = (
        "Give the device key with --key or LLLT_KEY, or add it to the key file "
        "(see docs/wire-protocol.md, Authentication); a development board that takes the "
        "published development key needs --dev-key."
    )


class RefusedByDevice(Rejected):
    """The device refused for a safety reason of its own: a refusal, not a link problem."""

    exit_code = 1


class NotConnected(DeviceError):
    """The device was used before its handshake, or after its link was closed."""

    default_advice = "Open the device with `async with Cap.connect(url)` before using it."


class StoreError(LlltError):
    """The session log cannot be read or written (exit 3); ``path`` is its file. For a log
    newer than this lllt, ``limit`` and ``observed`` are the schema versions."""

    path: str | None = None  # the session log's file
    limit: float | None = None
    observed: float | None = None

    exit_code = 3


class NotASessionLog(StoreError, InvalidInput):
    """The file named as the session log is not one (another SQLite file, a text file):
    a mistyped ``--db``, so invalid input rather than a broken log."""

    exit_code = 2


class UserAborted(LlltError):
    """The user stopped the session; the emitters were confirmed off."""

    exit_code = 130

"""The Python API in one place: what ``from lllt import ...`` gives (see the README).

::

    import lllt

    try:
        outcome = lllt.run_protocol("aga-red-eod-25min", "sim://reference-cap?speed=max",
                                    db=":memory:")
    except lllt.PreflightRefused as refused:
        for reason in refused.reasons:            # lllt.safety.Reason objects
            print(reason.constraint, reason.message)
        print(refused.next_allowed_at)            # epoch seconds, or None
    else:
        print(outcome.status, outcome.delivered_fluence)

``run_protocol`` and ``load_protocol`` take a protocol file path or the id of a shipped
protocol (``lllt protocol list``). Everything here is imported on first use, so that
``import lllt`` stays cheap.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lllt.protocol import Protocol
    from lllt.safety import Limits
    from lllt.session import Observer, RunOptions, SessionOutcome


def load_protocol(protocol: str | os.PathLike[str]) -> Protocol:
    """Load a protocol file, or a shipped protocol by its id; raises FileFormatError."""
    from lllt.protocol import load_protocol as load
    from lllt.protocol import resolve

    return load(resolve(protocol))


def run_protocol(
    protocol: str | os.PathLike[str] | Protocol,
    device: str,
    *,
    db: str | os.PathLike[str] | None = None,
    research: bool = False,
    limits: Limits | str | os.PathLike[str] | None = None,
    options: RunOptions | None = None,
    observer: Observer | None = None,
    timeout: float | None = None,
) -> SessionOutcome:
    """Run one session, with every safety layer, and return what was delivered (blocking).

    ``protocol``: a file path, a shipped protocol id or a loaded :class:`Protocol`.
    ``device``: a device URL (``sim://reference-cap?speed=max``, ``serial:///dev/ttyACM0``).
    ``db``: the session log; None is the person's own log (``$LLLT_DB`` or the user data
    folder), ``":memory:"`` keeps nothing. ``research``: allow a research-only protocol.
    ``limits``: a :class:`Limits` or a limits file that lowers the defaults. ``options``:
    a full :class:`RunOptions` (its ``research_ok`` and ``limits`` are overridden only
    when given here). ``timeout``: host seconds before the session is stopped.

    Raises :class:`PreflightRefused` (``.reasons``, ``.next_allowed_at``) when preflight
    refuses, and another :class:`LlltError` for bad input or a device that cannot be
    reached; once the session is logged the outcome is returned, and
    ``outcome.raise_for_status()`` raises its error, if any.
    """
    from dataclasses import replace

    from lllt.protocol import Protocol as ProtocolModel
    from lllt.protocol import resolve
    from lllt.session import RunOptions
    from lllt.session import run_protocol as run

    opts = options or RunOptions()
    if research:
        opts = replace(opts, research_ok=True)
    if limits is not None:
        if not hasattr(limits, "to_dict"):
            from lllt.safety import load_limits

            limits = load_limits(os.fspath(limits))  # type: ignore[arg-type]
        opts = replace(opts, limits=limits)  # type: ignore[arg-type]
    target: Any = protocol if isinstance(protocol, ProtocolModel) else resolve(protocol)
    return run(
        target,
        device,
        db=None if db is None else (":memory:" if str(db) == ":memory:" else Path(db)),
        options=opts,
        observer=observer,
        timeout=timeout,
    )

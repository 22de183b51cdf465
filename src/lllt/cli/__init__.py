"""The ``lllt`` command line.

Each group of commands lives in its own module and registers itself on ``app``; heavy
imports (pydantic, pint, pyserial, the simulator) happen inside command bodies so that
``lllt --help`` stays fast. Errors become one clear message and the exit code of
DESIGN §12: 0 done, 1 refused or stopped by a safety limit or device fault, 2 invalid
input, 3 device or link problem, 130 stopped by the user with the emitters confirmed off.
"""

from __future__ import annotations

import sys

from lllt.cli._app import app

# command modules register themselves on import
from lllt.cli import device_cmds as _device_cmds  # noqa: F401  isort: skip
from lllt.cli import sim_cmds as _sim_cmds  # noqa: F401  isort: skip
from lllt.cli import protocol_cmds as _protocol_cmds  # noqa: F401  isort: skip
from lllt.cli import run_cmds as _run_cmds  # noqa: F401  isort: skip
from lllt.cli import session_cmds as _session_cmds  # noqa: F401  isort: skip


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point; returns the process exit code."""
    from lllt.cli._app import run_app

    code = run_app(app, argv)
    sys.exit(code)


__all__ = ["app", "main"]

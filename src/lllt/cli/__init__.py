"""The ``lllt`` command line.

Each group of commands lives in its own module and registers itself on ``app``; heavy
imports (pydantic, pint, pyserial, the simulator) happen inside command bodies so that
``lllt --help`` stays fast. Errors become one clear message and the exit code of their kind.
Exit codes: 0 done, 1 refused or stopped by a safety limit or device fault, 2 invalid
input, 3 device or link problem, 130 stopped by the user with the emitters confirmed off.
"""

from __future__ import annotations

import os
import sys

from lllt.cli._app import app

# command modules register themselves on import
from lllt.cli import device_cmds as _device_cmds  # noqa: F401  isort: skip
from lllt.cli import sim_cmds as _sim_cmds  # noqa: F401  isort: skip
from lllt.cli import protocol_cmds as _protocol_cmds  # noqa: F401  isort: skip
from lllt.cli import protocol_new as _protocol_new  # noqa: F401  isort: skip
from lllt.cli import run_cmds as _run_cmds  # noqa: F401  isort: skip
from lllt.cli import session_cmds as _session_cmds  # noqa: F401  isort: skip
from lllt.cli import link_cmds as _link_cmds  # noqa: F401  isort: skip
from lllt.cli import course_cmds as _course_cmds  # noqa: F401  isort: skip
from lllt.cli import key_cmds as _key_cmds  # noqa: F401  isort: skip
from lllt.cli import explore_cmds as _explore_cmds  # noqa: F401  isort: skip


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point; returns the process exit code."""
    import signal

    from lllt.cli._app import run_app

    # A non-interactive shell starts background jobs with SIGINT ignored, and a supervisor
    # may do the same; an ignored SIGINT would make `kill -INT` (or Ctrl-C through such a
    # wrapper) do nothing while a cap emits. lllt treats SIGINT as a stop request whatever
    # it inherited: the prompt ends, and a session stops through its one stop path.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    # lllt's models use no pydantic plugin; without this, the first model built scans the
    # metadata of every installed package for one (a few ms on each command that reads a
    # protocol). Set the variable to "" to have plugins loaded anyway.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    code = run_app(app, argv)
    sys.exit(code)


__all__ = ["app", "main"]

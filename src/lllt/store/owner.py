"""Which host process owns a running session, and whether it is still alive."""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _process_start(pid: int) -> str | None:
    """Start time of a process in clock ticks since boot (Linux), None if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name may hold spaces and parentheses: fields start after the last ')'
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None


def _token_for(pid: int) -> str | None:
    start = _process_start(pid)
    if start is None:
        return None
    return f"{_boot_id()}:{pid}:{start}"


# A token that names this process uniquely on this host: pid alone is reused, pid plus its
# start time and the boot id is not. Without /proc a random token still tells processes
# apart; liveness then falls back to the pid and the heartbeat.
HOST_NAME = socket.gethostname()
PROCESS_TOKEN = _token_for(os.getpid()) or f"uuid:{uuid.uuid4().hex}"


def _pid_alive(pid: int) -> bool | None:
    """True/False when we can tell, None when this platform cannot."""
    if os.name != "posix":
        return None  # os.kill(pid, 0) would terminate the process on Windows
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, belongs to someone else
    except OSError:
        return None
    return True


def _owner_alive(pid: int, token: str) -> bool | None:
    if token == PROCESS_TOKEN:
        return True
    if token.startswith("uuid:"):
        return _pid_alive(pid)
    current = _token_for(pid)
    if current is not None:
        return current == token
    alive = _pid_alive(pid)
    # no /proc entry for that pid while /proc exists means the process is gone
    return False if alive is None and Path("/proc/self/stat").exists() else alive

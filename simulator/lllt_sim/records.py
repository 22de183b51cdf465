"""Session records the simulated device keeps, and the optional file that persists them.

A real cap keeps its last 16 session records and its boot count in flash, so a host that
lost track of a session (link lost, host killed) can reconcile from them (wire spec §9).
The simulator keeps them in memory and, when given a ``state_file``, in a small JSON file
written atomically, so a served simulator that is stopped and started again still answers
for its earlier sessions. A record still RUNNING when the file is loaded becomes
POWER_LOSS with the fluence of its last checkpoint, like a cap that lost power.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from typing import Any

from lllt import wire

FORMAT = "lllt-sim-state/1"


class StateFileError(ValueError):
    """The state file exists but cannot be read as simulator state."""


@dataclass(slots=True)
class Record:
    """One session as the device accounts for it (fluence in µJ/cm² per channel)."""

    plan_id: int
    boot_count: int
    start_ms: int
    end_ms: int = 0
    outcome: int = wire.Outcome.RUNNING
    reason: int = 0
    emitting_ms: int = 0
    fluence_uj: list[int] = field(default_factory=list)
    #: record-access sequence number: 1, 2, 3 ... for the device's life, never reused
    seq: int = 0

    def to_wire(self) -> wire.SessionRecord:
        return wire.SessionRecord(
            plan_id=self.plan_id,
            boot_count=self.boot_count,
            start_ms=self.start_ms,
            end_ms=self.end_ms,
            outcome=wire.Outcome(self.outcome),
            reason=self.reason,
            emitting_ms=self.emitting_ms,
            fluence=tuple(v / 1e6 for v in self.fluence_uj),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "plan_id": self.plan_id,
            "boot_count": self.boot_count,
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "outcome": int(self.outcome),
            "reason": self.reason,
            "emitting_ms": self.emitting_ms,
            "fluence_uj": list(self.fluence_uj),
            "seq": self.seq,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Record:
        return cls(
            plan_id=int(d["plan_id"]),
            boot_count=int(d["boot_count"]),
            start_ms=int(d["start_ms"]),
            end_ms=int(d["end_ms"]),
            outcome=int(wire.Outcome(int(d["outcome"]))),
            reason=int(d["reason"]),
            emitting_ms=int(d["emitting_ms"]),
            fluence_uj=[int(v) for v in d["fluence_uj"]],
            seq=int(d.get("seq", 0)),
        )


def load_state(path: str, profile: str) -> tuple[int, list[Record]]:
    """(boot_count, records newest first) from ``path``; (0, []) when it does not exist."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        return 0, []
    except (OSError, ValueError) as err:
        raise StateFileError(f"cannot read simulator state file {path}: {err}") from None
    try:
        if data.get("format") != FORMAT:
            raise ValueError(f"format must be {FORMAT!r}, found {data.get('format')!r}")
        if data.get("profile") != profile:
            raise ValueError(f"it belongs to profile {data.get('profile')!r}, not {profile!r}")
        boots = int(data["boot_count"])
        records = [Record.from_json(r) for r in data["records"]][: wire.MAX_RECORDS]
    except (AttributeError, KeyError, TypeError, ValueError) as err:
        raise StateFileError(f"simulator state file {path} is invalid: {err}") from None
    return boots, records


def load_next_seq(path: str) -> int:
    """The next record sequence number kept in ``path`` (0: not kept there)."""
    try:
        with open(path, encoding="utf-8") as f:
            return int(json.load(f).get("next_seq", 0))
    except (OSError, ValueError, AttributeError, TypeError):
        return 0


def save_state(
    path: str, profile: str, boot_count: int, records: list[Record], next_seq: int = 0
) -> None:
    """Write atomically: a crash mid-write leaves the previous file intact."""
    data = {
        "format": FORMAT,
        "profile": profile,
        "boot_count": boot_count,
        "records": [r.to_json() for r in records],
        "next_seq": next_seq,
    }
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".lllt-sim-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise

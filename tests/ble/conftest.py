"""Helpers for the BLE tests."""

from __future__ import annotations

from pathlib import Path


def write_protocol(path: Path, *, duration: str = "1 min", level: str = "3 mW/cm^2") -> Path:
    """A one-phase 655 nm protocol for reference-cap."""
    path.write_text(
        f"""format = "lllt-protocol/1"
id = "ble-test"
name = "BLE test protocol"
references = ["test"]

[schedule]
min_interval = "12 h"
max_sessions_per_week = 7
course = "1 week"

[[phases]]
name = "treatment"
duration = "{duration}"
ramp = "0 s"
emit = {{ "655nm" = "{level}" }}
zones = ["all"]
""",
        encoding="utf-8",
    )
    return path

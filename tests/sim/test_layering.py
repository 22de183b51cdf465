"""The simulator is a device, not part of the host (DESIGN §9): from ``lllt`` it may use
the wire codec only, so its interlocks stay an independent implementation."""

from __future__ import annotations

import ast
from pathlib import Path

import lllt_sim

SIM = Path(lllt_sim.__file__).parent


def _lllt_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "lllt"}
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "lllt":
                found |= {f"lllt.{a.name}" for a in node.names}
            elif node.module.startswith("lllt."):
                found.add(node.module)
    return found


def test_the_simulator_imports_only_the_wire_codec_from_the_host() -> None:
    files = sorted(SIM.rglob("*.py"))
    assert len(files) >= 8
    used = {str(f.relative_to(SIM)): _lllt_imports(f) for f in files}
    # the wire codec (its package), and the GATT profile's constants (lllt.bleprofile
    # imports nothing); tests/test_architecture.py checks indirect imports too
    allowed = {"lllt.wire", "lllt.bleprofile"}
    found = {m for ms in used.values() for m in ms}
    assert {m for m in found if m not in allowed and not m.startswith("lllt.wire.")} == set(), used
    assert "lllt.wire" in found

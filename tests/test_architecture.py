"""The import contracts of docs/architecture.md hold, and they are not decorative: each one
breaks when an import it forbids is added to a copy of the code."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONTRACTS = ("layers", "simulator", "wire", "core-without-simulator", "acyclic")


def _lint_imports() -> str:
    exe = Path(sys.executable).with_name("lint-imports")
    if not exe.exists():
        found = shutil.which("lint-imports")
        if found is None:
            pytest.skip("import-linter is not installed (pip install -e '.[test]')")
        exe = Path(found)
    return str(exe)


def _run(cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_lint_imports(), "--no-cache"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def _broken(output: str) -> set[str]:
    """Names of the contracts the report marks BROKEN."""
    return set(re.findall(r"^(.+?) BROKEN\b", output, flags=re.M))


def _names() -> dict[str, str]:
    """contract id -> name, from pyproject.toml."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contracts = config["tool"]["importlinter"]["contracts"]
    return {c["id"]: c["name"] for c in contracts}


def test_the_import_contracts_hold() -> None:
    assert set(_names()) == set(CONTRACTS)
    out = _run(ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"Contracts: {len(CONTRACTS)} kept, 0 broken." in out.stdout, out.stdout


# contract -> (file of the copy, the import added to it)
INJECTED = {
    # upward, without making a cycle: the device client reaching for the report
    "layers": ("lllt/device.py", "import lllt.report"),
    "simulator": ("lllt_sim/engine.py", "import lllt.safety"),
    "wire": ("lllt/wire/framing.py", "import lllt.errors"),
    "core-without-simulator": ("lllt/info.py", "import lllt_sim.engine"),
    # a cycle inside the simulator, which no layer covers
    "acyclic": ("lllt_sim/faults.py", "import lllt_sim.engine"),
}


@pytest.fixture(scope="module")
def copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The packages and the contracts, copied where an injected import harms nothing."""
    root = tmp_path_factory.mktemp("arch")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "src" / "lllt", root / "lllt", ignore=ignore)
    shutil.copytree(ROOT / "simulator" / "lllt_sim", root / "lllt_sim", ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    return root


def _env(root: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(root)}


def test_the_copy_is_what_the_contracts_read(copy: Path) -> None:
    code = "import lllt, lllt_sim; print(lllt.__file__); print(lllt_sim.__file__)"
    out = subprocess.run(
        [sys.executable, "-c", code], env=_env(copy), capture_output=True, text=True, check=True
    )
    assert all(line.startswith(str(copy)) for line in out.stdout.split()), out.stdout
    clean = _run(copy, _env(copy))
    assert clean.returncode == 0, clean.stdout + clean.stderr


@pytest.mark.parametrize("contract", CONTRACTS)
def test_a_forbidden_import_breaks_the_contract(copy: Path, contract: str) -> None:
    relative, line = INJECTED[contract]
    path = copy / relative
    original = path.read_text(encoding="utf-8")
    try:
        path.write_text(original + f"\n{line}  # injected by the test\n", encoding="utf-8")
        out = _run(copy, _env(copy))
    finally:
        path.write_text(original, encoding="utf-8")
    assert out.returncode != 0, out.stdout
    assert _names()[contract] in _broken(out.stdout), out.stdout

"""`lllt protocol check` wall time on the shipped files, and where it goes.

Figures, all measured in this run: the whole command on each shipped protocol, alone
(target: at most 2.5x `lllt --help`, issue 12) and against its matching profile (the
preflight and thermal prediction added; target < 1 s), beside `python -c pass` and
`lllt --help` (the fixed cost of Python and of the CLI); the 10 MB bad file (refused
before it is parsed); and in-process, the cost of building lllt's restricted unit
registry against pint's full default registry.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import best_of, report
from lllt.protocol import load_protocol, shipped_protocols


def _lllt(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "lllt", *args], capture_output=True, check=False)


def _registry_build_s(code: str) -> float:
    """Seconds to import pint and build a registry, in a fresh interpreter."""
    timer = f"import time; t = time.perf_counter(); {code}; print(time.perf_counter() - t)"
    out = subprocess.run([sys.executable, "-c", timer], capture_output=True, text=True, check=True)
    return float(out.stdout)


def main() -> None:
    base = best_of(lambda: subprocess.run([sys.executable, "-c", "pass"], check=True), 5)
    help_s = best_of(lambda: _lllt("--help"), 5)
    worst = worst_p = 0.0
    for path in shipped_protocols():
        profile = load_protocol(path).meta.profile  # type: ignore[union-attr]
        t = best_of(lambda p=path: _lllt("protocol", "check", str(p)), 5)
        tp = best_of(lambda p=path, pr=profile: _lllt("protocol", "check", str(p), "-p", pr), 5)
        worst, worst_p = max(worst, t), max(worst_p, tp)
        report(
            f"protocol_check[{path.stem}]",
            wall_s=f"{t:.3f}",
            ratio_to_lllt_help=f"{t / help_s:.1f}",
            with_profile_s=f"{tp:.3f}",
            with_profile_ratio_to_lllt_help=f"{tp / help_s:.1f}",
        )
    report(
        "protocol_check_worst",
        wall_s=f"{worst:.3f}",
        python_startup_s=f"{base:.3f}",
        lllt_help_s=f"{help_s:.3f}",
        ratio_to_lllt_help=f"{worst / help_s:.2f}",
        target="<= 2.5x lllt --help",
        ok=worst <= 2.5 * help_s,
    )
    report(
        "protocol_check_with_profile_worst",
        wall_s=f"{worst_p:.3f}",
        ratio_to_lllt_help=f"{worst_p / help_s:.2f}",
        target="<1 s",
        ok=worst_p < 1.0,
    )

    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / "10mb.toml"
        big.write_text('notes = """\n' + ("x" * 99 + "\n") * 100_000 + '"""\n')
        t = best_of(lambda: _lllt("protocol", "check", str(big)), 5)
        report(
            "protocol_check_10mb_file", wall_s=f"{t:.3f}", ratio_to_lllt_help=f"{t / help_s:.1f}"
        )

    full = min(_registry_build_s("import pint; pint.UnitRegistry()") for _ in range(3))
    ours = min(_registry_build_s("from lllt.units import registry; registry()") for _ in range(3))
    report(
        "unit_registry_build",
        lllt_restricted_s=f"{ours:.3f}",
        pint_default_s=f"{full:.3f}",
        ratio=f"{ours / full:.2f}",
    )

    t0 = time.perf_counter()
    for path in shipped_protocols():
        load_protocol(path)
    per_file = (time.perf_counter() - t0) / len(shipped_protocols())
    report("load_protocol_in_process", per_file_ms=f"{per_file * 1000:.2f}")


if __name__ == "__main__":
    main()

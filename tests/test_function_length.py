"""No function of lllt or its simulator is longer than 80 lines (docs/architecture.md).

When the rule came in, 21 functions were longer; all have since been split into named
steps, so the list of exceptions below is empty. Generated or table code would be listed
there with its length and the reason; a listed function may shrink, never grow, and
leaves the list once it is split (the test says so).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 80

#: "path:qualified name" -> the most lines it may still have
TOO_LONG: dict[str, int] = {}


def _functions(path: Path) -> dict[str, int]:
    """qualified name -> lines, for every function and method in ``path``."""
    out: dict[str, int] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                name = prefix + child.name
                assert child.end_lineno is not None
                out[name] = child.end_lineno - child.lineno + 1
                visit(child, name + ".")
            elif isinstance(child, ast.ClassDef):
                visit(child, prefix + child.name + ".")
            else:
                visit(child, prefix)

    visit(ast.parse(path.read_text(encoding="utf-8")), "")
    return out


def _lengths() -> dict[str, int]:
    found: dict[str, int] = {}
    for top in ("src/lllt", "simulator/lllt_sim"):
        for path in sorted((ROOT / top).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            for name, lines in _functions(path).items():
                found[f"{rel}:{name}"] = lines
    return found


def test_no_function_is_longer_than_the_limit() -> None:
    lengths = _lengths()
    assert len(lengths) > 500  # the walk found the code
    new = {k: v for k, v in lengths.items() if v > LIMIT and k not in TOO_LONG}
    assert not new, f"split these into named steps (at most {LIMIT} lines each): {new}"
    grown = {k: (lengths[k], most) for k, most in TOO_LONG.items() if lengths.get(k, 0) > most}
    assert not grown, f"these long functions grew (lines, allowed): {grown}"


def test_the_list_of_long_functions_is_current() -> None:
    lengths = _lengths()
    done = [k for k in TOO_LONG if lengths.get(k, 0) <= LIMIT]
    assert not done, f"now at most {LIMIT} lines (or gone): remove from TOO_LONG: {done}"

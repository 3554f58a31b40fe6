"""The size gate of `make lint`: no module of exporter/ over 300 lines and no function over 60,
outside the simulator (the test double) and the declarative tables named in EXEMPT.

Small rooms and short functions are what let a newcomer find a step of docs/architecture.md's
walk and read it whole; the gate keeps them so as the code grows."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODULE_LINES, FUNCTION_LINES = 300, 60
SKIP = ("exporter/simulator/",)
# Declarative tables, one entry a line, that read better whole than split: path -> function names.
EXEMPT: dict[str, set[str]] = {}


def findings() -> list[str]:
    out = []
    for path in sorted((ROOT / "exporter").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith(SKIP):
            continue
        text = path.read_text(encoding="utf-8")
        if (n := len(text.splitlines())) > MODULE_LINES:
            out.append(f"{rel}: {n} lines (at most {MODULE_LINES})")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                length = (node.end_lineno or node.lineno) - start + 1
                if length > FUNCTION_LINES and node.name not in EXEMPT.get(rel, set()):
                    out.append(f"{rel}:{node.lineno}: {node.name}() is {length} lines (at most {FUNCTION_LINES})")
    return out


if __name__ == "__main__":
    problems = findings()
    for p in problems:
        print(p, file=sys.stderr)
    sys.exit(1 if problems else 0)

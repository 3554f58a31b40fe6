"""An example flow for an objective's tests: label values its selector accepts, and series
notation for promtool (`a+bxn`) from one value per step.
"""

from __future__ import annotations

import importlib
import math
import re
from typing import Any

from exporter.objectives.model import Match, Selector

# The regular expression parser (re._parser since Python 3.11, sre_parse before): a sample string
# is read off the pattern's parse tree.
try:
    sre: Any = importlib.import_module("re._parser")
except ImportError:  # pragma: no cover - Python 3.10
    sre = importlib.import_module("sre_parse")

DEFAULTS = {
    "sandbox": "prod",
    "flow_name": "example-flow",
    "source_name": "Amazon S3",
    "source_connection_spec_id": "ecadc60c-7455-4d87-84dc-2a0e293d997b",
}


def _sample(parsed) -> str | None:
    """A short string the parsed pattern matches, for the constructs selectors use; None if unsure."""
    out = []
    for op, arg in parsed:
        name = str(op)
        if name == "LITERAL":
            out.append(chr(arg))
        elif name == "ANY":
            out.append("x")
        elif name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            low, _, sub = arg
            part = _sample(sub)
            if part is None:
                return None
            out.append(part * low)
        elif name == "SUBPATTERN":
            part = _sample(arg[-1])
            if part is None:
                return None
            out.append(part)
        elif name == "BRANCH":
            part = _sample(arg[1][0])
            if part is None:
                return None
            out.append(part)
        elif name == "IN":
            first = arg[0]
            if str(first[0]) == "LITERAL":
                out.append(chr(first[1]))
            elif str(first[0]) == "RANGE":
                out.append(chr(first[1][0]))
            else:
                return None
        elif name != "AT":
            return None
    return "".join(out)


def value_for(m: Match) -> str | None:
    if m.regex is None:
        return m.values[0]
    try:
        s = _sample(sre.parse(m.regex))
    except Exception:  # an exotic pattern: the caller leaves the objective's cases out
        return None
    return s if s is not None and re.fullmatch(m.regex, s) else None


def matches(selector: Selector, labels: dict[str, str]) -> bool:
    """Whether a flow with these labels is selected (what the rules' matchers do)."""
    for m in selector.matches:
        v = labels.get(m.label, "")
        if m.regex is not None:
            if not re.fullmatch(m.regex, v):
                return False
        elif v not in m.values:
            return False
    return True


def flow_labels(selector: Selector, flow_id: str) -> dict[str, str] | None:
    labels = dict(DEFAULTS, flow_id=flow_id)
    for m in selector.matches:
        v = value_for(m)
        if v is None:
            return None
        labels[m.label] = v
    return labels if matches(selector, labels) else None


def _fmt(x: float) -> str:
    return f"{x:.10g}"


def notation(values: list[float]) -> str:
    """promtool's expanding notation: runs of equal steps as 'a+bxn' (n+1 values)."""
    parts, i = [], 0
    while i < len(values):
        j = i + 1
        step = values[j] - values[i] if j < len(values) else 0.0
        while j + 1 < len(values) and math.isclose(values[j + 1] - values[j], step, rel_tol=1e-9, abs_tol=1e-9):
            j += 1
        if j >= len(values):
            parts.append(_fmt(values[i]))
            break
        n = j - i
        sign = "+" if step >= 0 else "-"
        parts.append(f"{_fmt(values[i])}{sign}{_fmt(abs(step))}x{n}")
        i = j + 1
    return " ".join(parts)

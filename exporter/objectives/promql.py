"""Objectives → PromQL: selectors as label matchers on aep_flow_info, and each SLI's expression.

Every expression is per flow (`sandbox`, `flow_id`), aggregated over the scrape's `job` and
`instance` the way deploy/prometheus/rules.yml does, and restricted to the selected flows by
`and on (sandbox, flow_id) aep_flow_info{…}`: every selector label lives on aep_flow_info.
"""

from __future__ import annotations

import json
import re

from exporter.objectives.model import FRESHNESS, Match, Objective, Selector

FLOW = "sandbox, flow_id"
# Runs that completed badly, and runs that count at all: a cancelled run was stopped by a person,
# so it is neither good nor bad (docs/objectives.md).
BAD_RUNS = 'aep_flow_runs_total{status=~"failed|partialFailure"}'
COUNTED_RUNS = 'aep_flow_runs_total{status!="cancelled"}'
SUCCESS = "aep_flow_last_success_timestamp_seconds"
WINDOW_END = "aep_flow_last_completed_run_window_end_timestamp_seconds"
COMPLETED_END = "aep_flow_last_completed_run_end_timestamp_seconds"


def quote(value: str) -> str:
    """A PromQL string literal (JSON's escaping is PromQL's)."""
    return json.dumps(value, ensure_ascii=False)


def escape(value: str) -> str:
    """A value as an RE2 literal: its metacharacters escaped, nothing else (IDs stay readable)."""
    return re.sub(r"([\\.+*?()|\[\]{}^$])", r"\\\1", value)


def matcher(m: Match) -> str:
    if m.regex is not None:
        return f"{m.label}=~{quote(m.regex)}"
    if len(m.values) == 1:
        return f"{m.label}={quote(m.values[0])}"
    return f"{m.label}=~{quote('|'.join(escape(v) for v in m.values))}"


def info(selector: Selector, extra: tuple[str, ...] = ()) -> str:
    """aep_flow_info of the selected flows."""
    inner = ", ".join([matcher(m) for m in selector.matches] + list(extra))
    return f"aep_flow_info{{{inner}}}" if inner else "aep_flow_info"


def selected(o: Objective) -> str:
    """The `and` that keeps the objective's flows (freshness: enabled ones; a paused flow's data is meant to age)."""
    extra = ('state="enabled"',) if o.kind == FRESHNESS else ()
    return f"and on ({FLOW}) {info(o.selector, extra)}"


def _max(metric: str) -> str:
    return f"max by ({FLOW}) ({metric})"


def newest_data() -> str:
    """When each flow's newest successfully ingested data is from: the latest completed run's window
    end when that run is the latest success, else the latest success's end (an upper bound on its
    data's time, so a failed latest run never makes data look fresher)."""
    return (
        f"(\n    {_max(WINDOW_END)}\n      and on ({FLOW})\n"
        f"    ({_max(COMPLETED_END)} == on ({FLOW}) {_max(SUCCESS)})\n  )\n"
        f"  or on ({FLOW}) {_max(SUCCESS)}"
    )


def stale(o: Objective) -> str:
    """1 where the flow's newest data is older than the threshold now, else 0: sampled at each
    evaluation, so its average over a window is the share of that window's time it was stale."""
    return f"(time() - (\n  {newest_data()}\n) > bool {o.threshold:g})\n{selected(o)}"


def stale_ratio(o: Objective, metric: str, window: str) -> str:
    return f"avg_over_time({metric}{{objective={quote(o.name)}}}[{window}])"


def run_error_ratio(o: Objective, window: str) -> str:
    """Bad runs over counted runs in the window; no value where the window holds no run."""
    return (
        f"sum by ({FLOW}) (increase({BAD_RUNS}[{window}]))\n"
        f"  / (sum by ({FLOW}) (increase({COUNTED_RUNS}[{window}])) > 0)\n{selected(o)}"
    )


def run_count(o: Objective, window: str) -> str:
    return f"sum by ({FLOW}) (increase({COUNTED_RUNS}[{window}]))\n{selected(o)}"


def number(x: float) -> str:
    """A threshold as PromQL reads it, without float noise (14.4 × 0.005 → 0.072)."""
    return f"{x:.10g}"

"""The alert windows, declared once: the SRE workbook's multi-window, multi-burn-rate pairs, and how a
run-success objective over sparse runs stretches them.

A pair fires when the error ratio over both its long and its short window exceeds `factor` times
the budget: the long window says enough budget went, the short one that it is still going (so the
alert resets soon after the burning stops). Runs are sparse (a flow may run hourly or daily), so a
run-success objective with `run_interval` stretches each short window to hold the latest run
(1.5 × run_interval) and each long window to hold `min_runs` runs; docs/objectives.md says why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from exporter.objectives.model import RUN_SUCCESS, Objective

PAGE, TICKET = "page", "ticket"
ALERT_NAMES = {PAGE: "AepObjectiveFastBurn", TICKET: "AepObjectiveSlowBurn"}
SEVERITY = {PAGE: "critical", TICKET: "warning"}  # the house alerts' severities (deploy/prometheus/alerts.yml)


@dataclass(frozen=True)
class Pair:
    severity: str  # PAGE or TICKET
    long: float  # seconds
    short: float
    factor: float  # the burn rate: how many times faster than the budget allows


PAIRS = (
    Pair(PAGE, 3600, 300, 14.4),  # 2% of a 30-day budget in an hour
    Pair(PAGE, 6 * 3600, 1800, 6),  # 5% in six hours
    Pair(TICKET, 86400, 2 * 3600, 3),  # 10% in a day
    Pair(TICKET, 3 * 86400, 6 * 3600, 1),  # 10% in three days
)
SHORT_STRETCH = 1.5  # a short window of 1.5 run intervals holds the latest run, whatever the jitter


def nominal_windows() -> tuple[float, ...]:
    """Every window a recording rule is kept for, shortest first: what the names say (rate5m …)."""
    return tuple(sorted({w for p in PAIRS for w in (p.long, p.short)}))


def actual(objective: Objective, nominal: float) -> float:
    """The range a nominal window covers for this objective: itself, or stretched for sparse runs."""
    if objective.kind != RUN_SUCCESS or objective.run_interval is None:
        return nominal
    interval = objective.run_interval
    shorts = {p.short for p in PAIRS}
    if nominal in shorts:
        return max(nominal, SHORT_STRETCH * interval)
    return max(nominal, objective.min_runs * interval, SHORT_STRETCH * interval)


def duration(seconds: float) -> str:
    """Seconds as a Prometheus duration: '5m', '1h', '3d', '1h30m'; whole seconds, rounded up."""
    left = int(math.ceil(seconds))
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if left >= size:
            parts.append(f"{left // size}{unit}")
            left %= size
    return "".join(parts) or "0s"

"""The objectives' types: frozen dataclasses, and the error every problem in the file becomes.

An objective holds for each selected flow on its own: a flow's runs and its data's age spend only
that flow's budget, so one bad flow among twenty is not hidden by the others, and an alert names
the flow that burns (docs/objectives.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from exporter.config import ConfigError

FRESHNESS = "freshness"
RUN_SUCCESS = "run_success"
KINDS = (FRESHNESS, RUN_SUCCESS)
# The labels of aep_flow_info an objective may select flows by (the objectives file's keys).
SELECTOR_LABELS = ("sandbox", "flow_id", "flow_name", "source_name", "source_connection_spec_id")
DEFAULT_WINDOW = 30 * 86400.0
DEFAULT_MIN_RUNS = 3


class ObjectivesError(ConfigError):
    """A problem in the objectives file, worded for the operator: '<file>: <key>: <what is wrong>'."""


@dataclass(frozen=True)
class Match:
    """One label's condition: any of `values` exactly, or the RE2 `regex` (anchored, as PromQL's are)."""

    label: str
    values: tuple[str, ...] = ()
    regex: str | None = None


@dataclass(frozen=True)
class Selector:
    """Which flows: every condition must hold (no condition: every flow the exporter watches)."""

    matches: tuple[Match, ...] = ()


@dataclass(frozen=True)
class Objective:
    name: str
    kind: str  # FRESHNESS or RUN_SUCCESS
    target: float  # the share of good (0.995), never 1
    selector: Selector = Selector()
    window: float = DEFAULT_WINDOW  # seconds: the error budget's period
    description: str = ""
    threshold: float | None = None  # freshness: the age (seconds) past which data is stale
    min_runs: int = DEFAULT_MIN_RUNS  # run_success: runs the long window must hold before an alert
    run_interval: float | None = None  # run_success: how often the slowest selected flow runs

    @property
    def budget(self) -> float:
        """The error budget as a ratio: what may go wrong (0.005 for 99.5%)."""
        return 1.0 - self.target

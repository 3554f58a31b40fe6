"""The records the ledger keeps: per flow and per sandbox.

These are plain data. Only exporter.ledger.Ledger changes them (and exporter.state builds them
from the state file before handing them to the ledger); collectors and the status page read them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from exporter.fields import FACTS
from exporter.models import Flow
from exporter.translate import RunFacts

DURATION_BUCKETS = (10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800, 86400)
COUNTED_FIELDS = FACTS  # kept for readers of the old name


@dataclass
class Totals:
    """Counter values of one flow, summed over the completed runs counted so far."""

    runs: dict[str, int] = field(default_factory=lambda: {"success": 0, "failed": 0})
    sums: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FACTS, 0))
    run_errors: dict[str, int] = field(default_factory=dict)
    error_records: dict[str, int] = field(default_factory=dict)
    # Non-cumulative counts per bucket of DURATION_BUCKETS, plus one for +Inf.
    duration_buckets: list[int] = field(default_factory=lambda: [0] * (len(DURATION_BUCKETS) + 1))
    duration_sum: float = 0.0
    duration_count: int = 0
    # Sums any run of the flow has reported (baseline runs included): only those are exported, so
    # a flow whose source never reports files has no files counter rather than a 0 that says
    # "reported, and none".
    reported: set[str] = field(default_factory=set)

    def note_reported(self, run: RunFacts) -> None:
        self.reported.update(run.counts)

    def add(self, run: RunFacts) -> None:
        self.runs[run.status] = self.runs.get(run.status, 0) + 1
        for name, value in run.counts.items():
            self.sums[name] = self.sums.get(name, 0) + value
        for code in run.error_codes:
            self.run_errors[code] = self.run_errors.get(code, 0) + 1
        for code, n in run.error_records:
            self.error_records[code] = self.error_records.get(code, 0) + n
        if run.duration is not None:
            i = next((i for i, b in enumerate(DURATION_BUCKETS) if run.duration <= b), len(DURATION_BUCKETS))
            self.duration_buckets[i] += 1
            self.duration_sum += run.duration
            self.duration_count += 1


@dataclass(slots=True)
class SeenRun:
    completed: bool
    created: float | None
    status: str | None = None


@dataclass
class FlowState:
    sandbox: str
    flow_id: str
    flow: Flow | None = None
    meta_fetched_at: float | None = None
    up: bool = False
    gone: bool = False
    baselined: bool = False
    seen: dict[str, SeenRun] = field(default_factory=dict)
    totals: Totals = field(default_factory=Totals)
    last_run: RunFacts | None = None
    last_completed: RunFacts | None = None
    last_success: float | None = None
    in_flight: int = 0
    oldest_in_flight: float | None = None  # createdAt of the oldest run still in flight
    statuses: frozenset[str] = frozenset()
    # Error codes admitted as label values (at most max_error_codes_per_flow; the rest are "other"),
    # and how many codes of counted runs went to "other".
    codes: set[str] = field(default_factory=set)
    codes_capped: int = 0
    # Batched strategy: when this flow's runs were last listed (our clock); the next listing asks
    # only for runs created since then, less the overlap.
    listed_until: float | None = None
    # Bumped by the Ledger whenever it changes something the collectors, the status page or the
    # state file read: they keep each flow's lines, row and saved entry, and make them again only
    # when this moved (exporter/collector/page.py, status.py, state.py). A new field they read
    # must bump it too (tests/test_render.py checks the exposition after each kind of change).
    version: int = 0

    @property
    def visible(self) -> bool:
        """Whether the flow's own series belong on /metrics: polled once, and not gone."""
        return self.baselined and not self.gone


@dataclass
class SandboxState:
    last_success: float | None = None
    poll_duration: float | None = None
    discovery_success: float | None = None
    strategy: str | None = None  # fetch strategy in use: batched, or per_flow
    batch_fallbacks: int = 0  # times Adobe refused a batched query (400) and per_flow took over
    # Flows discovery found (id → metadata), and when discovery last listed the sandbox.
    discovered: dict[str, Flow] = field(default_factory=dict)
    discovered_at: float | None = None


def order_time(r: RunFacts) -> float | None:
    """createdAt, else startedAtUTC, else updatedAt (RunFacts saved by an older version have only
    `created`)."""
    return r.order_time if r.order_time is not None else r.created


def latest(candidates: Iterable[RunFacts]) -> RunFacts | None:
    """The run that happened last (models.Run.order_time; a run with no time counts as oldest)."""
    best: RunFacts | None = None
    for r in candidates:
        if best is None or (order_time(r) or 0) > (order_time(best) or 0):
            best = r
    return best

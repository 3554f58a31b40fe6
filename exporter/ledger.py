"""The run ledger: which runs were seen, which finished, and what the counters add up to.

Exactly-once rule, per flow:
- the first successful poll is the *baseline*: runs already completed are remembered without
  being counted (so counters start at 0 and a restart is not a burst of runs); runs in flight are
  remembered as in flight;
- after that, a run is counted the first time it is seen completed, whether it is new or was in
  flight before, and never again (pagination overlap, retries and status changes after completion
  cannot recount it);
- a run is forgotten only once it is older than the lookback window, which the poller never asks
  the API about again, so it cannot come back to be counted twice.

A poll applies all of a flow's runs in one synchronous call, so a scrape (which runs on the same
event loop) never sees half a poll.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from exporter.models import Flow
from exporter.translate import RunFacts

DURATION_BUCKETS = (10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800, 86400)
COUNTED_FIELDS = (
    "input_records",
    "output_records",
    "failed_records",
    "input_bytes",
    "output_bytes",
    "input_files",
    "output_files",
)


@dataclass
class Totals:
    """Counter values of one flow, summed over the completed runs counted so far."""

    runs: dict[str, int] = field(default_factory=lambda: {"success": 0, "failed": 0})
    sums: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTED_FIELDS, 0))
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
        for name in COUNTED_FIELDS:
            if name not in self.reported and getattr(run, name) is not None:
                self.reported.add(name)

    def add(self, run: RunFacts) -> None:
        self.runs[run.status] = self.runs.get(run.status, 0) + 1
        for name in COUNTED_FIELDS:
            value = getattr(run, name)
            if value is not None:
                self.sums[name] += value
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


def _latest(candidates: Iterable[RunFacts]) -> RunFacts | None:
    best: RunFacts | None = None
    for r in candidates:
        if best is None or (r.created or 0) > (best.created or 0):
            best = r
    return best


OTHER_CODE = "other"


class Ledger:
    """All flows' state. Only the poller writes it; the collector reads it."""

    def __init__(self, max_error_codes_per_flow: int = 50) -> None:
        self.flows: dict[tuple[str, str], FlowState] = {}
        self.sandboxes: dict[str, SandboxState] = {}
        self.max_error_codes_per_flow = max_error_codes_per_flow

    def flow(self, sandbox: str, flow_id: str) -> FlowState:
        key = (sandbox, flow_id)
        state = self.flows.get(key)
        if state is None:
            state = self.flows[key] = FlowState(sandbox, flow_id)
            self.sandboxes.setdefault(sandbox, SandboxState())
        return state

    def retain(self, keys: Iterable[tuple[str, str]], sandboxes: Iterable[str] = ()) -> None:
        """Forget flows and sandboxes no longer watched, so their series leave /metrics."""
        keep = set(keys)
        for key in [k for k in self.flows if k not in keep]:
            del self.flows[key]
        names = {s for s, _ in keep} | set(sandboxes)
        for name in [s for s in self.sandboxes if s not in names]:
            del self.sandboxes[name]
        for name in names:
            self.sandboxes.setdefault(name, SandboxState())

    def set_flow(self, state: FlowState, flow: Flow, now: float) -> None:
        state.flow, state.meta_fetched_at, state.gone = flow, now, False

    def mark_gone(self, state: FlowState) -> None:
        """404 on the flow: its series leave /metrics; its accounting is kept should it return."""
        state.gone, state.up, state.meta_fetched_at = True, False, None

    def mark_down(self, state: FlowState) -> None:
        """A failed poll: keep the last good values, flag the flow as down."""
        state.up = False

    def apply_runs(self, state: FlowState, runs: Iterable[RunFacts], window_start: float, complete: bool = True) -> int:
        """Apply one poll of a flow. `complete`: `runs` are every run created after `window_start`
        (the per-flow strategy, and any first poll); otherwise they are what changed: runs created
        since the last listing, and the runs in flight looked up again (the batched strategy).
        Both count each completed run once. Returns how many runs were counted now (0 at the
        baseline)."""
        current: dict[str, RunFacts] = {}
        for r in runs:  # pages can overlap: the last copy of a run is as fresh as any
            current[r.run_id] = r
        counted = 0
        for r in current.values():
            prev = state.seen.get(r.run_id)
            if prev is not None and prev.completed:
                continue
            if r.completed:
                state.totals.note_reported(r)
                if state.baselined:
                    capped, dropped = self._cap_codes(state, r)
                    state.totals.add(capped)
                    state.codes_capped += dropped
                    counted += 1
                state.seen[r.run_id] = SeenRun(True, r.created, r.status)
            else:
                state.seen[r.run_id] = SeenRun(False, r.created, r.status)

        # Runs older than the window are never asked for again: forget them. A complete view also
        # drops runs in flight that Adobe no longer lists (deleted): should one come back
        # completed, it is new, and counted once.
        for run_id in [
            k
            for k, v in state.seen.items()
            if k not in current and (v.created is None or v.created <= window_start or (complete and not v.completed))
        ]:
            del state.seen[run_id]

        self._update_last(state, current)
        self._update_seen_summaries(state)
        if state.last_completed is not None:
            state.last_completed = self._cap_codes(state, state.last_completed)[0]
        state.baselined = True
        state.up = True
        return counted

    def _cap_codes(self, state: FlowState, run: RunFacts) -> tuple[RunFacts, int]:
        """The run with error codes past the flow's cap renamed "other" (codes are label values:
        a source that puts a record ID into its codes must not blow up the series count)."""
        mapping: dict[str, str] = {}
        for code in sorted(run.error_codes):
            if code in state.codes or len(state.codes) < self.max_error_codes_per_flow:
                state.codes.add(code)
                mapping[code] = code
            else:
                mapping[code] = OTHER_CODE
        dropped = sum(1 for c, m in mapping.items() if c != m)
        if not dropped:
            return run, 0
        records: dict[str, int] = {}
        for code, n in run.error_records:
            target = mapping.get(code, code if code in state.codes else OTHER_CODE)
            records[target] = records.get(target, 0) + n
        return replace(
            run, error_codes=frozenset(mapping.values()), error_records=tuple(sorted(records.items()))
        ), dropped

    @staticmethod
    def _update_last(state: FlowState, current: dict[str, RunFacts]) -> None:
        runs = list(current.values())
        if state.last_run is not None and state.last_run.run_id not in current:
            runs.append(state.last_run)
        state.last_run = _latest(runs)

        completed = [r for r in current.values() if r.completed]
        if state.last_completed is not None and state.last_completed.run_id not in current:
            completed.append(state.last_completed)
        state.last_completed = _latest(completed)

        for r in current.values():
            if r.status == "success" and r.ended is not None:
                if state.last_success is None or r.ended > state.last_success:
                    state.last_success = r.ended

    @staticmethod
    def _update_seen_summaries(state: FlowState) -> None:
        """Runs in flight and statuses seen within lookback, from the ledger's memory rather than
        from one poll's answer (which, batched, holds only what changed)."""
        flying = [v.created for v in state.seen.values() if not v.completed and v.created is not None]
        state.in_flight = len(flying)
        state.oldest_in_flight = min(flying) if flying else None
        statuses = {v.status for v in state.seen.values() if v.status}
        if state.last_run is not None:
            statuses.add(state.last_run.status)
        state.statuses = frozenset(statuses)

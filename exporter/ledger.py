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

from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace

from exporter.flowstate import (
    COUNTED_FIELDS,
    DURATION_BUCKETS,
    FlowState,
    SandboxState,
    SeenRun,
    Totals,
    latest,
    order_time,
)
from exporter.models import Flow
from exporter.translate import RunFacts

__all__ = [
    "COUNTED_FIELDS",
    "DURATION_BUCKETS",
    "OTHER_CODE",
    "FlowState",
    "Ledger",
    "SandboxState",
    "SeenRun",
    "Totals",
]

OTHER_CODE = "other"


class Ledger:
    """All flows' and sandboxes' accounting state. The fetch strategies and the poller change it
    only through these methods; collectors, the state file and the status page read it."""

    def __init__(self, max_error_codes_per_flow: int = 50) -> None:
        self.flows: dict[tuple[str, str], FlowState] = {}
        self.sandboxes: dict[str, SandboxState] = {}
        self.max_error_codes_per_flow = max_error_codes_per_flow
        # Told of each run counted, as it is counted (exporter/events: which runs polling found first).
        self.on_counted: Callable[[FlowState, RunFacts], None] | None = None

    # --- which flows are watched ------------------------------------------------------------------

    def flow(self, sandbox: str, flow_id: str) -> FlowState:
        """The flow's state, created (empty, not yet baselined) the first time it is asked for."""
        key = (sandbox, flow_id)
        state = self.flows.get(key)
        if state is None:
            state = self.flows[key] = FlowState(sandbox, flow_id)
            self.sandboxes.setdefault(sandbox, SandboxState())
        return state

    def watch(self, keys: Iterable[tuple[str, str]], sandboxes: Iterable[str]) -> None:
        """Watch exactly these flows and sandboxes: the others are forgotten (their series leave
        /metrics), new ones start empty."""
        keys = list(keys)
        self.retain(keys, sandboxes)
        for sandbox, flow_id in keys:
            self.flow(sandbox, flow_id)

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

    def set_max_error_codes(self, n: int) -> None:
        self.max_error_codes_per_flow = n

    # --- discovery --------------------------------------------------------------------------------

    def discovered(self, sandbox: str) -> Mapping[str, Flow]:
        """The flows discovery last found in the sandbox (id → metadata from the listing)."""
        state = self.sandboxes.get(sandbox)
        return state.discovered if state is not None else {}

    def discovery_due(self, sandbox: str, now: float, interval: float) -> bool:
        state = self.sandboxes.get(sandbox)
        return state is None or state.discovered_at is None or now - state.discovered_at >= interval

    def forget_discovery_times(self) -> None:
        """The discover settings may have changed (a reload): every sandbox is due again."""
        for state in self.sandboxes.values():
            state.discovered_at = None

    def record_discovery(self, sandbox: str, found: dict[str, Flow], now: float) -> tuple[int, int]:
        """A successful discovery listing; returns (flows added, flows removed)."""
        state = self.sandboxes.setdefault(sandbox, SandboxState())
        added, removed = len(set(found) - set(state.discovered)), len(set(state.discovered) - set(found))
        state.discovered, state.discovered_at, state.discovery_success = found, now, now
        return added, removed

    def take_discovered_metadata(self, sandbox: str, now: float) -> None:
        """The discovery listing carried each flow's metadata: watched flows take it from there
        (no GET /flows/{id} needed this cycle)."""
        for flow in self.discovered(sandbox).values():
            watched = self.flows.get((sandbox, flow.id))
            if watched is not None:
                self.set_flow(watched, flow, now)

    def adopt_discovered(self, sandbox: str, flow_ids: Iterable[str]) -> None:
        """Restored flows of a discovering sandbox count as discovered until discovery says
        otherwise, so a discovery error at start does not drop their accounting. Until their
        metadata is fetched, all that is known of them is their ID (aep_flow_info has empty labels)."""
        state = self.sandboxes.setdefault(sandbox, SandboxState())
        for flow_id in flow_ids:
            known = state.discovered.setdefault(flow_id, Flow(id=flow_id))
            restored = self.flows.get((sandbox, flow_id))
            if restored is not None and restored.flow is None:
                restored.flow = known

    # --- one flow's poll --------------------------------------------------------------------------

    def set_flow(self, state: FlowState, flow: Flow, now: float) -> None:
        state.flow, state.meta_fetched_at, state.gone = flow, now, False

    def mark_gone(self, state: FlowState) -> None:
        """404 on the flow: its series leave /metrics; its accounting is kept should it return."""
        state.gone, state.up, state.meta_fetched_at = True, False, None

    def mark_down(self, state: FlowState) -> None:
        """A failed poll: keep the last good values, flag the flow as down."""
        state.up = False

    def apply_runs(
        self,
        state: FlowState,
        runs: Iterable[RunFacts],
        window_start: float,
        complete: bool = True,
        listed_until: float | None = None,
    ) -> int:
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
                    if self.on_counted is not None:
                        self.on_counted(state, r)
                state.seen[r.run_id] = SeenRun(True, order_time(r), r.status)
            else:
                state.seen[r.run_id] = SeenRun(False, order_time(r), r.status)

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
        if listed_until is not None:
            state.listed_until = listed_until
        return counted

    def forget_in_flight(self, state: FlowState, run_ids: Iterable[str]) -> int:
        """Runs in flight that Adobe no longer has (a lookup by ID answered without them: deleted)
        leave in-flight; they were never counted, and should one come back completed it is
        counted then, once. Completed runs are never forgotten here. Returns how many left."""
        gone = [r for r in run_ids if (seen := state.seen.get(r)) is not None and not seen.completed]
        for run_id in gone:
            del state.seen[run_id]
        if gone:
            self._update_seen_summaries(state)
        return len(gone)

    # --- sandboxes --------------------------------------------------------------------------------

    def record_batch_refusal(self, sandbox: str) -> None:
        """Adobe refused a batched query: the sandbox is polled flow by flow from now on."""
        self.sandboxes.setdefault(sandbox, SandboxState()).batch_fallbacks += 1

    def record_sandbox_poll(self, sandbox: str, strategy: str, seconds: float, ok: bool, now: float) -> None:
        """One cycle's poll of a sandbox ended; `ok`: every flow was polled without error."""
        state = self.sandboxes.setdefault(sandbox, SandboxState())
        state.strategy, state.poll_duration = strategy, seconds
        if ok:
            state.last_success = now

    # --- the state file ---------------------------------------------------------------------------

    def restore(self, flows: Iterable[FlowState], last_success: Mapping[str, float]) -> None:
        """Take flows and sandbox times read from the state file (all of them, or none: the
        caller builds every record before handing them over)."""
        for f in flows:
            self.flows[(f.sandbox, f.flow_id)] = f
            self.sandboxes.setdefault(f.sandbox, SandboxState())
        for name, t in last_success.items():
            if name in self.sandboxes:
                self.sandboxes[name].last_success = t

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
        state.last_run = latest(runs)

        completed = [r for r in current.values() if r.completed]
        if state.last_completed is not None and state.last_completed.run_id not in current:
            completed.append(state.last_completed)
        state.last_completed = latest(completed)

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

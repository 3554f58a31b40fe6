"""The run ledger: which runs were seen, which finished, and what the counters add up to.

Exactly-once rule, per flow:
- the first successful poll is the *baseline*: runs already completed are remembered without
  being counted (counters start at 0, a restart is no burst of runs); runs in flight as in flight;
- after that, a run is counted the first time it is seen completed, whether it is new or was in
  flight before, and never again (pagination overlap, retries and status changes after completion
  cannot recount it);
- a run is forgotten only once it is older than the lookback window, which the poller never asks
  the API about again, so it cannot come back to be counted twice;
- a baseline cut short by a next link: only newer runs and those seen in flight count (cut.py).

A poll applies all of a flow's runs in one synchronous call, so a scrape (which runs on the same
event loop) never sees half a poll.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from exporter.adobe.models import Flow
from exporter.adobe.runfacts import RunFacts
from exporter.ledger.cut import counts_after_cut, next_horizon
from exporter.ledger.discovery import DiscoveryRecords
from exporter.ledger.history import last_counted, past_run, with_runs
from exporter.ledger.records import (
    FlowState,
    SandboxState,
    SeenRun,
    SpecName,
    Totals,
    cap_codes,
    forget_past,
    fresh_runs,
    order_time,
    quiet,
    rendered,
    update_last,
    update_seen_summaries,
)


class Ledger(DiscoveryRecords):
    """All flows' and sandboxes' accounting state. The fetch strategies and the poller change it
    only through these methods; collectors, the state file and the status page read it."""

    def __init__(self, max_error_codes_per_flow: int = 50, runs_per_flow: int = 50) -> None:
        self.flows: dict[tuple[str, str], FlowState] = {}
        self.sandboxes: dict[str, SandboxState] = {}
        self.max_error_codes_per_flow = max_error_codes_per_flow
        self.runs_per_flow = runs_per_flow  # completed runs kept in each flow's history
        # While the state file cannot be written, counters are served as last saved: the totals
        # (and capped-code counts) of flows counted since then, as they were at that save.
        self.holding = False
        self._saved: dict[tuple[str, str], tuple[Totals, int]] = {}
        self.spec_names: dict[str, SpecName] = {}  # connection spec id (lower case) → name; see set_names
        self._counted_hook: Callable[[FlowState, RunFacts], None] | None = None  # see on_counted

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
            retired = self.flows.pop(key)
            if key[0] in self.sandboxes:
                self.sandboxes[key[0]].codes_capped_retired += self.served_codes_capped(retired)
            self._saved.pop(key, None)
        names = {s for s, _ in keep} | set(sandboxes)
        for name in [s for s in self.sandboxes if s not in names]:
            del self.sandboxes[name]
        for name in names:
            self.sandboxes.setdefault(name, SandboxState())

    def set_max_error_codes(self, n: int) -> None:
        self.max_error_codes_per_flow = n

    def set_runs_per_flow(self, n: int) -> None:
        """Each flow's history keeps this many runs from its next completed run on."""
        self.runs_per_flow = n

    def take_discovered_metadata(self, sandbox: str, now: float) -> None:
        """The discovery listing carried each flow's metadata: watched flows take it from there
        (no GET /flows/{id} needed this cycle)."""
        state = self.sandboxes.get(sandbox)
        for flow in self.discovered(sandbox).values():
            watched = self.flows.get((sandbox, flow.id))
            if watched is not None and state is not None and flow.id not in state.discovery_misses:
                self.set_flow(watched, flow, now)

    # --- one flow's poll --------------------------------------------------------------------------

    def set_flow(self, state: FlowState, flow: Flow, now: float) -> None:
        if state.gone or state.flow != flow:
            state.version += 1
        state.flow, state.meta_fetched_at, state.gone = flow, now, False

    def mark_gone(self, state: FlowState) -> None:
        """404 on the flow: its series leave /metrics; its accounting is kept should it return."""
        if not state.gone or state.up:
            state.version += 1
        state.gone, state.up, state.meta_fetched_at = True, False, None

    def mark_down(self, state: FlowState) -> None:
        """A failed poll: keep the last good values, flag the flow as down."""
        if state.up:
            state.version += 1
        state.up = False

    def on_counted(self, hook: Callable[[FlowState, RunFacts], None]) -> None:
        """From now on, tell `hook` of each run as it is counted (the events intake: which runs
        polling found before Adobe announced them). One hook: a second replaces the first."""
        self._counted_hook = hook

    def apply_runs(
        self,
        state: FlowState,
        runs: Iterable[RunFacts],
        window_start: float,
        complete: bool = True,
        listed_until: float | None = None,
        cut: bool = False,
        newest_returned: float | None = None,
    ) -> int:
        """Apply one poll of a flow. `complete`: `runs` are every run created after `window_start`
        (the per-flow strategy, and any first poll); otherwise they are what changed: runs created
        since the last listing, and the runs in flight looked up again (the batched strategy).
        Both count each completed run once; `cut`: a next link ended the listing early (cut.py;
        `newest_returned`: the poll's newest createdAt, if it was not newest first). Returns how many runs were counted now."""
        if not complete and state.baselined and state.up and quiet(state, runs, window_start):
            if listed_until is not None:
                state.listed_until = listed_until
            return 0
        before = rendered(state)
        current = fresh_runs(state, runs)
        counted, seen_changed = self._count(state, current)
        seen_changed |= forget_past(state, current, window_start, complete)
        update_last(state, current)
        update_seen_summaries(state)
        if state.last_completed is not None:
            state.last_completed = cap_codes(state, state.last_completed, self.max_error_codes_per_flow)[0]
        state.cut_horizon = next_horizon(state, current, complete, cut, newest_returned)
        state.baselined = True
        state.up = True
        if counted or seen_changed or rendered(state) != before:
            state.version += 1
        if listed_until is not None:
            state.listed_until = listed_until
        return counted

    def _count(self, state: FlowState, current: dict[str, RunFacts]) -> tuple[int, bool]:
        """The exactly-once rule: each run seen completed for the first time is counted (after the
        baseline) and remembered as completed; runs in flight are remembered as in flight.
        Each run seen completed for the first time (baseline included) joins the flow's history.
        Returns how many were counted, and whether `seen` changed (the state file keeps it)."""
        counted = 0
        seen_changed = False
        done = []
        for r in current.values():
            prev = state.seen.get(r.run_id)
            if prev is not None and prev.completed:
                continue
            if r.completed:
                done.append(past_run(r))
                state.totals.note_reported(r)
                if state.baselined and counts_after_cut(state, r, prev):
                    self._add(state, r)
                    counted += 1
            now_seen = SeenRun(r.completed, order_time(r), r.status)
            if now_seen != prev:
                state.seen[r.run_id] = now_seen
                seen_changed = True
        if done:
            state.history = with_runs(state.history, done, self.runs_per_flow)
        return counted, seen_changed

    def _add(self, state: FlowState, run: RunFacts) -> None:
        """One completed run into the flow's counters (its error codes capped), and its hook told."""
        self._keep_saved(state)
        capped, dropped = cap_codes(state, run, self.max_error_codes_per_flow)
        state.totals.add(capped)
        state.codes_capped += dropped
        state.last_counted = last_counted(state.last_counted, run)
        if self._counted_hook is not None:
            self._counted_hook(state, run)

    def forget_in_flight(self, state: FlowState, run_ids: Iterable[str]) -> int:
        """Runs in flight that Adobe no longer has (a lookup by ID answered without them: deleted)
        leave in-flight; they were never counted, and should one come back completed it is
        counted then, once. Completed runs are never forgotten here. Returns how many left."""
        gone = [r for r in run_ids if (seen := state.seen.get(r)) is not None and not seen.completed]
        for run_id in gone:
            del state.seen[run_id]
        if gone:
            update_seen_summaries(state)
            state.version += 1
        return len(gone)

    # --- counters as saved ------------------------------------------------------------------------

    def _keep_saved(self, state: FlowState) -> None:
        """Before a flow's counters change for the first time since the last save: keep them as
        they were saved, to be served while saving fails."""
        key = (state.sandbox, state.flow_id)
        if key not in self._saved:
            self._saved[key] = (state.totals.copy(), state.codes_capped)

    def saved(self, ok: bool) -> None:
        """The state file was written (ok) or could not be (not ok: counters are then served as
        last saved, so a restart can never make one go down; gauges go on updating)."""
        if ok == self.holding:  # served counters move between the saved ones and the live ones
            for key in self._saved:
                if key in self.flows:
                    self.flows[key].version += 1
        self.holding = not ok
        if ok:
            self._saved.clear()

    def served_totals(self, state: FlowState) -> Totals:
        kept = self._saved.get((state.sandbox, state.flow_id)) if self.holding else None
        return kept[0] if kept is not None else state.totals

    def served_codes_capped(self, state: FlowState) -> int:
        kept = self._saved.get((state.sandbox, state.flow_id)) if self.holding else None
        return kept[1] if kept is not None else state.codes_capped

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

    def restore(
        self, flows: Iterable[FlowState], last_success: Mapping[str, float], capped_retired: Mapping[str, int] = {}
    ) -> None:
        """Take flows and sandbox records read from the state file (all of them, or none: the
        caller builds every record before handing them over)."""
        for f in flows:
            self.flows[(f.sandbox, f.flow_id)] = f
            self.sandboxes.setdefault(f.sandbox, SandboxState())
        for name, t in last_success.items():
            if name in self.sandboxes:
                self.sandboxes[name].last_success = t
        for name, n in capped_retired.items():
            if name in self.sandboxes:
                self.sandboxes[name].codes_capped_retired = n

    # --- names people read (exporter/fetch/names.py) ----------------------------------------------

    def record_spec_names(self, names: Mapping[str, str | None], now: float) -> None:
        """Connection spec names Adobe answered (id → name), cached for a day (state file too)."""
        for spec_id, name in names.items():
            self.spec_names[spec_id.lower()] = SpecName(name, now)

    def restore_spec_names(self, entries: Mapping[str, SpecName]) -> None:
        """The name cache as the state file had it (each with its own age)."""
        self.spec_names.update({k.lower(): v for k, v in entries.items()})

    def set_names(
        self,
        state: FlowState,
        source: str | None,
        target: str | None,
        dataset_id: str | None,
        at: float | None,
        dataset_name: str | None = None,
    ) -> None:
        """The flow's connector names and dataset (its Catalog name too), resolved for its metadata
        of `at`. Decoration: nothing counted depends on them."""
        names = (source, target, dataset_id, dataset_name)
        if (state.source_name, state.target_name, state.dataset_id, state.dataset_name) != names:
            state.version += 1
        state.source_name, state.target_name, state.dataset_id, state.dataset_name = names
        state.names_at = at

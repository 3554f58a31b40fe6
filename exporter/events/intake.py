"""Announced runs → the ledger, exactly once, beside polling.

An announced run enters the ledger the way a batched poll's changes do: `apply_runs(…,
complete=False)` applies it without dropping the flow's other runs, and the ledger's own rule (a
run is counted the first time it is seen completed, never again) makes a second announcement, an
announcement after the poll found the run, or a poll after the announcement count nothing.
Announcements for flows not watched, flows not yet baselined (their first poll is the baseline, as
without events), runs not finished and runs older than lookback are ignored. No announcement costs
a Flow Service request.

The intake also keeps what decides the poll interval (`poll_interval`): while events show signs of
life (an event, a journal read, within `quiet_after`) and no sweep has found a run they missed
within as long, polling is the slow sweep of `sweep_interval`; otherwise it is `poll_interval`
again. A run a sweep counted is *missed* once `announce_grace` passes without its announcement.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

from exporter.adobe.runfacts import RunFacts, run_facts
from exporter.config import Config, EventsConfig
from exporter.events.envelope import Announcement
from exporter.events.metrics import EventMetrics
from exporter.ledger.ledger import Ledger
from exporter.ledger.records import FlowState
from exporter.support.logs import fields

log = logging.getLogger(__name__)

MAX_PENDING = 100_000  # sweep-counted runs awaiting their announcement, at most


class Intake:
    def __init__(
        self, config: Config, ledger: Ledger, metrics: EventMetrics, clock: Callable[[], float] = time.time
    ) -> None:
        assert config.events is not None
        self.config = config
        self.ledger = ledger
        self.metrics = metrics
        self.clock = clock
        self._index: dict[str, tuple[str, str]] = {}  # lower-case flow id → ledger key
        self._index_size = -1
        self._announcing = False
        self._pending: dict[str, tuple[str, float]] = {}  # run id → (sandbox, deadline) of sweep-counted runs
        self._early: dict[str, None] = {}  # runs announced before their flow's baseline (oldest first)
        self._life: dict[str, float] = {}  # source → last sign of life
        self._last_missed: float | None = None
        self.on_change: Callable[[], None] = lambda: None  # a metric changed: /metrics is rendered again
        ledger.on_counted(self._polled)

    @property
    def events(self) -> EventsConfig:
        assert self.config.events is not None
        return self.config.events

    # --- announcements ---------------------------------------------------------------------------

    def take(self, source: str, announcements: Iterable[Announcement]) -> list[str]:
        """Apply these announcements (one synchronous call: a scrape or a state save never sees
        half of them); returns each one's outcome."""
        now = self.clock()
        outcomes = [self._one(a, now) for a in announcements]
        for outcome in outcomes:
            self.metrics.received.labels(source, outcome).inc()
        if outcomes:
            self.metrics.last_received.labels(source).set(now)
        if "counted" in outcomes:
            log.info("%d run(s) counted as the %s announced them", outcomes.count("counted"), source)
        if outcomes:
            self.on_change()
        self.alive(source)
        return outcomes

    def reject(self, source: str, n: int = 1) -> None:
        """A push that failed its checks, or a journal entry that cannot be read."""
        self.metrics.received.labels(source, "rejected").inc(n)
        self.on_change()

    def _one(self, a: Announcement, now: float) -> str:
        if a.run is None or a.run.flow_id is None:
            return "ignored"
        key = self._flow_key(a.run.flow_id, a.sandbox)
        state = self.ledger.flows.get(key) if key is not None else None
        if state is None or state.gone:
            return "ignored"
        if not state.baselined:
            self._early[a.run.id] = None  # announced before the baseline: not "missed" when a sweep counts it
            while len(self._early) > MAX_PENDING:
                self._early.pop(next(iter(self._early)))
            return "ignored"
        facts = run_facts(a.run)
        window_start = now - self.config.lookback
        if not facts.completed or facts.order_time is None or facts.order_time <= window_start:
            return "ignored"
        self._pending.pop(facts.run_id, None)  # announced: not missed, whoever counted it
        prev = state.seen.get(facts.run_id)
        if prev is not None and prev.completed:
            return "duplicate"
        return "counted" if self._apply(state, facts, window_start) else "duplicate"

    def _apply(self, state: FlowState, facts: RunFacts, window_start: float) -> int:
        was_up = state.up
        self._announcing = True
        try:
            counted = self.ledger.apply_runs(state, [facts], window_start, complete=False)
        finally:
            self._announcing = False
        if not was_up:  # an announcement says nothing of whether the flow's last poll worked
            self.ledger.mark_down(state)
        if counted:
            log.debug(
                "run %s counted as announced (%s)",
                facts.run_id,
                facts.status,
                extra=fields(sandbox=state.sandbox, flow_id=state.flow_id),
            )
        return counted

    def _flow_key(self, flow_id: str, sandbox: str | None) -> tuple[str, str] | None:
        """The watched flow's ledger key: flow IDs are unique across sandboxes, so the sandbox
        name only confirms; an index by lower-case ID is rebuilt when the watched set changes."""
        if sandbox is not None and (sandbox, flow_id) in self.ledger.flows:
            return (sandbox, flow_id)
        if len(self.ledger.flows) != self._index_size or flow_id.lower() not in self._index:
            self._index = {f.lower(): (s, f) for s, f in self.ledger.flows}
            self._index_size = len(self.ledger.flows)
        key = self._index.get(flow_id.lower())
        if key is None or (sandbox is not None and sandbox != key[0]):
            return None
        return key

    # --- what polling found ------------------------------------------------------------------------

    def _polled(self, state: FlowState, facts: RunFacts) -> None:
        """The ledger counted a run: if a poll did, its announcement has `announce_grace` to come."""
        if self._announcing or len(self._pending) >= MAX_PENDING:
            return
        if facts.run_id in self._early:  # its announcement came, before the flow's baseline
            del self._early[facts.run_id]
            return
        self._pending[facts.run_id] = (state.sandbox, self.clock() + self.events.announce_grace)

    def count_missed(self) -> int:
        """Runs whose announcement did not come in time are missed; returns how many now."""
        now = self.clock()
        due = [(run_id, sandbox) for run_id, (sandbox, deadline) in self._pending.items() if deadline <= now]
        for run_id, sandbox in due:
            del self._pending[run_id]
            self.metrics.missed.labels(sandbox).inc()
        if due:
            self.on_change()
            self._last_missed = now
            log.warning(
                "a polling sweep found %d run(s) no event announced: polling every %gs for now",
                len(due),
                self.config.poll_interval,
            )
        return len(due)

    # --- the poll interval -------------------------------------------------------------------------

    def alive(self, source: str) -> None:
        """The source works (an event arrived, or the journal answered)."""
        self._life[source] = self.clock()

    def flowing(self) -> bool:
        now = self.clock()
        last = max(self._life.values(), default=None)
        if last is None or now - last > self.events.quiet_after:
            return False
        return self._last_missed is None or now - self._last_missed >= self.events.quiet_after

    def poll_interval(self) -> float:
        """The sweep's interval while events flow, the configured poll interval otherwise."""
        base = self.config.poll_interval
        return max(base, self.events.sweep_interval) if self.flowing() else base

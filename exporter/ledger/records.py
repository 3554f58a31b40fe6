"""The records the ledger keeps, per flow and per sandbox, and the rules one poll applies to a
flow's record (which runs are fresh, which leave the window, the latest runs, capped error codes).

These are plain data and pure functions. Only exporter.ledger.ledger.Ledger changes the records
(exporter.ledger.codec builds them from the state file before handing them to the ledger);
collectors, the status page and the state file read them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from exporter.adobe.fields import FACTS
from exporter.adobe.models import Flow
from exporter.adobe.runfacts import RunFacts
from exporter.ledger.history import EMPTY, LastCounted, RunHistory

OTHER_CODE = "other"  # the label value of error codes past a flow's cap
DURATION_BUCKETS = (10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800, 86400)


_INTERNED: dict[frozenset[str], frozenset[str]] = {}
INTERNED_MAX = 4096


def interned(names: frozenset[str]) -> frozenset[str]:
    """One shared object per set of names: the sums a flow reported, the statuses it has seen (a
    handful of sets in use, shared by thousands of flows). Bounded, should Adobe invent statuses."""
    if len(_INTERNED) >= INTERNED_MAX:
        return _INTERNED.get(names, names)
    return _INTERNED.setdefault(names, names)


@dataclass(slots=True)
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
    # Interned: most flows report the same few sums, and 10,000 sets of them took 5 MB.
    reported: frozenset[str] = frozenset()

    def copy(self) -> Totals:
        return Totals(
            dict(self.runs),
            dict(self.sums),
            dict(self.run_errors),
            dict(self.error_records),
            list(self.duration_buckets),
            self.duration_sum,
            self.duration_count,
            self.reported,
        )

    def note_reported(self, run: RunFacts) -> None:
        if not self.reported.issuperset(run.counts):
            self.reported = interned(self.reported.union(run.counts))

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


@dataclass(slots=True)
class FlowState:
    sandbox: str
    flow_id: str
    flow: Flow | None = None
    meta_fetched_at: float | None = None
    up: bool = False
    gone: bool = False
    baselined: bool = False
    # Baselined by a listing a next link cut short: the newest createdAt it held (or, if its
    # runs were not newest first, the poll held; Adobe's clock; inf if none). A completed run
    # first seen later and created no later than that may be one of the pages it lacked, from
    # before the baseline, and is not counted; runs seen in flight and newer ones are (cut.py).
    # None once a listing of the whole window came. Kept in the state file.
    cut_horizon: float | None = None
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
    # Only moves forward: the newest time of a run forgotten because it left the lookback window.
    # A run at or before it is never counted again, whatever lookback or the clock do later.
    horizon: float | None = None
    # Names people read (exporter/fetch/names.py): the source and target connectors' names and the
    # dataset a source flow writes to; None until resolved. `names_at` is the meta_fetched_at they
    # were resolved for: a metadata refresh makes them due again.
    source_name: str | None = None
    target_name: str | None = None
    dataset_id: str | None = None
    names_at: float | None = None
    dataset_name: str | None = None
    # The latest completed runs, oldest first, packed (exporter/ledger/history.py): replaced whole
    # when runs complete, never changed in place.
    history: RunHistory = EMPTY
    last_counted: LastCounted | None = None  # not in the state file: no exemplar until a run is counted
    # Bumped by the Ledger whenever it changes something the collectors, the status page or the
    # state file read: they keep each flow's lines, row and saved entry, and make them again only
    # when this moved (exporter/exposition/families.py and status_page.py, exporter/ledger/store.py).
    # A new field they read must bump it too (tests/unit/test_render.py checks the exposition after each
    # kind of change).
    version: int = 0
    # (sandbox, flow_id), made once: the caches keyed by flow (render, status rows, state file)
    # use this tuple rather than a new one per flow and cycle, which the collector would track.
    key: tuple[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.key = (self.sandbox, self.flow_id)

    @property
    def visible(self) -> bool:
        """Whether the flow's own series belong on /metrics: polled once, and not gone."""
        return self.baselined and not self.gone


@dataclass(frozen=True, slots=True)
class SpecName:
    """A connection spec's name as Adobe last gave it, and when (wall clock: the cache outlives a
    restart in the state file)."""

    name: str | None
    fetched_at: float


@dataclass(slots=True)
class SandboxState:
    last_success: float | None = None
    poll_duration: float | None = None
    discovery_success: float | None = None
    strategy: str | None = None  # fetch strategy in use: batched, or per_flow
    batch_fallbacks: int = 0  # times Adobe refused a batched query (400) and per_flow took over
    # Flows discovery found (id → metadata), and when discovery last listed the sandbox.
    discovered: dict[str, Flow] = field(default_factory=dict)
    discovered_at: float | None = None
    # Consecutive discovery listings each discovered flow was missing from (kept through
    # discovery_grace of them before it retires).
    discovery_misses: dict[str, int] = field(default_factory=dict)
    # What flows retired from the sandbox had added to aep_exporter_error_codes_capped_total, so
    # the sum never goes down.
    codes_capped_retired: int = 0


def order_time(r: RunFacts) -> float | None:
    """createdAt, else startedAtUTC, else updatedAt; `created` for run facts read from a state file
    that lacks `order_time`."""
    return r.order_time if r.order_time is not None else r.created


def latest(candidates: Iterable[RunFacts]) -> RunFacts | None:
    """The run that happened last (models.Run.order_time; a run with no time counts as oldest)."""
    best: RunFacts | None = None
    for r in candidates:
        if best is None or (order_time(r) or 0) > (order_time(best) or 0):
            best = r
    return best


def update_last(state: FlowState, current: dict[str, RunFacts]) -> None:
    """The latest run, latest completed run and last success, from one poll's runs and what was known."""
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


def fresh_runs(state: FlowState, runs: Iterable[RunFacts]) -> dict[str, RunFacts]:
    """One poll's runs by ID, less those at or before the flow's horizon (forgotten once already:
    never counted again). Pages can overlap: the last copy of a run is as fresh as any."""
    current: dict[str, RunFacts] = {}
    for r in runs:
        t = order_time(r)
        if state.horizon is None or t is None or t > state.horizon:
            current[r.run_id] = r
    return current


def forget_past(state: FlowState, current: dict[str, RunFacts], window_start: float, complete: bool) -> bool:
    """Forget the runs older than the window (never asked for again), moving the flow's horizon
    forward past them. A complete view also drops runs in flight that Adobe no longer lists
    (deleted): should one come back completed, it is new, and counted once. Returns whether any
    run was forgotten."""
    past = [
        k
        for k, v in state.seen.items()
        if k not in current and (v.created is None or v.created <= window_start or (complete and not v.completed))
    ]
    for run_id in past:
        gone = state.seen.pop(run_id)
        if gone.created is not None and gone.created <= window_start:
            state.horizon = gone.created if state.horizon is None else max(state.horizon, gone.created)
    return bool(past)


def quiet(state: FlowState, runs: Iterable[RunFacts], window_start: float) -> bool:
    """A poll that changes nothing: no runs, and none of the flow's runs left the window. Most
    flows, most cycles: the cost of a steady cycle then follows the flows that changed."""
    if not isinstance(runs, (list, tuple)) or runs:
        return False
    return all(v.created is not None and v.created > window_start for v in state.seen.values())


def update_seen_summaries(state: FlowState) -> None:
    """Runs in flight and statuses seen within lookback, from the ledger's memory rather than
    from one poll's answer (which, batched, holds only what changed)."""
    flying = [v.created for v in state.seen.values() if not v.completed and v.created is not None]
    state.in_flight = len(flying)
    state.oldest_in_flight = min(flying) if flying else None
    statuses = {v.status for v in state.seen.values() if v.status}
    if state.last_run is not None:
        statuses.add(state.last_run.status)
    if statuses != state.statuses:
        state.statuses = interned(frozenset(statuses))


def cap_codes(state: FlowState, run: RunFacts, cap: int) -> tuple[RunFacts, int]:
    """The run with error codes past the flow's cap renamed "other" (codes are label values:
    a source that puts a record ID into its codes must not blow up the series count)."""
    mapping: dict[str, str] = {}
    for code in sorted(run.error_codes):
        if code in state.codes or len(state.codes) < cap:
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
    return replace(run, error_codes=frozenset(mapping.values()), error_records=tuple(sorted(records.items()))), dropped


def rendered(state: FlowState) -> tuple:
    """What of a flow the collectors read, besides the totals (which change only when a run is
    counted, or when a run reports a sum for the first time) and `seen`: a poll that changes none
    of it leaves the flow's exposition lines, status row and state file entry as they were."""
    return (
        state.last_run,
        state.last_completed,
        state.last_success,
        state.in_flight,
        state.oldest_in_flight,
        state.statuses,
        state.up,
        state.baselined,
        len(state.totals.reported),
    )

"""What the fetching has learned about this organisation's Flow Service, per sandbox.

Adobe documents neither page sizes, token lengths, whether comma lists are honoured for `flowId`,
whether `createdAt>` is honoured on /runs, nor whose clock `createdAt` is on. The batched strategy
checks every answer against its question and records here what it found; the poller chooses the
strategy from it, `--check` prints it, and the adaptation self-metrics are read from it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from exporter.support.logs import fields

log = logging.getLogger(__name__)

BATCH_IDS = 100  # IDs per request at most, whatever the URL budget allows


@dataclass
class Capabilities:
    """One sandbox's findings. Times are our monotonic clock (never compared with Adobe's)."""

    lists: str = "unknown"  # ok | refused | literal (a 200 that answered as if the list were one ID)
    created_filter: str = "unknown"  # ok | ignored
    orderby: str = "unknown"  # ok | ignored
    # IDs per request, by listing ("flows", "runs" by flow, "ids" of runs); halved when a request
    # line of that listing was too long, grown back while they fit.
    chunk_limits: dict[str, int] = field(default_factory=dict)
    fallback: str | None = None  # why the sandbox is polled per flow although batched is configured
    fallback_since: float | None = None
    ignored: dict[tuple[str, str], int] = field(default_factory=dict)  # (endpoint, filter) → answers
    canary_disagreements: int = 0
    reconciled_runs: int = 0  # runs a reconciliation found that the regular listings had missed
    canary_turn: int = 0
    lateness: float = 0.0  # worst seen: how long after a newer run of its flow a run was listed
    last_reconcile: float | None = None
    # Names (names.py): endpoints whose `id==a,b` lists were refused or misread here (asked one ID
    # at a time since), and lookups failing now (logged once, when they start failing).
    names_one_by_one: set[str] = field(default_factory=set)
    names_failing: set[str] = field(default_factory=set)
    # Catalog's dataset names (lower-case ID → (name, when asked)), asked again after a day; a
    # dataset Catalog no longer has is remembered as nameless.
    dataset_names: dict[str, tuple[str | None, float]] = field(default_factory=dict)

    def filter_ignored(self, sandbox: str, endpoint: str, name: str) -> None:
        """An answer held items its filter `name` should have excluded: Adobe ignored it."""
        key = (endpoint, name)
        if key not in self.ignored:
            log.warning(
                "Adobe ignored the filter %s on /%s: filtering on our side from now on",
                name,
                endpoint,
                extra=fields(sandbox=sandbox, endpoint=endpoint),
            )
        self.ignored[key] = self.ignored.get(key, 0) + 1
        if name == "createdAt":
            self.created_filter = "ignored"

    def fall_back(self, sandbox: str, reason: str, why: str) -> None:
        """Poll the sandbox flow by flow until batch_retry_interval has passed."""
        if self.fallback is None:
            log.warning("%s: polling the sandbox's flows one by one for now", why, extra=fields(sandbox=sandbox))
        self.fallback, self.fallback_since = reason, time.monotonic()

    def batching_allowed(self, sandbox: str, retry_after: float) -> bool:
        """False while a fallback holds; once batch_retry_interval has passed, batching is tried
        again (one refusal must not cost 50x the requests for days)."""
        if self.fallback is None:
            return True
        assert self.fallback_since is not None
        if time.monotonic() - self.fallback_since < retry_after:
            return False
        log.info("trying batched listings again (fell back because: %s)", self.fallback, extra=fields(sandbox=sandbox))
        self.fallback = self.fallback_since = None
        self.lists = "unknown"
        return True

    @property
    def chunk_limit(self) -> int:
        """The smallest of the listings' limits (the self-metric)."""
        return min(self.chunk_limits.values(), default=BATCH_IDS)

    def limit(self, kind: str) -> int:
        return self.chunk_limits.get(kind, BATCH_IDS)

    def shrink(self, kind: str, refused: int) -> None:
        """A request of `refused` IDs was too long: at most half as many a request from now on
        (however many chunks were refused at once, the limit follows their size, not their number)."""
        self.chunk_limits[kind] = max(1, min(self.limit(kind), refused // 2))

    def restore_limit(self, kind: str, limit: int) -> None:
        """Refusals that halved a listing's limit turned out to be of lists, not of sizes: the
        limit is what it was before them."""
        self.chunk_limits[kind] = limit

    def regrow_limits(self, shrunk: set[str]) -> None:
        """After a cycle: a limit halved for long continuation pages (deep listings: the first
        one, reconciliations) grows back while the listings fit, so steady cycles, which are mostly
        one page, keep their 100 IDs a request."""
        for kind, n in list(self.chunk_limits.items()):
            if kind not in shrunk and n < BATCH_IDS:
                self.chunk_limits[kind] = min(BATCH_IDS, n * 2)

    def saw_late(self, seconds: float) -> None:
        self.lateness = max(self.lateness, seconds)

    def overlap(self, configured: float) -> float:
        """How far before a flow's newest run its next listing reaches: twice the worst lateness
        seen, at most `batch_overlap`. Runs are listed in the order they were created as long as
        none is seen late, and then the newest run need not be listed again every cycle (with
        Adobe's pages of 20, that alone would be a request per 20 flows); a run listed out of order
        is found by the reconciliation, counted once, and widens the overlap."""
        return min(configured, 2 * self.lateness)

    def reconcile_due(self, interval: float) -> bool:
        """Whether this cycle reconciles (lists the whole lookback window); if so, the next one
        is due `interval` from now."""
        now = time.monotonic()
        if self.last_reconcile is None or now - self.last_reconcile >= interval:
            self.last_reconcile = now
            return True
        return False

    def reconcile_next(self) -> None:
        """The next cycle reconciles, however recent the last reconciliation."""
        self.last_reconcile = None

"""Each flow's recent completed runs: what the flow page shows, bounded per flow.

At 10,000 flows and 50 runs each, half a million runs live in memory, packed (packed.py: 51
bytes a run, ~2.6 KB a flow). A flow's history is an immutable value the ledger replaces when runs
complete, so the last render step's views (exposition/flow_page.py) hold on to the one they were
taken from while the ledger moves on. Replacing the whole packed history at each completion made
every changed flow's history exist twice until the next render step took new views: after a
restart, the baseline cycle changes every flow, and at 10,000 full histories that was 35 MB more
at the peak. So a history has two parts: `base`, runs packed once, of which the oldest `hidden`
are past the bound, and `recent`, the runs completed since, packed after it. Adding runs copies
only `recent`; the two are merged into a new base once `recent` holds about MERGE_AT runs (or the
bound reaches into it). Flows on one schedule restarted together would reach that in the same cycle
and hold every merged history twice again, so each history picks its merge point anew after each
merge (`merge_point`).
`unpack` gives `PastRun`s, made only for the flow a page shows.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import dataclass

from exporter.adobe.runfacts import RunFacts
from exporter.ledger.packed import PastRun, offsets, pack, pack_one, read_one, uuid_of

__all__ = ["EMPTY", "LastCounted", "PastRun", "RunHistory", "last_counted", "pack", "past_run", "unpack", "with_runs"]

MERGE_AT = 8  # runs in `recent` that make a new base, on average: ≤ 11 runs copied on most completions
MERGE_MAX = MERGE_AT // 2 + MERGE_AT - 1  # the latest merge point: fewer runs than this past the bound stored


def merge_point(recent: bytes) -> int:
    """How many runs in `recent` make a new base: from MERGE_AT/2 to MERGE_MAX, picked by its
    first run, the first since the last merge (a random UUID mostly: another after each merge)."""
    return MERGE_AT // 2 + zlib.crc32(recent[:17]) % MERGE_AT


@dataclass(frozen=True, slots=True)
class RunHistory:
    """A flow's runs, oldest first: `base`'s after its first `hidden`, then `recent`'s."""

    base: bytes = b""
    hidden: int = 0
    recent: bytes = b""

    def __bool__(self) -> bool:
        return bool(self.recent) or len(offsets(self.base)) > self.hidden

    def packed(self) -> bytes:
        """The runs shown, packed in one piece (as the state file keeps them)."""
        starts = offsets(self.base)
        kept = self.base[starts[self.hidden] :] if self.hidden < len(starts) else b""
        return kept + self.recent if self.hidden else self.base + self.recent


EMPTY = RunHistory()


def of(runs: Iterable[PastRun]) -> RunHistory:
    return RunHistory(pack(runs))


@dataclass(frozen=True, slots=True)
class LastCounted:
    """The run counted last: the OpenMetrics exemplar of the flow's counters (exposition/exemplars.py)."""

    run_id: str
    status: str
    failed_records: int | None
    ended: float | None


def last_counted(last: LastCounted | None, run: RunFacts) -> LastCounted:
    """The run counted last, of `last` and `run` (runs counted in one poll: the one that ended last)."""
    if last is not None and last.ended is not None and run.ended is not None and run.ended < last.ended:
        return last
    return LastCounted(run.run_id, run.status, run.counts.get("failed_records"), run.ended)


def past_run(r: RunFacts) -> PastRun:
    created = r.created if r.created is not None else r.order_time
    return PastRun(
        r.run_id,
        created,
        r.started,
        r.ended,
        r.status,
        r.counts.get("input_records"),
        r.counts.get("output_records"),
        r.counts.get("failed_records"),
        r.counts.get("input_bytes"),
        r.error_messages or tuple((c, "") for c in sorted(r.error_codes)[:5]),
    )


def _records(h: RunHistory) -> list[tuple[bytes, int]]:
    """Where each run shown starts: (its part, offset), oldest first."""
    return [(h.base, i) for i in offsets(h.base)[h.hidden :]] + [(h.recent, i) for i in offsets(h.recent)]


def unpack(h: RunHistory, newest: int | None = None) -> list[PastRun]:
    """The runs of a history, oldest first; only the `newest` n if given."""
    found = _records(h)
    if newest is not None:
        found = found[max(0, len(found) - newest) :] if newest > 0 else []
    return [read_one(part, i) for part, i in found]


def with_runs(h: RunHistory, new: Iterable[PastRun], limit: int) -> RunHistory:
    """The history with these runs added (a run already in it is not added twice), the newest
    `limit` kept, oldest first."""
    new = list(new)
    appended = _appended(h, new, limit)
    if appended is not None:
        return appended
    runs = unpack(h)
    known = {r.run_id for r in runs}
    added = [r for r in new if r.run_id not in known]
    if not added and len(runs) <= limit:
        return h
    runs.extend(added)
    runs.sort(key=lambda r: r.when)
    return of(runs[-limit:]) if limit > 0 else EMPTY


def _appended(h: RunHistory, new: list[PastRun], limit: int) -> RunHistory | None:
    """The common case without decoding the history (the ledger does this on the event loop, for
    every flow whose runs completed: decoding, sorting and packing a full history took 0.7 ms,
    so 100 such flows between two yields stalled the loop for 70 ms): runs with UUIDs, none of
    them in the history, none older than its newest, packed after `recent`, the oldest hidden by
    the bound. None when that is not the case (with_runs then decodes, sorts and packs)."""
    if not new or not 0 < len(new) <= limit:
        return None
    base_at, recent_at = offsets(h.base), offsets(h.recent)
    last = (h.recent, recent_at[-1]) if recent_at else (h.base, base_at[-1]) if len(base_at) > h.hidden else None
    added = sorted(new, key=lambda r: r.when)
    if last is not None and added[0].when < read_one(*last).when:
        return None
    packed = [pack_one(r) for r in added]
    for p in packed:
        raw = uuid_of(p)
        if raw is None or h.base.find(raw) >= 0 or h.recent.find(raw) >= 0:
            return None  # maybe already kept (or found by chance in other bytes): decode to be sure
    recent = h.recent + b"".join(packed)
    in_recent = len(recent_at) + len(added)
    hidden = max(h.hidden, len(base_at) + in_recent - limit)
    if in_recent < merge_point(recent) and hidden <= len(base_at):
        return RunHistory(h.base, hidden, recent)
    merged = RunHistory(h.base, min(hidden, len(base_at)), recent).packed()
    starts = offsets(merged)
    return RunHistory(merged[starts[len(starts) - limit] :] if len(starts) > limit else merged)

"""Run JSON → numbers: small pure functions the ledger and the tests share.

`run_facts` reduces a parsed `Run` to exactly the values the metrics need, so the ledger can keep
one small frozen object per run instead of whole payloads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from exporter.adobe.fields import ACTIVITY_FIELDS, FACTS
from exporter.adobe.models import Run

IN_FLIGHT_STATUSES = ("scheduled", "queued", "pending", "inProgress")
COMPLETED_STATUSES = ("success", "failed", "cancelled", "partialSuccess", "partialFailure", "completed")
# Always exported in aep_flow_last_run_status, so a dashboard has a series for each from the start.
BASE_STATUSES = ("scheduled", "inProgress", "success", "failed")
UNKNOWN_STATUS = "unknown"


def _fold(s: str) -> str:
    return s.replace("_", "").replace("-", "").replace(" ", "").lower()


_CANONICAL = {_fold(s): s for s in (*IN_FLIGHT_STATUSES, *COMPLETED_STATUSES)}
_COMPLETED = frozenset(COMPLETED_STATUSES)


def canonical_status(raw: str | None) -> str:
    """Known statuses in Adobe's camelCase whatever their case ('Failed', 'IN_PROGRESS');
    unknown ones exactly as Adobe sent them; a missing status is 'unknown'."""
    if not raw:
        return UNKNOWN_STATUS
    return _CANONICAL.get(_fold(raw), raw)


def is_completed(status: str) -> bool:
    """Completed statuses end a run; anything else, including an unknown status, is in flight."""
    return status in _COMPLETED


class _Counts:
    """Attribute access to the counted fields (`facts.input_records`): a field of
    exporter.adobe.fields.RUN_FIELDS that was not reported reads as None."""

    __slots__ = ()  # the dataclasses below are slotted: no __dict__ per run
    counts: Mapping[str, int]

    def __getattr__(self, name: str) -> int | None:
        if name in FACTS:
            return self.counts.get(name)
        raise AttributeError(name)


@dataclass(frozen=True, slots=True)
class ActivityFacts(_Counts):
    name: str
    duration: float | None
    counts: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class RunFacts(_Counts):
    run_id: str
    created: float | None
    status: str
    completed: bool
    started: float | None
    ended: float | None
    duration: float | None
    counts: Mapping[str, int]  # the reported values of the fields of RUN_FIELDS
    error_codes: frozenset[str]
    error_records: tuple[tuple[str, int], ...]
    window_end: float | None
    activities: tuple[ActivityFacts, ...]
    # createdAt, else durationSummary.startedAtUTC, else updatedAt (models.Run.order_time): what
    # orders runs and places them in the lookback window when a run has no createdAt. Defaulted so
    # RunFacts saved by an older version (state.py) still load.
    order_time: float | None = None
    # (code, message) of the run's errors, messages cut to MESSAGE_MAX, at most ERRORS_MAX: what
    # the flow page shows. Not in the state file's last runs (the run history keeps them).
    error_messages: tuple[tuple[str, str], ...] = ()


MESSAGE_MAX = 300  # characters of an error message kept
ERRORS_MAX = 5  # error entries kept per run


def duration(started: float | None, ended: float | None) -> float | None:
    if started is None or ended is None or ended < started:
        return None
    return round(ended - started, 6)


def error_codes(run: Run) -> frozenset[str]:
    """Every code reported anywhere in the run: run level and each activity, errors and extensions."""
    codes = {e.code for e in run.summary.errors}
    for act in run.activities:
        codes.update(e.code for e in act.summary.errors)
    return frozenset(codes)


def error_records(run: Run) -> dict[str, int]:
    """Records per error code: summed over the activities that report a `recordCount` for it, or
    the run level's where no activity does. A code listed twice in one place (errors and
    extensions.errors) is one error described twice, so within one place the larger count wins."""
    per_activity: dict[str, int] = {}
    for act in run.activities:
        here: dict[str, int] = {}
        for e in act.summary.errors:
            if e.record_count is not None:
                here[e.code] = max(here.get(e.code, 0), e.record_count)
        for code, n in here.items():
            per_activity[code] = per_activity.get(code, 0) + n
    result = dict(per_activity)
    for e in run.summary.errors:
        if e.record_count is not None and e.code not in per_activity:
            result[e.code] = max(result.get(e.code, 0), e.record_count)
    return result


def error_messages(run: Run) -> tuple[tuple[str, str], ...]:
    """The run's first errors with their messages (run level, then activities), each code once."""
    found: dict[str, str] = {}
    for e in (*run.summary.errors, *(e for a in run.activities for e in a.summary.errors)):
        if e.code not in found and len(found) < ERRORS_MAX:
            found[e.code] = (e.message or "")[:MESSAGE_MAX]
    return tuple(found.items())


def window_end(run: Run) -> float | None:
    """The latest ingestion window end: activities' durationSummary.extensions.windowEnd and the
    run's params.windowEndTime (on-demand runs)."""
    ends = [a.summary.window_end for a in run.activities if a.summary.window_end is not None]
    if run.summary.window_end is not None:
        ends.append(run.summary.window_end)
    if run.window_end_param is not None:
        ends.append(run.window_end_param)
    return max(ends) if ends else None


def run_facts(run: Run) -> RunFacts:
    s = run.summary
    status = canonical_status(s.status)
    return RunFacts(
        run_id=run.id,
        created=run.created,
        status=status,
        completed=is_completed(status),
        started=s.started,
        ended=s.completed,
        duration=duration(s.started, s.completed),
        counts=dict(s.counts),
        error_codes=error_codes(run),
        error_records=tuple(sorted(error_records(run).items())),
        window_end=window_end(run),
        activities=tuple(
            ActivityFacts(
                name=a.name,
                duration=duration(a.summary.started, a.summary.completed),
                counts={f.fact: a.summary.counts[f.fact] for f in ACTIVITY_FIELDS if f.fact in a.summary.counts},
            )
            for a in run.activities
        ),
        order_time=run.order_time,
        error_messages=error_messages(run),
    )

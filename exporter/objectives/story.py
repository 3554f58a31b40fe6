"""What the generated rules should do to one flow's series, worked out here so that promtool can check it.

A `Scenario` is one flow's story minute by minute (runs and failed runs, or its data's age);
`fires` says which workbook pairs alert at the story's end, for one objective. The rules are
evaluated every EVAL minutes under test (a freshness SLI is recorded only then), the input is
sampled every minute. A story whose verdict would change between Prometheus' two ways of bounding
a range (2.x takes the sample at the range's start, 3.x does not), or with a ratio within 5% of
a limit, is a close call: `fires` answers None, and the cases are built from other stories.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from exporter.objectives.model import FRESHNESS, Objective
from exporter.objectives.windows import PAIRS, Pair, actual

STEP = 60  # seconds between input samples
EVAL = 15  # steps between rule evaluations under test (the freshness SLI's samples)


@dataclass
class Scenario:
    kind: str
    runs: list[float] = field(default_factory=list)  # run_success: runs completed at each step
    bad: list[float] = field(default_factory=list)  # failed runs at each step, or the data's age (seconds)
    title: str = ""
    _sums: dict = field(default_factory=dict, repr=False)

    @property
    def end(self) -> int:
        """The last evaluation at or before the last sample: where the verdict is taken."""
        return (len(self.bad) - 1) // EVAL * EVAL

    def add(self, steps: int, runs: float, bad: float) -> Scenario:
        self.runs += [runs] * steps
        self.bad += [bad] * steps
        self._sums.clear()
        return self

    def prefix(self, key: object, values: Callable[[], list[float]]) -> list[float]:
        """Running sums of `values()`, kept per key (a story is asked hundreds of times)."""
        if key not in self._sums:
            self._sums[key] = cumulative(values())
        return self._sums[key]


def cumulative(values: list[float]) -> list[float]:
    out, total = [], 0.0
    for v in values:
        total += v
        out.append(total)
    return out


def _increase(cum: list[float], t: int, n: int, closed: bool) -> float:
    """increase() over the last n steps at t: from the sample at t-n (closed) or t-n+1, extrapolated."""
    if closed:
        return cum[t] - cum[max(0, t - n)]
    first = max(0, t - n + 1)
    raw = cum[t] - cum[first]
    span = t - first
    return raw * n / span if span and first > 0 else raw


def _stale_share(o: Objective, s: Scenario, n: int, closed: bool) -> float:
    """The share of the evaluations in the range at which the data was older than the threshold."""
    threshold = o.threshold or 0.0
    stale = s.prefix(
        ("stale", threshold), lambda: [1.0 if i % EVAL == 0 and a > threshold else 0.0 for i, a in enumerate(s.bad)]
    )
    t = s.end
    lo = t - n if closed else t - n + 1  # first step inside the range
    lo = max(0, lo)
    first_eval = -(-lo // EVAL) * EVAL
    count = (t - first_eval) // EVAL + 1
    total = stale[t] - (stale[first_eval - 1] if first_eval > 0 else 0.0)
    return total / count


def ratio(o: Objective, s: Scenario, seconds: float, closed: bool) -> tuple[float | None, float]:
    """(error ratio, runs) over the range at the scenario's end, or (None, runs) with no run in it."""
    n, t = int(seconds // STEP), s.end
    if s.kind == FRESHNESS:
        return _stale_share(o, s, n, closed), 0.0
    runs = _increase(s.prefix("runs", lambda: s.runs), t, n, closed)
    bad = _increase(s.prefix("bad", lambda: s.bad), t, n, closed)
    return (bad / runs if runs > 0 else None), runs


def _pair_fires(o: Objective, s: Scenario, p: Pair, closed: bool) -> bool:
    limit = p.factor * o.budget
    (long_ratio, long_runs), (short_ratio, _) = (ratio(o, s, actual(o, w), closed) for w in (p.long, p.short))
    if long_ratio is None or short_ratio is None or long_ratio <= limit or short_ratio <= limit:
        return False
    return s.kind == FRESHNESS or long_runs >= o.min_runs


def fires(o: Objective, s: Scenario) -> frozenset[Pair] | None:
    """The pairs that alert at the scenario's end, or None for a close call."""
    verdicts = [frozenset(p for p in PAIRS if _pair_fires(o, s, p, closed)) for closed in (True, False)]
    if verdicts[0] != verdicts[1] or _close_call(o, s):
        return None
    return verdicts[0]


def _close_call(o: Objective, s: Scenario) -> bool:
    for p in PAIRS:
        limit = p.factor * o.budget
        for w in (p.long, p.short):
            for closed in (True, False):
                r, _ = ratio(o, s, actual(o, w), closed)
                if r is not None and 0.95 * limit <= r <= 1.05 * limit:
                    return True
    return False

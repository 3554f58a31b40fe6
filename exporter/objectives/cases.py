"""The generated `promtool test rules` cases: for each objective, a budget burning at each workbook
rate fires that pair's alert and none of the other severity; a healthy flow fires none; a sparse
run-success flow shows what `min_runs` and `run_interval` do.

Each case is one example flow's story (story.py), made from a healthy history of three days and a
quarter (so that even the 3d window is diluted as in real life), then a burn, then maybe a recovery.
The expected alerts are worked out in story.py for every objective that selects the flow, so
overlapping objectives are checked together; promtool, running the real rules, is the judge.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from exporter.objectives import examples
from exporter.objectives.model import FRESHNESS, RUN_SUCCESS, Objective
from exporter.objectives.story import EVAL, STEP, Scenario, fires
from exporter.objectives.windows import Pair, duration

# Healthy history before a burn, the shorter tried first (promtool's time grows with it): longer
# than the 1d window, then longer than the 3d window (a short freshness burn needs it diluted).
HISTORIES = ((86400 + 6 * 3600) // STEP, (3 * 86400 + 6 * 3600) // STEP)
HISTORY = HISTORIES[0]
DENSE = 100.0  # runs a step in the dense stories: ratios are then exact enough
# Burns from 5 minutes to 3 days, about 15% apart; recoveries that clear one short window after another.
BURN_MINUTES = tuple(sorted({int(5 * 1.15**i) for i in range(49)}))
RATES = (1.4, 2, 4.5, 8, 10, 20, 40)
RECOVERY_MINUTES = (0, 10, 20, 40, 60, 90, 150, 240, 400)


def _story(o: Objective, history: int, share: float, burn: int, recovery: int) -> Scenario:
    if o.kind == FRESHNESS:
        stale = 2 * (o.threshold or 0) + 600
        s = Scenario(FRESHNESS).add(history, 0, 0).add(burn, 0, stale).add(recovery, 0, 0)
    else:
        s = Scenario(RUN_SUCCESS).add(history, DENSE, 0).add(burn, DENSE, DENSE * share).add(recovery, DENSE, 0)
    rate = share / o.budget
    s.title = f"healthy for {duration(history * 60)}, then burning at {rate:.3g}x for {duration(burn * 60)}" + (
        f", then healthy for {duration(recovery * 60)}" if recovery else ""
    )
    return s


def candidates(o: Objective):
    shares = [1.0] if o.kind == FRESHNESS else sorted({min(1.0, r * o.budget) for r in RATES})
    recoveries = RECOVERY_MINUTES if o.kind == FRESHNESS else (0,)
    for history in HISTORIES:
        for burn in BURN_MINUTES:
            for recovery in recoveries:
                for share in shares:
                    yield _story(o, history, share, burn, recovery)


def expected(objectives: tuple[Objective, ...], labels: dict[str, str], s: Scenario) -> dict[Objective, Any] | None:
    """Each selecting objective of the story's kind → the pairs it fires, or None if any is a close call."""
    out: dict[Objective, Any] = {}
    for o in objectives:
        if o.kind == s.kind and examples.matches(o.selector, labels):
            verdict = fires(o, s)
            if verdict is None:
                return None
            out[o] = verdict
    return out


class Judged:
    """The candidate stories of `o` that are no close call for any objective selecting the flow,
    shortest history first, judged as far as a search has needed (each judging builds a story)."""

    def __init__(self, objectives: tuple[Objective, ...], o: Objective, labels: dict[str, str]) -> None:
        self.objectives, self.o, self.labels = objectives, o, labels
        self.source = candidates(o)
        self.done: list[tuple[Scenario, dict[Objective, Any]]] = []

    def __iter__(self) -> Iterator[tuple[Scenario, dict[Objective, Any]]]:
        yield from self.done
        for s in self.source:
            verdicts = expected(self.objectives, self.labels, s)
            if verdicts is not None:
                self.done.append((s, verdicts))
                yield s, verdicts


def burn_for(stories: Judged, pair: Pair):
    """The first story in which `pair` fires for the objective and no pair of the other severity does."""
    for s, verdicts in stories:
        mine = verdicts[stories.o]
        if pair in mine and all(p.severity == pair.severity for p in mine):
            return s, verdicts
    return None


def healthy(o: Objective, objectives: tuple[Objective, ...] = (), labels: dict[str, str] | None = None) -> Scenario:
    """A flow within every budget: fresh data, or runs failing at half the strictest selecting
    objective's budget (so that no overlapping objective fires either)."""
    if o.kind == FRESHNESS:
        return Scenario(FRESHNESS, title="healthy: its data never stale").add(HISTORY, 0, 0)
    selecting = [x for x in objectives if x.kind == o.kind and labels and examples.matches(x.selector, labels)]
    share = 0.5 * min([o.budget] + [x.budget for x in selecting])
    title = "healthy: failing at half the budget's rate" + ("" if share == 0.5 * o.budget else " of the strictest")
    return Scenario(RUN_SUCCESS, title=title).add(HISTORY, DENSE, DENSE * share)


def sparse(o: Objective) -> Scenario:
    """A flow that runs every run_interval (default 1h): healthy for days, then its last two runs
    failed, the last 40 minutes ago (between runs: where unstretched short windows hold none)."""
    every = int((o.run_interval or 3600) // STEP)
    s = Scenario(
        RUN_SUCCESS, title=f"sparse: one run every {duration(every * STEP)}, the last two failed, 40m ago the last"
    )
    steps = (HISTORY + 2 * every) // EVAL * EVAL + 1  # ending on an evaluation
    s.add(steps, 0, 0)
    for k, i in enumerate(range(s.end - 40, 0, -every)):  # the last run 40 minutes ago: off every window's edge
        s.runs[i] = 1
        s.bad[i] = 1 if k < 2 else 0
    return s

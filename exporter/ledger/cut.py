"""Counting after a baseline that a next link cut short.

A listing that ends early (its next link named another collection, whose token ours would not
take) holds true runs, not all of them. Taken as a flow's baseline, the runs it lacked are older
ones (pages come newest first), from before the exporter watched the flow: seen later, they must
not be counted, while runs created after it, and runs it saw in flight, must. The newest
createdAt the cut baseline held divides them (FlowState.cut_horizon).

That holds if Adobe honoured `orderby=-createdAt`. A cut listing whose runs did not come newest
first may lack runs newer than any it held, all from before the baseline all the same: created
before the newest createdAt the poll returned in any answer (a time Adobe's clock had passed; the
batched strategy's chunks, while a flow polled alone has its own answer only), which then divides
them, with no clock of ours compared with Adobe's. A run in flight at such a baseline on a page
it lacked, never seen in flight before it completes, is then not counted: the lesser error
(without it every run the pages lacked that was newer than those held was counted). The horizon
is kept in the state file: after a restart, what the cut baseline lacked is still from before it.
"""

from __future__ import annotations

import math

from exporter.adobe.runfacts import RunFacts
from exporter.ledger.records import FlowState, SeenRun


def next_horizon(
    state: FlowState, current: dict[str, RunFacts], complete: bool, cut: bool, newest_returned: float | None = None
) -> float | None:
    """The flow's horizon after a poll: for a cut baseline the newest createdAt of its runs, and of
    the poll's other answers if its runs were not newest first (`newest_returned`); inf when none
    is known (only runs seen in flight are counted then); gone with a listing of the whole window."""
    if not state.baselined and cut:
        held = [r.created for r in current.values() if r.created is not None]
        return max([*held, *([] if newest_returned is None else [newest_returned])], default=math.inf)
    return None if complete and not cut else state.cut_horizon


def counts_after_cut(state: FlowState, run: RunFacts, prev: SeenRun | None) -> bool:
    """Whether a run seen completed for the first time is counted, given a cut baseline (always,
    without one)."""
    if state.cut_horizon is None or prev is not None:
        return True
    return run.created is not None and run.created > state.cut_horizon

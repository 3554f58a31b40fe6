"""Counting after a baseline that a next link cut short.

A listing that ends early (its next link named another collection, whose token ours would not
take) holds true runs, not all of them. Taken as a flow's baseline, the runs it lacked are
older ones (pages come newest first), from before the exporter watched the flow: seen later,
they must not be counted, while runs created after it, and runs it saw in flight, must. The
newest createdAt the cut baseline held divides them (FlowState.cut_horizon).
"""

from __future__ import annotations

import math

from exporter.adobe.runfacts import RunFacts
from exporter.ledger.records import FlowState, SeenRun


def next_horizon(state: FlowState, current: dict[str, RunFacts], complete: bool, cut: bool) -> float | None:
    """The flow's horizon after a poll: a cut baseline's newest createdAt (inf when it held none:
    then only runs seen in flight are counted), gone with a listing of the whole window."""
    if not state.baselined and cut:
        return max((r.created for r in current.values() if r.created is not None), default=math.inf)
    return None if complete and not cut else state.cut_horizon


def counts_after_cut(state: FlowState, run: RunFacts, prev: SeenRun | None) -> bool:
    """Whether a run seen completed for the first time is counted, given a cut baseline (always,
    without one)."""
    if state.cut_horizon is None or prev is not None:
        return True
    return run.created is not None and run.created > state.cut_horizon

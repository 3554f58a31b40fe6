"""Splicing a per-flow family's body: the stretches of the last body whose flows did not change,
and the changed flows' new lines, in ledger order, with each flow's offset (families.py's cache).

Pure functions over the plan FlowFamilies.build makes: a list of steps, each a stretch `[a, b)` of
old flow positions or a FlowState whose lines were rendered afresh (`fresh`: its lines per family).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator

from exporter.ledger.records import FlowState
from exporter.support import tuning

EMPTY_VIEW, EMPTY_STARTS = memoryview(b""), array("q")  # no old body (a first rendering)


def joined(
    j: int, steps: list[list[int] | FlowState], fresh: dict[tuple, tuple], old: memoryview, old_starts: array[int]
) -> tuple[bytearray, array[int]]:
    """Family j's new body and offsets (with its length last), joined at once from the old
    body's stretches and the changed flows' lines: one copy into a body of the exact size."""
    pieces: list[bytes | memoryview] = []
    offsets: array[int] = array("q")
    at = 0
    for step in steps:
        if isinstance(step, list):
            a, b = step
            s0, s1 = old_starts[a], old_starts[b]
            offsets.extend(old_starts[a:b] if at == s0 else map((at - s0).__add__, old_starts[a:b]))
            pieces.append(old[s0:s1])
            at += s1 - s0
        else:
            offsets.append(at)
            chunks = fresh.get(step.key)  # None: no series (not polled, or gone)
            if chunks and chunks[j]:
                pieces.append(chunks[j])
                at += len(chunks[j])
    offsets.append(at)
    body = bytearray().join(pieces)
    pieces.clear()  # the slices of the old body, before it is released
    return body, offsets


def extend(
    body: bytearray,
    offsets: array[int],
    j: int,
    steps: Iterable[list[int] | FlowState],
    fresh: dict[tuple, tuple],
    old: memoryview,
    old_starts: array[int],
) -> None:
    """Family j's body and offsets extended by these steps of the plan: stretches of the old
    body (its offsets shifted to where they land) and the changed flows' fresh lines."""
    for step in steps:
        if isinstance(step, list):
            s0, s1 = old_starts[step[0]], old_starts[step[1]]
            shift = len(body) - s0
            if shift == 0:  # lines before it kept their length: the offsets too (a copy in C)
                offsets.extend(old_starts[step[0] : step[1]])
            else:
                offsets.extend(map(shift.__add__, old_starts[step[0] : step[1]]))
            body += old[s0:s1]
        else:
            chunks = fresh.get(step.key)  # None: no series (not polled, or gone)
            offsets.append(len(body))
            if chunks:
                body += chunks[j]


def segments(plan: list[list[int] | FlowState]) -> Iterator[list[list[int] | FlowState]]:
    """The plan cut after every RENDER_BATCH flows to render (one segment, maybe empty, at least)."""
    segment: list[list[int] | FlowState] = []
    dirty, cut = 0, False
    for step in plan:
        segment.append(step)
        if not isinstance(step, list):
            dirty += 1
            if dirty == tuning.RENDER_BATCH:
                yield segment
                segment, dirty, cut = [], 0, True
    if segment or not cut:
        yield segment

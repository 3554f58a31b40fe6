"""exporter/support/tuning.py: what survives a cycle is frozen out of the collector's way, a cycle's
cyclic garbage is still collected, and garbage among frozen objects is collected once the frozen
set has grown by FROZEN_GROWTH (the benchmark shows the effect on stalls; these show the rules)."""

from __future__ import annotations

import gc
import weakref

import pytest

from exporter.support import tuning


class Node:
    """A gc-tracked object that can be part of a reference cycle and be watched by a weakref."""

    def __init__(self) -> None:
        self.other: object = self


@pytest.fixture(autouse=True)
def fresh_collector(monkeypatch):
    gc.collect()
    monkeypatch.setattr(tuning, "_frozen_base", None)
    yield
    gc.unfreeze()
    gc.collect()


def generations() -> set[int]:
    return {id(o) for g in range(3) for o in gc.get_objects(g)}


def test_a_cycles_garbage_is_collected_and_the_survivors_frozen():
    garbage, kept = Node(), Node()
    dead = weakref.ref(garbage)
    del garbage  # a reference cycle: only the collector can free it
    assert tuning.freeze_survivors() is False  # the first call sets the base, no full collection
    assert dead() is None
    assert gc.is_tracked(kept) and id(kept) not in generations()  # tracked, but in no generation: frozen
    assert gc.get_freeze_count() > 0


def test_garbage_among_frozen_objects_waits_for_growth_then_goes():
    frozen = Node()
    dead = weakref.ref(frozen)
    tuning.freeze_survivors()
    base = gc.get_freeze_count()
    del frozen  # garbage now, but frozen: young collections do not see it
    tuning.freeze_survivors()
    assert dead() is not None, "a frozen cycle is not collected before the frozen set grows"
    grown = [Node() for _ in range(int(base * tuning.FROZEN_GROWTH) + 1000)]
    assert tuning.freeze_survivors() is True  # grew by more than FROZEN_GROWTH: one full collection
    assert dead() is None
    assert gc.get_freeze_count() >= len(grown)


def test_tune_leaves_young_collections_alone_and_defers_full_ones():
    before = gc.get_threshold()
    try:
        tuning.tune_collector()
        young, middle, old = gc.get_threshold()
        assert (young, middle) == before[:2]
        assert old == tuning.GEN2_THRESHOLD
    finally:
        gc.set_threshold(*before)

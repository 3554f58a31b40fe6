"""A rendering after few changed flows lets the last one's bodies go before splicing its own: a
scrape already under way still writes the old body whole, one that comes meanwhile waits for the
new rendering, and every body is what prometheus_client writes for the ledger of its moment."""

from __future__ import annotations

import asyncio
import threading

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest

from exporter.exposition import splice
from exporter.exposition.collectors.flows import FlowCollector
from exporter.exposition.render import RenderCache, pieces
from exporter.ledger.ledger import Ledger
from exporter.support import tuning
from tests.unit.test_ledger import NOW, WINDOW, run

FLOWS = 12


def _cache() -> tuple[RenderCache, Ledger, CollectorRegistry]:
    ledger = Ledger()
    for i in range(FLOWS):
        state = ledger.flow("prod", f"flow-{i:02d}")
        ledger.apply_runs(state, [run(f"old-{i}", "success", NOW - 3600)], WINDOW)
        ledger.apply_runs(state, [run(f"new-{i}", "failed", NOW - 60)], WINDOW)
    registry = CollectorRegistry()
    collector = FlowCollector(ledger)
    registry.register(collector)
    return RenderCache(registry, families=collector.families), ledger, registry


def _joined(parts) -> bytes:
    return b"".join(pieces(parts, 1 << 20))


def _change(ledger: Ledger, i: int) -> None:
    state = ledger.flows[("prod", f"flow-{i:02d}")]
    ledger.apply_runs(state, [run(f"next-{i}", "success", NOW - 30)], WINDOW)


async def test_a_scrape_under_way_keeps_its_body_and_the_old_bodies_are_let_go():
    cache, ledger, registry = _cache()
    first = await cache.refresh()
    before = generate_latest(registry)
    assert first.text == before
    under_way, _ = await cache.parts("", "identity")  # a scrape that has its parts, not yet written
    _change(ledger, 3)
    second = await cache.refresh()
    assert second.rebuilt == 1
    assert first.released and first.text_parts == [] and first.om_parts == []
    assert _joined(under_way) == before  # written whole, as it was
    assert second.text == generate_latest(registry) != before
    now, _ = await cache.parts("", "identity")
    assert _joined(now) == second.text
    gz, _ = await cache.parts("", "gzip")
    assert len(gz) == 1 and gz[0] == second.gzipped(False)


async def test_a_scrape_that_comes_while_the_bodies_are_spliced_waits_for_the_new_rendering():
    cache, ledger, registry = _cache()
    await cache.refresh()
    loop = asyncio.get_running_loop()
    came, seen_released, scrapes = threading.Event(), [], []

    async def scrape():
        seen_released.append(cache.current is not None and cache.current.released)
        came.set()
        return await cache.parts("", "identity")

    let_go = cache._let_go

    def let_go_then_scrape():  # in the render thread, as the families let go of the old bodies
        let_go()
        scrapes.append(asyncio.run_coroutine_threadsafe(scrape(), loop))
        assert came.wait(10)  # the scrape has begun before the splicing goes on

    cache._let_go = let_go_then_scrape  # type: ignore[method-assign]
    _change(ledger, 7)
    second = await cache.refresh()
    parts, _ = await asyncio.wrap_future(scrapes[0])
    assert seen_released == [True]
    assert _joined(parts) == second.text == generate_latest(registry)


async def test_many_changed_flows_keep_serving_the_last_rendering_while_rendering(monkeypatch):
    """Past half the flows (and past a batch) changed, their lines are made a batch at a
    time beside the last rendering's bodies, which stay served (nothing is let go)."""
    monkeypatch.setattr(tuning, "RENDER_BATCH", 2)
    cache, ledger, registry = _cache()
    first = await cache.refresh()
    for i in range(FLOWS):
        _change(ledger, i)
    second = await cache.refresh()
    assert second.rebuilt == FLOWS and not first.released
    assert second.text == generate_latest(registry)


async def test_a_render_step_that_fails_after_letting_go_leaves_scrapes_served(monkeypatch):
    """The last rendering was let go and the splice failed: the next scrape renders afresh (no
    scrape waits for a rendering that will not come), and every flow is rendered again."""
    cache, ledger, registry = _cache()
    first = await cache.refresh()
    _change(ledger, 5)

    def broken(*args):
        raise RuntimeError("splice failed")

    with monkeypatch.context() as m:
        m.setattr(splice, "joined", broken)
        with pytest.raises(RuntimeError):
            await cache.refresh()
    assert first.released and cache.current is None
    parts, _ = await asyncio.wait_for(cache.parts("", "identity"), 10)
    assert _joined(parts) == generate_latest(registry)
    assert cache.latest().rebuilt == FLOWS


async def test_up_to_half_the_flows_changed_let_the_last_rendering_go(monkeypatch):
    """A restart's first cycle after its baseline changed a quarter of 10,000 flows and more (the
    runs in flight at the baseline ending): with the last rendering kept beside the new one, that
    render step was the process's peak, 32 MB over the steady RSS. Their fresh lines are smaller
    than the bodies kept: up to half the flows, the old bodies are let go."""
    monkeypatch.setattr(tuning, "RENDER_BATCH", 2)
    cache, ledger, registry = _cache()
    first = await cache.refresh()
    for i in range(5):  # more than a quarter of the 12, not more than half
        _change(ledger, i)
    second = await cache.refresh()
    assert second.rebuilt == 5 and first.released
    assert second.text == generate_latest(registry)

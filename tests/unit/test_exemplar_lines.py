"""The OpenMetrics exemplars of many flows: each on its flow's line of the run's status and its
failed-records line, none elsewhere; the body written in slices is the rendering, byte for byte."""

from __future__ import annotations

from dataclasses import replace

from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from exporter.exposition.collectors.flows import FlowCollector
from exporter.exposition.exemplars import latest
from exporter.exposition.render import RenderCache
from exporter.exposition.server import make_app
from exporter.ledger.ledger import Ledger
from exporter.support import tuning
from tests.unit.test_ledger import NOW, WINDOW, run

OPENMETRICS = "application/openmetrics-text; version=1.0.0"


def _cache() -> tuple[RenderCache, Ledger]:
    """Six flows: a counted run on every other one (of rotating statuses), with no failed
    records reported on one; sandboxes whose name needs escaping."""
    ledger = Ledger()
    statuses = ["success", "failed", "partialSuccess"]
    for i in range(6):
        state = ledger.flow("prod" if i % 2 else 'q"uote', f"flow-{i}")
        ledger.apply_runs(state, [run(f"old-{i}", "success", NOW - 3600)], WINDOW)  # the baseline
        if i % 2 == 0:
            counted = run(f"run-{i}", statuses[i // 2], NOW - 60)
            if i == 4:
                counted = replace(counted, counts={"input_records": 7})  # no failed records reported
            ledger.apply_runs(state, [counted], WINDOW)
    registry = CollectorRegistry()
    collector = FlowCollector(ledger)
    registry.register(collector)
    return RenderCache(registry, families=collector.families, exemplars=lambda: latest(ledger)), ledger


def _exemplars(body: bytes) -> dict:
    return {
        (s.name, s.labels["flow_id"], s.labels.get("status")): (s.exemplar.labels["run_id"], s.exemplar.value)
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
        if s.exemplar is not None
    }


async def test_each_counted_run_is_the_exemplar_of_its_own_lines():
    cache, ledger = _cache()
    await cache.refresh()
    om = cache.latest().openmetrics
    assert _exemplars(om) == {
        ("aep_flow_runs_total", "flow-0", "success"): ("run-0", 1.0),
        ("aep_flow_failed_records_total", "flow-0", None): ("run-0", 0.0),
        ("aep_flow_runs_total", "flow-2", "failed"): ("run-2", 1.0),
        ("aep_flow_failed_records_total", "flow-2", None): ("run-2", 0.0),
        ("aep_flow_runs_total", "flow-4", "partialSuccess"): ("run-4", 1.0),
    }
    assert om.replace(b"\n", b"").count(b" # {") == 5
    assert cache.latest().text.count(b" # {") == 0
    # A flow that changes is rendered again: its exemplar follows, the others' stay.
    state = ledger.flows[('q"uote', "flow-0")]
    ledger.apply_runs(state, [run("run-0b", "failed", NOW - 30)], WINDOW)
    await cache.refresh()
    found = _exemplars(cache.latest().openmetrics)
    assert found[("aep_flow_runs_total", "flow-0", "failed")] == ("run-0b", 1.0)
    assert ("aep_flow_runs_total", "flow-0", "success") not in found
    assert found[("aep_flow_runs_total", "flow-2", "failed")] == ("run-2", 1.0)


async def test_an_openmetrics_scrape_in_slices_is_the_rendering(aiohttp_client, monkeypatch):
    cache, _ = _cache()
    await cache.refresh()
    monkeypatch.setattr(tuning, "WRITE_SLICE", 7)
    client = await aiohttp_client(make_app(cache, lambda: True))
    r = await client.get("/metrics", headers={"Accept": OPENMETRICS, "Accept-Encoding": "identity"})
    body = await r.read()
    assert body == cache.latest().openmetrics and b" # {" in body
    assert int(r.headers["Content-Length"]) == len(body)
    gz = await client.get("/metrics", headers={"Accept": OPENMETRICS, "Accept-Encoding": "gzip"})
    assert await gz.read() == body  # aiohttp's client inflates it

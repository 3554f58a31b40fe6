"""The exposition renderer writes exactly what prometheus_client writes, only faster."""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as om_generate_latest

from exporter.collector import FlowCollector
from exporter.config import MetricsConfig
from exporter.ledger import Ledger
from exporter.models import Flow, Run
from exporter.render import RenderCache, format_both, render
from exporter.selfmetrics import SelfMetrics
from exporter.simulator.world import load_seed
from exporter.translate import run_facts


def registry() -> CollectorRegistry:
    metrics = SelfMetrics()
    metrics.api_requests.labels("runs", "200").inc(3)
    metrics.api_request_duration.labels("runs").observe(0.2)
    ledger = Ledger()
    names = ["Monitoring Dataflow", 'quote " backslash \\ newline \n unicode ünï', ""]
    seed = run_facts(Run.from_json(load_seed()["run"]))
    for i, name in enumerate(names):
        state = ledger.flow("prod" if i else "dev", f"c9cef9cb-c934-4467-8ef9-cbc93454674{i}")
        ledger.set_flow(state, Flow(id=state.flow_id, name=name, state="enabled", frequency="hour", interval=2), 0)
        ledger.apply_runs(state, [], 0)
        ledger.apply_runs(state, [seed], 0)
    metrics.registry.register(FlowCollector(ledger, MetricsConfig(run_duration_histogram=True, activities=True)))
    return metrics.registry


def test_bytes_equal_prometheus_client():
    reg = registry()
    text, om = format_both(list(reg.collect()))
    assert text == generate_latest(reg)
    assert om == om_generate_latest(reg)
    assert b'flow_name="quote \\" backslash \\\\ newline \\n unicode \xc3\xbcn\xc3\xaf"' in text


def test_cache_serves_by_accept_headers():
    import gzip

    cache = RenderCache(registry())
    body, headers = cache.body("application/openmetrics-text; version=1.0.0", "gzip, deflate")
    assert headers["Content-Encoding"] == "gzip" and headers["Content-Type"].startswith("application/openmetrics-text")
    assert gzip.decompress(body).endswith(b"# EOF\n")
    body, headers = cache.body("text/plain", "")
    assert "Content-Encoding" not in headers and headers["Content-Type"].startswith("text/plain")
    assert body == render(cache.registry).text

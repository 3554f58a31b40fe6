"""The exposition renderer writes exactly what prometheus_client writes, only faster."""

from __future__ import annotations

from dataclasses import replace

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as om_generate_latest

from exporter.adobe.models import Flow, Run
from exporter.adobe.runfacts import run_facts
from exporter.config import MetricsConfig
from exporter.exposition.collectors.flows import FlowCollector
from exporter.exposition.render import RenderCache, by_preference, render
from exporter.exposition.server import make_app
from exporter.ledger.ledger import Ledger
from exporter.simulator.world import load_seed
from exporter.support import tuning
from exporter.support.selfmetrics import SelfMetrics


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
    rendered = render(reg)
    text, om = rendered.text, rendered.openmetrics
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


# The Accept headers Prometheus sends (scrape/scrape.go). 2.x before 2.49: a fixed header.
PROMETHEUS_2_42 = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
# 2.49 and later (acceptHeader over the default scrape_protocols, weights from 0.5 down).
PROMETHEUS_2_49 = (
    "application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,"
    "text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
)
# 2.x with --enable-feature=native-histograms: protobuf first, which this exporter does not serve.
PROMETHEUS_2_PROTO_FIRST = (
    "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.5,"
    "application/openmetrics-text;version=1.0.0;q=0.4,application/openmetrics-text;version=0.0.1;q=0.3,"
    "text/plain;version=0.0.4;q=0.2,*/*;q=0.1"
)
# 3.0 to 3.3: UTF-8 names allowed, the escaping parameter on every protocol.
PROMETHEUS_3_0 = (
    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,"
    "application/openmetrics-text;version=0.0.1;escaping=allow-utf-8;q=0.5,"
    "text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;escaping=allow-utf-8;q=0.3,"
    "*/*;q=0.2"
)
# 3.4 and later: the escaping parameter on the 1.0.0 formats only.
PROMETHEUS_3_4 = (
    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,"
    "text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
)
# 3.x with scrape_protocols: [PrometheusText1.0.0, PrometheusText0.0.4].
PROMETHEUS_3_TEXT_ONLY = "text/plain;version=1.0.0;escaping=allow-utf-8;q=0.6,text/plain;version=0.0.4;q=0.5,*/*;q=0.4"

OM_UNDERSCORES = "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=underscores"
OM_UTF8 = "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=allow-utf-8"
TEXT_1_UTF8 = "text/plain; version=1.0.0; charset=utf-8; escaping=allow-utf-8"
TEXT_0_0_4 = "text/plain; version=0.0.4; charset=utf-8"


@pytest.mark.parametrize(
    "accept, content_type",
    [
        (PROMETHEUS_2_42, OM_UNDERSCORES),
        (PROMETHEUS_2_49, OM_UNDERSCORES),
        (PROMETHEUS_2_PROTO_FIRST, OM_UNDERSCORES),
        (PROMETHEUS_3_0, OM_UTF8),
        (PROMETHEUS_3_4, OM_UTF8),
        (PROMETHEUS_3_TEXT_ONLY, TEXT_1_UTF8),
        ("", TEXT_0_0_4),  # curl, a browser: the classic text format
        ("*/*", TEXT_0_0_4),
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", TEXT_0_0_4),
        # q-values decide, not the order: prometheus_client's chooser alone would take the first.
        (
            "application/openmetrics-text;version=1.0.0;q=0.1,text/plain;version=1.0.0;q=0.9",
            TEXT_1_UTF8.replace("allow-utf-8", "underscores"),
        ),
        ("text/plain;version=0.0.4;q=0.2,application/openmetrics-text;version=1.0.0;q=0.8", OM_UNDERSCORES),
        ("application/openmetrics-text;version=1.0.0;q=0,text/plain", TEXT_0_0_4),  # q=0: not acceptable
    ],
)
def test_content_negotiation_serves_what_prometheus_client_would(accept, content_type):
    """The Content-Type is the one prometheus_client's chooser names for the header (taken in
    order of q), and the body is byte for byte what that chosen encoder writes."""
    import gzip

    from prometheus_client.exposition import choose_encoder

    cache = RenderCache(registry())
    body, headers = cache.body(accept, "gzip")
    assert headers["Content-Type"] == content_type
    encoder, chosen_type = choose_encoder(by_preference(accept))
    assert chosen_type == content_type
    assert gzip.decompress(body) == encoder(cache.registry)
    plain, headers = cache.body(accept, "identity")
    assert plain == encoder(cache.registry) and "Content-Encoding" not in headers


@pytest.mark.parametrize(
    "accept_encoding, gzipped",
    [("gzip", True), ("gzip, deflate, br", True), ("identity", False), ("", False), ("gzip;q=0, identity", False)],
)
def test_gzip_only_when_accepted(accept_encoding, gzipped):
    body, headers = RenderCache(registry()).body(PROMETHEUS_2_49, accept_encoding)
    assert (headers.get("Content-Encoding") == "gzip") is gzipped
    assert body.startswith(b"\x1f\x8b") is gzipped


async def test_large_parts_are_written_in_slices_whole(aiohttp_client, monkeypatch):
    """/metrics hands each part to the transport WRITE_SLICE bytes at a time: the body is still
    byte for byte the rendering, with its Content-Length."""
    monkeypatch.setattr(tuning, "WRITE_SLICE", 7)
    cache = RenderCache(registry())
    client = await aiohttp_client(make_app(cache, lambda: True))
    r = await client.get("/metrics", headers={"Accept": "", "Accept-Encoding": "identity"})
    body = await r.read()
    assert body == cache.latest().text and len(body) > 7 * 10
    assert int(r.headers["Content-Length"]) == len(body)


async def test_metrics_endpoint_negotiates(aiohttp_client):
    client = await aiohttp_client(make_app(RenderCache(registry()), lambda: True))
    for accept, content_type in ((PROMETHEUS_3_4, OM_UTF8), (PROMETHEUS_2_42, OM_UNDERSCORES), ("", TEXT_0_0_4)):
        r = await client.get("/metrics", headers={"Accept": accept, "Accept-Encoding": "identity"})
        assert r.status == 200 and r.headers["Content-Type"] == content_type
        body = await r.read()
        assert body.endswith(b"# EOF\n") is content_type.startswith("application/openmetrics-text")


def _flow_registry(ledger: Ledger, options: MetricsConfig) -> tuple[CollectorRegistry, FlowCollector]:
    reg = CollectorRegistry()
    collector = FlowCollector(ledger, options)
    reg.register(collector)
    return reg, collector


def _facts(seed: dict, run_id: str, status: str, completed: bool, created_ms: int):
    raw = {**seed, "id": run_id, "createdAt": created_ms}
    facts = run_facts(Run.from_json(raw))
    return replace(facts, status=status, completed=completed)


@pytest.mark.parametrize("batch", [500, 1])
@pytest.mark.parametrize("options", [MetricsConfig(), MetricsConfig(run_duration_histogram=True, activities=True)])
def test_cached_flow_lines_follow_every_ledger_change(options, batch, monkeypatch):
    """The render step reuses the lines of flows whose ledger entry did not change: after each
    kind of change the ledger makes, the page is still what prometheus_client writes for it, and
    a render with nothing changed renders no flow again."""
    monkeypatch.setattr(tuning, "RENDER_BATCH", batch)  # flows rendered together
    seed = load_seed()["run"]
    ledger = Ledger(max_error_codes_per_flow=2)
    reg, collector = _flow_registry(ledger, options)
    states = [ledger.flow(f"sb{i % 2}", f"flow-{i}") for i in range(4)]
    for i, s in enumerate(states):
        ledger.set_flow(s, Flow(id=s.flow_id, name=f"n{i}", state="enabled"), 0)
        ledger.apply_runs(s, [_facts(seed, f"r{i}-0", "success", True, 1_000)], 0)
    cache = RenderCache(reg, families=collector.families)

    def check(rebuilt: int | None = None) -> None:
        r = render(reg, families=collector.families)
        assert r.text == generate_latest(reg)
        assert r.openmetrics == om_generate_latest(reg)
        if rebuilt is not None:
            assert r.rebuilt == rebuilt
        cache.current = r

    check(4)
    check(0)  # nothing changed: nothing rendered again
    a, b, c, d = states
    ledger.apply_runs(a, [_facts(seed, "r0-1", "inProgress", False, 2_000)], 0, complete=False)  # in flight
    check(1)
    ledger.apply_runs(a, [_facts(seed, "r0-1", "failed", True, 2_000)], 0, complete=False)  # counted
    check(1)
    ledger.apply_runs(a, [_facts(seed, "r0-1", "failed", True, 2_000)], 0, complete=False)  # seen again: no change
    check(0)
    ledger.set_flow(b, Flow(id=b.flow_id, name="renamed", state="disabled"), 1)
    ledger.set_flow(c, Flow(id=c.flow_id, name="n2", state="enabled"), 1)  # same metadata again
    check(1)
    ledger.mark_down(c)
    check(1)
    ledger.mark_gone(d)
    check(1)
    ledger.set_flow(d, Flow(id=d.flow_id, name="back"), 2)
    check(1)
    ledger.apply_runs(b, [_facts(seed, "r1-1", "inProgress", False, 3_000)], 0, complete=False)
    check(1)
    ledger.forget_in_flight(b, ["r1-1"])
    check(1)
    ledger.watch([(a.sandbox, a.flow_id), (c.sandbox, c.flow_id), ("sb9", "new")], ["sb0", "sb1", "sb9"])
    check(1)  # b and d leave, the new flow is rendered (with no series yet)
    ledger.watch([(a.sandbox, a.flow_id), (b.sandbox, b.flow_id)], ["sb0", "sb1"])  # b again: a new record
    check(1)
    collector.options = MetricsConfig(activities=not options.activities)
    check(2)  # other families: every flow again

"""The Flow Service client against the simulator over real HTTP: headers, token handling,
pagination, retries, throttling, and what each failure turns into."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from conftest import FAST_RETRY, eventually, make_config

from exporter.adobe.client import ApiError, NotFound
from exporter.adobe.ims import TokenError, TokenProvider
from exporter.config import AdobeConfig
from exporter.runtime import open_exporter
from exporter.simulator import BASE_PATH, SEED_FLOW_ID
from exporter.support.secrets import Secret
from exporter.support.selfmetrics import SelfMetrics


def sample(metrics: SelfMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


async def test_every_call_sends_adobe_headers_and_one_token_serves_all(sim, world):
    world.add_flow("dev", "other", period=None)
    dev_flow = next(f.id for f in world.flows.values() if f.sandbox == "dev")
    async with open_exporter(make_config(sim), FAST_RETRY) as exp:
        for _ in range(5):
            await exp.client.get_flow("prod", SEED_FLOW_ID)
            await exp.client.list_runs("prod", SEED_FLOW_ID, 0)
        await exp.client.get_flow("dev", dev_flow)
    assert world.tokens_issued == 1
    form = sim.token_requests[0]
    assert form["grant_type"] == "client_credentials"
    assert form["client_id"] == world.client_id and form["client_secret"] == world.client_secret
    assert form["scope"] == "openid,AdobeID,read_organizations,additional_info.projectedProductContext,session"
    api = [r for r in sim.requests if r["path"].startswith(BASE_PATH)]
    assert len(api) == 11
    for r in api:
        h = {k.lower(): v for k, v in r["headers"].items()}
        assert h["authorization"].startswith("Bearer eyJ")
        assert h["x-api-key"] == world.client_id
        assert h["x-gw-ims-org-id"] == world.org_id
        assert h["x-sandbox-name"] in ("prod", "dev")
    assert {h["x-sandbox-name"] for h in ({k.lower(): v for k, v in r["headers"].items()} for r in api)} == {
        "prod",
        "dev",
    }


async def test_runs_query_and_pagination_through_both_link_forms(sim, world):
    flow = world.add_flow("prod", "big")
    for i in range(250):
        r = world.start_run(flow.id, created_ms=world.now_ms() - 1000 * (i + 1))
        world.finish_run(r.id)
    old = world.start_run(flow.id, created_ms=world.now_ms() - 3 * 86400 * 1000)  # outside lookback
    since = time.time() - 86400
    async with open_exporter(make_config(sim), FAST_RETRY) as exp:
        runs = await exp.client.list_runs("prod", flow.id, since)
    ids = [r.id for r in runs]
    assert len(ids) == 250 and len(set(ids)) == 250 and old.id not in ids
    assert ids == [r.id for r in sorted(runs, key=lambda r: -r.created)]  # orderby=-createdAt
    pages = [r for r in sim.requests if r["path"] == BASE_PATH + "/runs"]
    assert len(pages) == 3
    first = pages[0]["query"]
    assert ("property", f"flowId=={flow.id}") in first
    assert ("property", f"createdAt>{int(since * 1000)}") in first
    assert ("orderby", "-createdAt") in first and ("limit", "100") in first
    for page in pages[1:]:  # our filters are sent again along with the token
        assert any(k == "continuationToken" for k, _ in page["query"])
        assert ("property", f"flowId=={flow.id}") in page["query"]


async def test_next_link_resolution(sim):
    async with open_exporter(make_config(sim), FAST_RETRY) as exp:
        c, base = exp.client, sim.origin + BASE_PATH
        params = [("property", "flowId==x"), ("limit", "100")]
        assert c.resolve_next(BASE_PATH + "/runs?continuationToken=T", params) == (
            base + "/runs",
            [*params, ("continuationToken", "T")],
        )
        assert c.resolve_next("/runs?continuationToken=T", params)[0] == base + "/runs"
        assert c.resolve_next("https://other.example/x/runs?continuationToken=T", params)[0] == (
            "https://other.example/x/runs"
        )
        # A link that keeps the filters itself is followed as it is.
        assert c.resolve_next("/runs?property=flowId==y&continuationToken=T", params)[1] == [
            ("property", "flowId==y"),
            ("continuationToken", "T"),
        ]


async def test_token_is_reused_until_90_percent_of_its_life_then_renewed(sim, world):
    world.token_lifetime = 1000
    now = [time.time()]
    cfg = make_config(sim)
    async with aiohttp.ClientSession() as session:
        tokens = TokenProvider(session, cfg.adobe, SelfMetrics(), 5, FAST_RETRY, clock=lambda: now[0])
        first = await tokens.token()
        now[0] += 899
        assert await tokens.token() == first and world.tokens_issued == 1
        now[0] += 2  # past 90% of 1000 s
        assert await tokens.token() != first and world.tokens_issued == 2


async def test_401_gets_one_new_token_and_one_more_try(sim, world):
    async with open_exporter(make_config(sim), FAST_RETRY) as exp:
        await exp.client.get_flow("prod", SEED_FLOW_ID)
        world.tokens.clear()  # Adobe no longer accepts the token we hold
        flow = await exp.client.get_flow("prod", SEED_FLOW_ID)
        assert flow.name == "Monitoring Dataflow" and world.tokens_issued == 2
        sim.inject(401, path="/flows/", times=2, body={"error_code": "401013", "message": "Oauth token is not valid"})
        with pytest.raises(ApiError) as e:
            await exp.client.get_flow("prod", SEED_FLOW_ID)
        assert e.value.status == 401 and world.tokens_issued == 3


async def test_5xx_and_broken_bodies_are_retried_then_give_up(sim):
    async with open_exporter(make_config(sim), FAST_RETRY) as exp:
        sim.inject(503, path="/runs", times=2)
        sim.inject(200, path="/runs", body=b'{"items": [{"id": "trunc')
        runs = await exp.client.list_runs("prod", SEED_FLOW_ID, 0)
        assert [r.id for r in runs] == ["9830305a-985f-47d0-b030-5a985fd7d004"]
        m = exp.metrics
        assert sample(m, "aep_exporter_api_retries_total", endpoint="runs", reason="503") == 2
        assert sample(m, "aep_exporter_api_retries_total", endpoint="runs", reason="parse") == 1
        assert sample(m, "aep_exporter_parse_errors_total", endpoint="runs") == 1
        assert sample(m, "aep_exporter_api_requests_total", endpoint="runs", code="503") == 2
        sim.inject(502, path="/runs", times=10)
        with pytest.raises(ApiError) as e:
            await exp.client.list_runs("prod", SEED_FLOW_ID, 0)
        assert "gave up after 4 attempts" in str(e.value)
        sim.faults.clear()
        sim.inject(200, path="/flows/", times=10, body=b"<html>Gateway error</html>")
        with pytest.raises(ApiError):
            await exp.client.get_flow("prod", SEED_FLOW_ID)
        assert sample(m, "aep_exporter_parse_errors_total", endpoint="flow") == 4


async def test_429_holds_back_the_whole_client_for_retry_after(sim):
    async with open_exporter(make_config(sim), FAST_RETRY) as exp:
        await exp.tokens.token()
        sim.inject(429, path="/runs", headers={"Retry-After": "0.5"})
        first = asyncio.create_task(exp.client.list_runs("prod", SEED_FLOW_ID, 0))
        await eventually(lambda: sample(exp.metrics, "aep_exporter_api_throttled_total") == 1, what="the 429")
        throttled_at = next(r["time"] for r in sim.requests if r["path"].endswith("/runs"))
        sent = len(sim.requests)
        # Requests made while the hold lasts, to this endpoint and another, all at once.
        others = [exp.client.get_flow("prod", SEED_FLOW_ID) for _ in range(4)]
        others += [exp.client.list_runs("prod", SEED_FLOW_ID, 0) for _ in range(4)]
        await asyncio.gather(first, *others)
        later = sim.requests[sent:]
        assert len(later) == 9  # the first one's retry and the eight others, each sent once
        early = [r for r in later if r["time"] < throttled_at + 0.5]
        assert not early, f"{len(early)} request(s) sent before Retry-After had passed"
        assert sample(exp.metrics, "aep_exporter_api_throttled_total") == 1
        # The wait is counted once, however many requests sat behind it.
        assert 0.49 <= sample(exp.metrics, "aep_exporter_api_throttle_wait_seconds_total") <= 0.51


async def test_404_and_403(sim, world):
    async with open_exporter(make_config(sim), FAST_RETRY) as exp:
        with pytest.raises(NotFound) as nf:
            await exp.client.get_flow("prod", "00000000-0000-4000-8000-000000000000")
        assert "FLOW-1439-404" in str(nf.value)
        forbidden = {"title": "Forbidden", "type": "https://ns.adobe.com/aep/errors/FLOW-2120-403"}
        sim.inject(403, path="/flows/", body=forbidden, times=2)
        tokens_before = len([r for r in sim.requests if r["path"].endswith("/token/v3")])
        with pytest.raises(ApiError) as e:
            await exp.client.get_flow("prod", SEED_FLOW_ID)
        assert e.value.status == 403 and "lacks permission" in str(e.value) and "FLOW-2120-403" in str(e.value)
        # The spec lists 403 for a missing or unusable token: one new token, one more try, then reported.
        assert len([r for r in sim.requests if r["path"].endswith(SEED_FLOW_ID)]) == 2
        assert len([r for r in sim.requests if r["path"].endswith("/token/v3")]) == tokens_before + 1


async def test_403_that_a_new_token_cures_is_not_reported(sim, world):
    async with open_exporter(make_config(sim), FAST_RETRY) as exp:
        sim.inject(403, path="/flows/", body={"title": "Forbidden"}, times=1)
        flow = await exp.client.get_flow("prod", SEED_FLOW_ID)
        assert flow.id == SEED_FLOW_ID


async def test_bad_credentials_give_a_token_error_without_the_secret(sim, world):
    cfg = make_config(sim)
    bad = make_config(
        sim,
        adobe=AdobeConfig(
            client_id=cfg.adobe.client_id,
            client_secret=Secret("wrong-secret-123456"),
            org_id=cfg.adobe.org_id,
            token_url=cfg.adobe.token_url,
            base_url=cfg.adobe.base_url,
        ),
    )
    async with open_exporter(bad, FAST_RETRY) as exp:
        with pytest.raises(TokenError) as e:
            await exp.client.get_flow("prod", SEED_FLOW_ID)
        assert "invalid client_secret" in str(e.value) and "wrong-secret" not in str(e.value)
        assert sample(exp.metrics, "aep_exporter_token_refresh_failures_total") == 1
        assert not [r for r in sim.requests if r["path"].startswith(BASE_PATH)]


async def test_ims_outage_is_retried(sim, world):
    async with open_exporter(make_config(sim), FAST_RETRY) as exp:
        sim.inject(503, path="/ims/", times=2)
        await exp.tokens.token()
        assert sample(exp.metrics, "aep_exporter_token_refresh_failures_total") == 2
        assert sample(exp.metrics, "aep_exporter_api_retries_total", endpoint="token", reason="503") == 2
        assert sample(exp.metrics, "aep_exporter_token_expiry_timestamp_seconds") > time.time() + 80000


def test_retry_after_and_backoff():
    import random
    from email.utils import formatdate

    from exporter.support.retry import RetryPolicy, backoff_delay, retry_after_seconds

    assert retry_after_seconds("3") == 3 and retry_after_seconds("0.5") == 0.5
    now = time.time()
    assert 58 <= retry_after_seconds(formatdate(now + 60, usegmt=True), now=now) <= 60
    assert retry_after_seconds(formatdate(now - 60, usegmt=True), now=now) == 0
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None
    policy = RetryPolicy(base_delay=1, max_delay=8)
    rng = random.Random(1)
    delays = [[backoff_delay(policy, attempt, rng) for _ in range(200)] for attempt in (1, 2, 3, 4, 5, 6)]
    for attempt, ds in enumerate(delays, start=1):
        ceiling = min(8, 2 ** (attempt - 1))
        assert all(0 <= d <= ceiling for d in ds)
        assert max(ds) > ceiling * 0.9  # full jitter spreads over the whole range


async def test_retries_stop_at_the_total_time_cap(sim):
    from exporter.support.retry import RetryPolicy

    policy = RetryPolicy(max_attempts=100, max_elapsed=0.5, base_delay=0.2, max_delay=0.2)
    async with open_exporter(make_config(sim), policy) as exp:
        sim.inject(503, path="/runs", times=1000)
        started = time.monotonic()
        with pytest.raises(ApiError) as e:
            await exp.client.list_runs("prod", SEED_FLOW_ID, 0)
        assert time.monotonic() - started < 1.5
        assert "gave up after" in str(e.value)
        assert sample(exp.metrics, "aep_exporter_api_requests_total", endpoint="runs", code="503") < 20


async def test_a_listing_cut_every_cycle_is_one_warning_not_one_a_cycle(sim, world, caplog, monkeypatch):
    """Adobe may send the same stray next link every cycle: the cut is logged once an hour per
    endpoint and sandbox, the next warning says how many came between, the counter counts each."""
    from exporter.adobe import client as client_module
    from exporter.simulator import ApiProfile

    flow = world.add_flow("prod", "paged", period=None)
    for i in range(8):
        world.finish_run(world.start_run(flow.id, created_ms=world.now_ms() - 1000 * (i + 1)).id)
    sim.profile = ApiProfile(page_cap=3, foreign_next_every=1)  # every next link strays, its token not ours
    async with open_exporter(make_config(sim), FAST_RETRY) as exp:
        for _ in range(3):
            assert len(await exp.client.list_runs("prod", flow.id, 0)) == 3  # the first page kept
        warned = [r for r in caplog.records if "listing incomplete" in r.getMessage()]
        assert len(warned) == 1 and "more since" not in warned[0].getMessage()
        monkeypatch.setattr(client_module, "CUT_LOG_EVERY", 0.0)
        await exp.client.list_runs("prod", flow.id, 0)
        warned = [r for r in caplog.records if "listing incomplete" in r.getMessage()]
        assert len(warned) == 2 and "(2 more since the last such warning)" in warned[1].getMessage()
        assert (
            sample(exp.metrics, "aep_exporter_parse_errors_total", endpoint="runs")
            == 4 * client_module.LISTING_ATTEMPTS
        )

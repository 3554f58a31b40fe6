"""IMS tokens when IMS says no: one fetch at a time, the failure shared by every caller until a
backoff deadline, a bounded redaction set. Against the simulator over real HTTP, with a clock the
test moves so that the backoff schedule is exact."""

from __future__ import annotations

import asyncio
import io
import logging

import aiohttp
import pytest
from conftest import FAST_RETRY, make_config

from exporter.adobe.client import ApiError, FlowServiceClient
from exporter.adobe.ims import TokenError, TokenProvider
from exporter.config import AdobeConfig, Config
from exporter.runtime import open_exporter
from exporter.simulator import BASE_PATH, Chaos, Simulator
from exporter.support.secrets import REDACTED, RedactingFilter, Secret
from exporter.support.selfmetrics import SelfMetrics

BAD_SECRET = "rotated-in-adobe-not-here-42"


class Clock:
    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


def with_secret(cfg: Config, secret: str) -> AdobeConfig:
    a = cfg.adobe
    return AdobeConfig(
        client_id=a.client_id,
        client_secret=Secret(secret),
        org_id=a.org_id,
        token_url=a.token_url,
        base_url=a.base_url,
    )


def ims_requests(sim: Simulator) -> int:
    return sum(1 for r in sim.requests if r["path"].startswith("/ims/"))


def failures(metrics: SelfMetrics) -> float:
    return metrics.registry.get_sample_value("aep_exporter_token_refresh_failures_total") or 0.0


async def get_flows(client: FlowServiceClient, flow_ids: list[str]) -> list[BaseException | None]:
    """Every flow at once, as a cycle does; what each call ended with."""
    results = await asyncio.gather(*(client.get_flow("prod", f) for f in flow_ids), return_exceptions=True)
    return [r if isinstance(r, BaseException) else None for r in results]


@pytest.fixture
def fifty(world) -> list[str]:
    return [world.add_flow("prod", f"flow-{i}", period=None).id for i in range(50)]


async def test_bad_secret_costs_one_token_request_per_backoff_step_not_one_per_flow(sim, world, fifty):
    clock = Clock()
    metrics = SelfMetrics()
    adobe = with_secret(make_config(sim), BAD_SECRET)
    async with aiohttp.ClientSession() as session:
        tokens = TokenProvider(session, adobe, metrics, 5, FAST_RETRY, clock=clock)
        client = FlowServiceClient(session, adobe, tokens, metrics, 10, 5, FAST_RETRY)

        errors = await get_flows(client, fifty)
        assert all(isinstance(e, TokenError) for e in errors)
        assert len({str(e) for e in errors}) == 1 and "invalid client_secret" in str(errors[0])
        assert BAD_SECRET not in str(errors[0])
        assert ims_requests(sim) == 1 and failures(metrics) == 1
        assert not [r for r in sim.requests if r["path"].startswith(BASE_PATH)]

        # The schedule: 1 s, doubling, capped at 5 minutes. Just before each deadline every caller
        # still gets the cached error; at the deadline exactly one new request goes out.
        expected = 1
        for step in [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]:
            clock.now += step - 0.01
            assert all(isinstance(e, TokenError) for e in await get_flows(client, fifty))
            assert ims_requests(sim) == expected
            clock.now += 0.01
            assert all(isinstance(e, TokenError) for e in await get_flows(client, fifty))
            expected += 1
            assert ims_requests(sim) == expected and failures(metrics) == expected

        # The secret is fixed in Adobe's console: at the next deadline the token comes, and stays.
        world.client_secret = BAD_SECRET
        clock.now += 300
        assert await get_flows(client, fifty) == [None] * 50
        assert ims_requests(sim) == expected + 1 and failures(metrics) == expected


async def test_ims_outage_retries_once_then_one_request_per_backoff_step(sim, world, fifty):
    clock = Clock()
    metrics = SelfMetrics()
    cfg = make_config(sim)
    sim.inject(503, path="/ims/", times=10**6)
    async with aiohttp.ClientSession() as session:
        tokens = TokenProvider(session, cfg.adobe, metrics, 5, FAST_RETRY, clock=clock)
        client = FlowServiceClient(session, cfg.adobe, tokens, metrics, 10, 5, FAST_RETRY)
        errors = await get_flows(client, fifty)
        assert all(isinstance(e, TokenError) for e in errors) and len({str(e) for e in errors}) == 1
        # The first fetch rides out a blip with the retry policy (4 attempts); then it is cached.
        assert ims_requests(sim) == FAST_RETRY.max_attempts == failures(metrics)
        await get_flows(client, fifty)
        assert ims_requests(sim) == FAST_RETRY.max_attempts
        clock.now += 1
        await get_flows(client, fifty)  # while it fails, one request per step: no retry burst
        assert ims_requests(sim) == FAST_RETRY.max_attempts + 1 == failures(metrics)

        sim.faults.clear()
        sim.inject(429, path="/ims/", times=10**6, headers={"Retry-After": "1"})
        clock.now += 2
        await get_flows(client, fifty)
        assert ims_requests(sim) == FAST_RETRY.max_attempts + 2 == failures(metrics)

        sim.faults.clear()
        clock.now += 4
        assert await get_flows(client, fifty) == [None] * 50
        assert ims_requests(sim) == FAST_RETRY.max_attempts + 3


async def test_a_failed_renewal_keeps_the_current_token_until_it_expires(sim, world):
    clock = Clock()
    world.token_lifetime = 1000
    cfg = make_config(sim)
    async with aiohttp.ClientSession() as session:
        tokens = TokenProvider(session, cfg.adobe, SelfMetrics(), 5, FAST_RETRY, clock=clock)
        current = await tokens.token()
        sim.inject(503, path="/ims/", times=10**6)
        clock.now += 901  # renewal due (90% of its life), IMS down: the token still works for 99 s
        assert await tokens.token() == current
        assert ims_requests(sim) == 1 + FAST_RETRY.max_attempts
        assert await tokens.token() == current
        assert ims_requests(sim) == 1 + FAST_RETRY.max_attempts  # failure cached: no new request
        clock.now += 99
        with pytest.raises(TokenError):
            await tokens.token()


async def test_adobe_refusing_every_new_token_does_not_turn_each_request_into_a_token_request(sim, world, fifty):
    """IMS issues tokens but the Flow Service answers 401 to all of them (say, the credential lost
    its API): invalidating on 401 must not cost a token request per flow."""
    clock = Clock()
    metrics = SelfMetrics()
    cfg = make_config(sim)
    sim.inject(401, path="/flows/", times=10**6, body={"error_code": "401013", "message": "Oauth token is not valid"})
    async with aiohttp.ClientSession() as session:
        tokens = TokenProvider(session, cfg.adobe, metrics, 5, FAST_RETRY, clock=clock)
        client = FlowServiceClient(session, cfg.adobe, tokens, metrics, 10, 5, FAST_RETRY)
        for flow_id in fifty:  # one after the other, as flows polled one by one meet it
            with pytest.raises((ApiError, TokenError)):
                await client.get_flow("prod", flow_id)
        # The first token, and a renewal after each of the first two 401s; then a backoff step.
        assert world.tokens_issued == 3
        for step in [1, 2, 4]:
            clock.now += step - 0.01
            for flow_id in fifty:
                with pytest.raises(TokenError):
                    await client.get_flow("prod", flow_id)
            clock.now += 0.01
            for flow_id in fifty:
                with pytest.raises((ApiError, TokenError)):
                    await client.get_flow("prod", flow_id)
        assert world.tokens_issued == 6
        # A token that served for a long time and is then refused is renewed at once, as before.
        sim.faults.clear()
        clock.now += 3600
        await client.get_flow("prod", fifty[0])
        assert world.tokens_issued == 7
        clock.now += 3600
        world.tokens.clear()
        await client.get_flow("prod", fifty[0])
        assert world.tokens_issued == 8


async def test_tokens_revoked_after_serving_are_renewed_at_once_however_often(sim, world, fifty):
    """A token that served requests and is then refused was revoked (or expired early): renewing
    it at once is right every time, even when it happens again and again within seconds. Only
    tokens refused on their first use count towards the hold that protects IMS."""
    clock = Clock()  # never moves: every token is seconds old when it is revoked
    metrics = SelfMetrics()
    cfg = make_config(sim)
    async with aiohttp.ClientSession() as session:
        tokens = TokenProvider(session, cfg.adobe, metrics, 5, FAST_RETRY, clock=clock)
        client = FlowServiceClient(session, cfg.adobe, tokens, metrics, 10, 5, FAST_RETRY)
        for flow_id in fifty[:6]:
            await client.get_flow("prod", flow_id)  # the token serves
            world.tokens.clear()  # and is revoked
        await client.get_flow("prod", fifty[0])
        assert world.tokens_issued == 7  # one renewal per revocation, and no hold between them


async def test_tokens_revoked_at_random_under_faults_never_stop_the_requests(sim, world, fifty):
    """Tokens revoked at random (5% of requests) beside 5xx, 429 and truncated bodies: every
    request still gets its answer (a hold would raise TokenError here), the revoked tokens renewed."""
    metrics = SelfMetrics()
    cfg = make_config(sim)
    sim.chaos = Chaos(server_error=0.1, throttle=0.05, truncate=0.03, revoke=0.05, retry_after="0", seed=7)
    async with aiohttp.ClientSession() as session:
        tokens = TokenProvider(session, cfg.adobe, metrics, 5, FAST_RETRY)
        client = FlowServiceClient(session, cfg.adobe, tokens, metrics, 10, 5, FAST_RETRY)
        for _ in range(4):
            for flow_id in fifty:
                await client.get_flow("prod", flow_id)
    assert world.tokens_issued > 5  # revocations happened, and each was renewed


async def test_wrong_secret_50_flows_polled_one_by_one_cost_one_token_request(sim, world, fifty):
    """The issue's measurement, in small: three cycles of 50 flows polled one by one, wrong secret."""
    cfg = make_config(sim, fetch_strategy="per_flow", lookback=3600.0)
    world.flows.pop(next(f for f in world.flows if f not in fifty))  # just the 50
    cfg = make_config(sim, fetch_strategy="per_flow", lookback=3600.0, adobe=with_secret(cfg, BAD_SECRET))
    async with open_exporter(cfg) as exp:
        for _ in range(3):
            await exp.poller.poll_once()
        # Within one backoff step (1 s) from the first failure: one request; a slow machine may
        # cross into the second step.
        assert 1 <= ims_requests(sim) <= 2 and failures(exp.metrics) == ims_requests(sim)
        assert not [f for f in exp.ledger.flows.values() if f.up]


def masking_logger(name: str) -> tuple[logging.Logger, io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger(name)
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, out


async def test_expired_tokens_leave_the_redaction_set_the_current_one_and_the_secret_stay(sim, world):
    from exporter.support import secrets

    clock = Clock()
    world.token_lifetime = 100
    cfg = make_config(sim)
    secret = cfg.adobe.client_secret.reveal()
    issued = []
    async with aiohttp.ClientSession() as session:
        tokens = TokenProvider(session, cfg.adobe, SelfMetrics(), 5, FAST_RETRY, clock=clock)
        for _ in range(200):
            issued.append(await tokens.token())
            clock.now += 91  # past 90% of its life: the next call renews
    assert len(set(issued)) == 200

    logger, out = masking_logger("test.tokens.redaction")
    current = issued[-1]
    logger.info("current %s secret %s oldest %s", current, secret, issued[0])
    try:
        raise RuntimeError(f"echoed {current}")
    except RuntimeError:
        logger.exception("failed with %s", secret)
    text = out.getvalue()
    assert current not in text and secret not in text
    assert text.count(REDACTED) == 4 and f"echoed {REDACTED}" in text
    assert issued[0] in text  # expired long ago: no longer worth a place in the set
    assert secrets.redaction_set_size() <= secrets.MAX_RECENT_TOKENS + secrets.MAX_PINNED

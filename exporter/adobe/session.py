"""An Adobe session: one HTTP connection pool, an IMS token and a Flow Service client over it.

In: a config (credentials, concurrency, timeouts, retry policy) and the metrics the client counts
its requests in. Out: the connected pieces, for as long as the `async with` lasts. The daemon
(exporter/runtime.py) builds its poller on one; the run commands (`trigger`, `backfill`, `runs`,
`retry`) open one of their own and need nothing else.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp

from exporter import __version__
from exporter.adobe.client import FlowServiceClient
from exporter.adobe.ims import TokenProvider
from exporter.config import Config
from exporter.support.retry import RetryPolicy
from exporter.support.selfmetrics import SelfMetrics


@dataclass
class AdobeSession:
    """What talks to Adobe: the pool every request shares, the token and the client."""

    session: aiohttp.ClientSession
    tokens: TokenProvider
    client: FlowServiceClient


def adobe_clients(
    session: aiohttp.ClientSession, config: Config, metrics: SelfMetrics, retry: RetryPolicy | None = None
) -> tuple[TokenProvider, FlowServiceClient]:
    """A token provider and a Flow Service client over `session`, as the config sets them up;
    `retry` overrides the config's policy (the tests use short backoffs)."""
    policy = retry or config.retry
    tokens = TokenProvider(session, config.adobe, metrics, config.request_timeout, policy)
    client = FlowServiceClient(
        session,
        config.adobe,
        tokens,
        metrics,
        config.max_concurrency,
        config.request_timeout,
        policy,
        config.max_requests_per_second,
        max_url_length=config.max_url_length,
        max_retry_after=config.poll_interval,
    )
    return tokens, client


@asynccontextmanager
async def open_adobe(
    config: Config, metrics: SelfMetrics | None = None, retry: RetryPolicy | None = None
) -> AsyncIterator[AdobeSession]:
    """One session for every request to Adobe, closed on leaving. Without `metrics` the client
    counts in a registry of its own that nobody serves (a command that exposes no metrics)."""
    # One keep-alive pool for every request to Adobe; its size matches the concurrency bound.
    connector = aiohttp.TCPConnector(limit=config.max_concurrency + 2, keepalive_timeout=60)
    headers = {"User-Agent": f"aep-flow-exporter/{__version__}"}
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        tokens, client = adobe_clients(session, config, metrics or SelfMetrics(), retry)
        yield AdobeSession(session, tokens, client)

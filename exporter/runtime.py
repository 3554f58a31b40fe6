"""Wiring: one config in, the connected pieces out (session → token → client → poller → ledger →
collector), shared by the daemon, --once, --check and the tests."""

from __future__ import annotations

from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import AsyncIterator

import aiohttp

from exporter import __version__
from exporter.auth import TokenProvider
from exporter.client import FlowServiceClient
from exporter.collector import FlowCollector
from exporter.config import Config
from exporter.ledger import Ledger
from exporter.poller import Poller
from exporter.retry import RetryPolicy
from exporter.selfmetrics import SelfMetrics


@dataclass
class Exporter:
    config: Config
    metrics: SelfMetrics
    tokens: TokenProvider
    client: FlowServiceClient
    ledger: Ledger
    poller: Poller

    @property
    def registry(self):  # what /metrics serves: self-metrics plus the flow collector
        return self.metrics.registry


@asynccontextmanager
async def open_exporter(config: Config, retry: RetryPolicy = RetryPolicy()) -> AsyncIterator[Exporter]:
    metrics = SelfMetrics()
    # One keep-alive pool for every request to Adobe; its size matches the concurrency bound.
    connector = aiohttp.TCPConnector(limit=config.max_concurrency + 2, keepalive_timeout=60)
    headers = {"User-Agent": f"aep-flow-exporter/{__version__}"}
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        tokens = TokenProvider(session, config.adobe, metrics, config.request_timeout, retry)
        client = FlowServiceClient(
            session, config.adobe, tokens, metrics, config.max_concurrency, config.request_timeout, retry
        )
        ledger = Ledger()
        poller = Poller(config, client, ledger)
        metrics.registry.register(FlowCollector(ledger))
        yield Exporter(config, metrics, tokens, client, ledger, poller)

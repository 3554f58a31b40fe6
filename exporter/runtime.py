"""Wiring: one config in, the connected pieces out (session → token → client → poller → ledger →
collector), shared by the daemon, --once, --check and the tests. Also what the daemon does
around the poll loop: the state file and config reloads."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import aiohttp

from exporter.adobe.client import FlowServiceClient
from exporter.adobe.ims import TokenProvider
from exporter.adobe.session import adobe_clients, open_adobe
from exporter.config import Config
from exporter.config.shard import Shard
from exporter.events.service import STATE_KEY, EventService
from exporter.exposition import status_page
from exporter.exposition.collectors.fetching import FetchCollector
from exporter.exposition.collectors.flows import FlowCollector
from exporter.exposition.exemplars import latest
from exporter.exposition.flow_page import links
from exporter.exposition.render import RenderCache
from exporter.fetch.poller import Poller
from exporter.ledger.ledger import Ledger
from exporter.ledger.store import StateStore
from exporter.support import tuning
from exporter.support.looplag import LoopLagMonitor
from exporter.support.retry import RetryPolicy
from exporter.support.selfmetrics import SelfMetrics

log = logging.getLogger(__name__)


@dataclass
class Exporter:
    config: Config
    metrics: SelfMetrics
    session: aiohttp.ClientSession
    tokens: TokenProvider
    client: FlowServiceClient
    ledger: Ledger
    poller: Poller
    retry_override: RetryPolicy | None = None
    store: StateStore | None = field(default=None)
    render: RenderCache = field(init=False)
    rows: status_page.Rows = field(init=False)
    lag: LoopLagMonitor = field(default_factory=LoopLagMonitor)
    collector: FlowCollector | None = None
    rendered_cycles: int = 0  # the poller's cycle count at the last rendering
    events: EventService | None = None  # Adobe I/O Events beside polling (events: in the config)

    def __post_init__(self) -> None:
        # Kept between render steps: a row is made again when its flow changed.
        rows = self.rows = status_page.Rows(links(self.config))
        self.render = RenderCache(
            self.metrics.registry, status=lambda: rows.snapshot(self.ledger), exemplars=lambda: latest(self.ledger)
        )

    async def after_cycle(self) -> None:
        """Between cycles, while the ledger holds still: save it, then render the exposition and
        the status page's rows."""
        self.metrics.cycle_duration.set(self.poller.last_cycle_seconds)
        await self.save_state()
        self.metrics.loop_lag.set(self.lag.take())
        if self.events is not None:
            async with self.events.render_lock:  # no announcement is applied while it reads the ledger
                rendered = await self.render.refresh()
        else:
            rendered = await self.render.refresh()
        self.metrics.render_duration.set(rendered.seconds)
        self.metrics.render_flows.set(rendered.rebuilt)
        self.rendered_cycles = self.poller.cycles
        tuning.freeze_survivors()  # the cycle's survivors out of the collector's way (exporter/support/tuning.py)
        await asyncio.to_thread(tuning.trim)  # the cycle's buffers are free now: give them back

    @property
    def ready(self) -> bool:
        """True once /metrics serves the rendering of a finished cycle (the /ready probe): a
        scrape after /ready turned 200 sees the first cycle's numbers, not the empty start page."""
        return self.rendered_cycles > 0

    @property
    def registry(self):  # what /metrics serves: self-metrics plus the flow collector
        return self.metrics.registry

    async def save_state(self) -> None:
        """Write the ledger. While that fails, counters are served as last saved (the ledger
        holds them), so a restart can never make one go down."""
        if self.store is None:
            self.ledger.saved(True)  # nothing to run ahead of
            return
        try:
            await self.store.save(self.ledger)
        except OSError as e:  # a full or read-only disk must not stop the polling
            self.ledger.saved(False)
            self.metrics.state_save_failures.inc()
            log.error(
                "cannot write the state file %s: %s; counters stay as last saved until it can be", self.store.path, e
            )
        else:
            self.ledger.saved(True)
            self.metrics.state_saved.set_to_current_time()

    def reload(self, config: Config) -> None:
        """Take a new, already validated config: new clients if the connection settings changed;
        the poller switches to it at its next cycle."""
        if (
            config.adobe,
            config.max_concurrency,
            config.request_timeout,
            config.retry,
            config.max_requests_per_second,
            config.max_url_length,
            config.poll_interval,
        ) != (
            self.config.adobe,
            self.config.max_concurrency,
            self.config.request_timeout,
            self.config.retry,
            self.config.max_requests_per_second,
            self.config.max_url_length,
            self.config.poll_interval,
        ):
            self.tokens, self.client = adobe_clients(self.session, config, self.metrics, self.retry_override)
        self.ledger.set_max_error_codes(config.max_error_codes_per_flow)
        self.ledger.set_runs_per_flow(config.run_history_per_flow)
        self.rows.links = links(config)
        if self.collector is not None:
            self.collector.options = config.metrics
            self.collector.links = links(config)
        if self.store is not None and config.state_file != self.store.path:
            self.store = (
                StateStore(config.state_file, config.adobe.org_id, config.adobe.base_url) if config.state_file else None
            )
        self.config = config
        if self.events is not None:
            self.events.reconfigure(config)
        self.poller.reconfigure(config, self.client)
        self.metrics.config_reload_ok.set(1)
        self.metrics.config_reload_time.set(time.time())


@asynccontextmanager
async def open_exporter(
    config: Config, retry: RetryPolicy | None = None, persist: bool = False, shard: Shard | None = None
) -> AsyncIterator[Exporter]:
    """`retry` overrides the config's policy (the tests use short backoffs). With `persist`, the
    ledger is restored from the state file (if the config names one) before the first poll."""
    metrics = SelfMetrics()
    async with open_adobe(config, metrics, retry) as adobe:
        session, tokens, client = adobe.session, adobe.tokens, adobe.client
        ledger = Ledger(config.max_error_codes_per_flow, config.run_history_per_flow)
        poller = Poller(config, client, ledger, shard=shard)
        if shard is not None:
            metrics.shard.labels(str(shard.index), str(shard.count)).set(1)
        store = None
        if persist and config.state_file:
            store = StateStore(config.state_file, config.adobe.org_id, config.adobe.base_url)
            store.load(ledger, {s.name for s in config.sandboxes})
            poller.adopt_restored()
        collector = FlowCollector(ledger, config.metrics, links(config))
        metrics.registry.register(collector)
        exp = Exporter(config, metrics, session, tokens, client, ledger, poller, retry, store)
        exp.collector = collector
        exp.render.families = collector.families
        metrics.registry.register(FetchCollector(poller.capabilities, lambda: exp.client.listing_stats))
        if config.events is not None:
            exp.events = EventService(
                config,
                ledger,
                poller,
                session,
                metrics.registry,
                auth=lambda: exp.tokens,
                render=exp.render.refresh,
                saved=store.loaded.get(STATE_KEY) if store is not None else None,
            )
            if store is not None:
                store.sections[STATE_KEY] = exp.events.state
        yield exp

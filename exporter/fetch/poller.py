"""The poll loop: every `poll_interval`, discover the sandboxes that are due, then poll every watched
flow of every sandbox with the sandbox's fetch strategy (exporter/fetch/), all sandboxes at once.
The client's semaphore bounds how many requests are in flight to Adobe.

Failures are contained: a flow's failed requests mark it down and keep its last good values; a bug
in one sandbox's poll marks that sandbox's flows down and the others go on.

Out: every result into the ledger, through its methods. From beside the loop, a reload
(`reconfigure`) and the events (`set_interval`, `wake`, `reconcile_now`) steer it by methods too.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from exporter.adobe.client import FlowServiceClient
from exporter.config import Config, SandboxConfig
from exporter.config.shard import Shard
from exporter.fetch.batched import Batched
from exporter.fetch.capabilities import Capabilities
from exporter.fetch.discovery import discover
from exporter.fetch.names import resolve_all
from exporter.fetch.per_flow import PerFlow
from exporter.fetch.strategy import BatchRefused, FetchContext, Strategy
from exporter.ledger.ledger import Ledger
from exporter.support.logs import fields

log = logging.getLogger(__name__)

BATCHED: Strategy = Batched()
PER_FLOW: Strategy = PerFlow()


class Poller:
    """The poll loop of one exporter, and what fetching learned so far (`capabilities`)."""

    def __init__(
        self,
        config: Config,
        client: FlowServiceClient,
        ledger: Ledger,
        clock: Callable[[], float] = time.time,
        shard: Shard | None = None,
    ) -> None:
        self.config = config
        self.shard = shard
        self.client = client
        self.ledger = ledger
        self.clock = clock
        self.cycles = 0
        self.last_cycle_seconds = 0.0
        self._pending: tuple[Config, FlowServiceClient] | None = None
        self._wake = asyncio.Event()
        self.capabilities: dict[str, Capabilities] = {}  # what fetching learned, by sandbox
        self._interval: Callable[[], float] = lambda: self.config.poll_interval  # see set_interval
        # Held by each cycle, so that renderings between cycles (exporter/events) do not overlap one.
        self.cycle_lock = asyncio.Lock()
        self._watch()

    @property
    def ctx(self) -> FetchContext:
        return FetchContext(self.config, self.client, self.ledger, self.clock, self.capabilities)

    def flows_of(self, sandbox: SandboxConfig) -> list[str]:
        """The sandbox's watched flows: those named in the config, then those discovered; with
        sharding, only those of this replica's shard."""
        named = list(sandbox.flows)
        known = {f.lower() for f in named}
        flows = named + [f for f in self.ledger.discovered(sandbox.name) if f.lower() not in known]
        return [f for f in flows if self.shard.owns(f)] if self.shard else flows

    def adopt_restored(self) -> None:
        """After the state file was loaded: flows it holds for a discovering sandbox count as
        discovered until discovery says otherwise, so a discovery error at start does not drop
        their accounting; flows of sandboxes or flows no longer configured are dropped."""
        for sandbox in self.config.sandboxes:
            if sandbox.discover is not None:
                restored = [f for s, f in self.ledger.flows if s == sandbox.name and f not in sandbox.flows]
                self.ledger.adopt_discovered(sandbox.name, restored)
        self._watch()

    def _watch(self) -> None:
        self.ledger.watch(
            [(s.name, f) for s in self.config.sandboxes for f in self.flows_of(s)],
            [s.name for s in self.config.sandboxes],
        )

    def reconfigure(self, config: Config, client: FlowServiceClient) -> None:
        """Switch to a new config at the start of the next cycle (not in the middle of one, where
        a flow just removed could be written back), and start that cycle now."""
        self._pending = (config, client)
        self._wake.set()

    @property
    def ready(self) -> bool:
        """True once one full cycle has finished (the /ready probe)."""
        return self.cycles > 0

    async def poll_once(self) -> None:
        """One cycle over every watched flow of every sandbox."""
        async with self.cycle_lock:
            started = time.monotonic()
            try:
                await self._cycle()
            finally:
                self.last_cycle_seconds = time.monotonic() - started

    async def _cycle(self) -> None:
        if self._pending is not None:
            (self.config, self.client), self._pending = self._pending, None
            self.ledger.forget_discovery_times()  # the discover settings may have changed
            self._watch()
        now = self.clock()
        due = [
            s
            for s in self.config.sandboxes
            if s.discover is not None and self.ledger.discovery_due(s.name, now, self.config.discovery_interval)
        ]
        if due:
            ok = await asyncio.gather(*(self.discover(s) for s in due))
            self._watch()
            for s, listed in zip(due, ok):
                if listed:
                    self.ledger.take_discovered_metadata(s.name, now)
        await asyncio.gather(*(self._poll_sandbox(s.name, self.flows_of(s)) for s in self.config.sandboxes))
        await resolve_all(self.ctx, [(s.name, self.flows_of(s)) for s in self.config.sandboxes])  # names: decoration
        self.cycles += 1

    async def discover(self, sandbox: SandboxConfig) -> bool:
        """List the sandbox's flows (see exporter/fetch/discovery.py); False if that failed."""
        return await discover(self.ctx, sandbox)

    async def run(self, stop: asyncio.Event, after_cycle: Callable[[], Awaitable[None]] | None = None) -> None:
        """Poll every `poll_interval` until `stop` is set, calling `after_cycle` after each cycle.
        A slow cycle delays the next one rather than overlapping it; a reload starts one at once."""
        while not stop.is_set():
            started = time.monotonic()
            self._wake.clear()
            try:
                await self.poll_once()
            except Exception:  # flow errors are contained below; this is a bug, and must not stop us
                log.exception("poll cycle failed unexpectedly; trying again next cycle")
            if after_cycle is not None:
                await after_cycle()
            remaining = self._interval() - (time.monotonic() - started)
            if remaining > 0 and not stop.is_set():
                await self._pause(stop, remaining)

    def set_interval(self, interval: Callable[[], float]) -> None:
        """Seconds between cycles from now on, asked after each cycle (the events: a slow sweep
        while Adobe announces runs, `poll_interval` otherwise)."""
        self._interval = interval

    def wake(self) -> None:
        """Start the next cycle now (the events stopped flowing)."""
        self._wake.set()

    def reconcile_now(self) -> None:
        """Start a cycle now that lists every flow's whole lookback window (the batched strategy's
        reconciliation; per-flow polls always do): the events lost track of what happened."""
        for caps in self.capabilities.values():
            caps.reconcile_next()
        self._wake.set()

    async def _pause(self, stop: asyncio.Event, seconds: float) -> None:
        """Until the next cycle is due, `stop` is set, or a reload wakes us."""
        waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()

    def strategy_of(self, sandbox: str) -> Strategy:
        """per_flow if configured, or while a fallback holds (batching is tried again after
        batch_retry_interval)."""
        if self.config.fetch_strategy == "per_flow":
            return PER_FLOW
        if not self.capabilities.setdefault(sandbox, Capabilities()).batching_allowed(
            sandbox, self.config.batch_retry_interval
        ):
            return PER_FLOW
        return BATCHED

    async def _poll_sandbox(self, sandbox: str, flow_ids: list[str]) -> None:
        """Poll one sandbox with its strategy; whatever goes wrong stays within the sandbox."""
        started = time.monotonic()
        strategy = self.strategy_of(sandbox)
        try:
            results = await self._poll_with(strategy, sandbox, flow_ids)
        except Exception:  # a bug: this sandbox's flows are down this cycle, the others go on
            log.exception("poll of the sandbox failed unexpectedly", extra=fields(sandbox=sandbox))
            for flow_id in flow_ids:
                self.ledger.mark_down(self.ledger.flow(sandbox, flow_id))
            results = [False]
        used = PER_FLOW if self.capabilities.get(sandbox) and self.capabilities[sandbox].fallback else strategy
        if self.config.fetch_strategy == "per_flow":
            used = PER_FLOW
        self.ledger.record_sandbox_poll(sandbox, used.name, time.monotonic() - started, all(results), self.clock())

    async def _poll_with(self, strategy: Strategy, sandbox: str, flow_ids: list[str]) -> list[bool]:
        try:
            return await strategy.poll(self.ctx, sandbox, flow_ids)
        except BatchRefused as e:
            self.ledger.record_batch_refusal(sandbox)
            caps = self.capabilities[sandbox]
            if e.reason == "lists_refused":
                caps.lists = "refused"
                caps.fall_back(sandbox, e.reason, f"Adobe refused a batched query ({e})")
            else:
                caps.fall_back(sandbox, e.reason, str(e))
            return await PER_FLOW.poll(self.ctx, sandbox, flow_ids)

"""The poll loop: every `poll_interval`, fetch each watched flow's metadata (when due) and runs,
and hand complete results to the ledger. All flows of all sandboxes are polled concurrently; the
client's semaphore bounds how many requests are in flight to Adobe.

A flow's failure is contained: its requests failing mark it down and keep its last good values;
nothing a flow's poll raises stops the loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Awaitable, Callable

from exporter.auth import TokenError
from exporter.client import ApiError, FlowServiceClient, NotFound
from exporter.config import Config
from exporter.ledger import FlowState, Ledger
from exporter.translate import run_facts

log = logging.getLogger(__name__)


class Poller:
    def __init__(
        self,
        config: Config,
        client: FlowServiceClient,
        ledger: Ledger,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.client = client
        self.ledger = ledger
        self.clock = clock
        self.cycles = 0
        self._pending: tuple[Config, FlowServiceClient] | None = None
        self._wake = asyncio.Event()
        self._watch(config)

    def _watch(self, config: Config) -> None:
        self.ledger.retain(config.watched_flows())
        for sandbox, flow_id in config.watched_flows():
            self.ledger.flow(sandbox, flow_id)

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
        if self._pending is not None:
            (self.config, self.client), self._pending = self._pending, None
            self._watch(self.config)
        await asyncio.gather(*(self._poll_sandbox(s.name, s.flows) for s in self.config.sandboxes))
        self.cycles += 1

    async def run(self, stop: asyncio.Event, after_cycle: Callable[[], Awaitable[None]] | None = None) -> None:
        """Poll every `poll_interval` until `stop` is set, calling `after_cycle` after each cycle.
        A slow cycle delays the next one rather than overlapping it; a reload starts one at once."""
        while not stop.is_set():
            started = time.monotonic()
            self._wake.clear()
            await self.poll_once()
            if after_cycle is not None:
                await after_cycle()
            remaining = self.config.poll_interval - (time.monotonic() - started)
            if remaining > 0 and not stop.is_set():
                waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
                try:
                    await asyncio.wait(waiters, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for w in waiters:
                        w.cancel()

    async def _poll_sandbox(self, sandbox: str, flow_ids: tuple[str, ...]) -> None:
        started = time.monotonic()
        results = await asyncio.gather(*(self._poll_flow(self.ledger.flow(sandbox, f)) for f in flow_ids))
        state = self.ledger.sandboxes[sandbox]
        state.poll_duration = time.monotonic() - started
        if all(results):
            state.last_success = self.clock()

    async def _poll_flow(self, state: FlowState) -> bool:
        """Poll one flow; True if it was polled without error (a gone flow counts as polled)."""
        now = self.clock()
        window_start = now - self.config.lookback
        where = f"sandbox {state.sandbox} flow {state.flow_id}"
        try:
            due = state.meta_fetched_at is None or now - state.meta_fetched_at >= self.config.metadata_refresh
            if due:
                flow = await self.client.get_flow(state.sandbox, state.flow_id)
                if state.gone:
                    log.info("%s: found again", where)
                self.ledger.set_flow(state, flow, now)
            runs = await self.client.list_runs(state.sandbox, state.flow_id, window_start)
        except NotFound as e:
            if not state.gone:
                log.warning(
                    "%s: not found (%s): deleted, or hidden from this credential by access labels; "
                    "its series leave /metrics until it is found again",
                    where,
                    e,
                )
            self.ledger.mark_gone(state)
            return True
        except (ApiError, TokenError) as e:
            log.warning("%s: poll failed: %s", where, e)
            self.ledger.mark_down(state)
            return False
        except Exception:  # a bug must cost one flow one cycle, not the process
            log.exception("%s: poll failed unexpectedly", where)
            self.ledger.mark_down(state)
            return False

        facts = [
            run_facts(r)
            for r in runs
            # The API filters on both, but our accounting must not depend on it: a run older than
            # the window would be forgotten and could then be counted a second time.
            if r.created is not None and r.created > window_start
            and (r.flow_id is None or r.flow_id.lower() == state.flow_id.lower())
        ]
        counted = self.ledger.apply_runs(state, facts, window_start)
        if counted:
            log.debug("%s: %d newly completed run(s) counted", where, counted)
        return True

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
from collections.abc import Awaitable, Callable

from exporter.auth import TokenError
from exporter.client import ApiError, FlowServiceClient, NotFound
from exporter.config import Config, SandboxConfig
from exporter.ledger import FlowState, Ledger
from exporter.models import Flow, Run
from exporter.shard import Shard
from exporter.translate import run_facts

log = logging.getLogger(__name__)

BATCH_IDS = 100  # IDs per filter: 100 UUIDs make a ~3.7 KB query string, well under URL limits


class _BatchRefused(Exception):
    """Adobe answered 400 to a batched query: this sandbox goes per-flow."""


def _chunks(items: list, n: int = BATCH_IDS) -> list[list]:
    return [items[i : i + n] for i in range(0, len(items), n)]


class Poller:
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
        # Flows found by discovery, per sandbox, and when each sandbox was last discovered.
        self.discovered: dict[str, dict[str, Flow]] = {}
        self._discovered_at: dict[str, float] = {}
        self._watch()

    def flows_of(self, sandbox: SandboxConfig) -> list[str]:
        """The sandbox's watched flows: those named in the config, then those discovered; with
        sharding, only those of this replica's shard."""
        named = list(sandbox.flows)
        known = {f.lower() for f in named}
        flows = named + [f for f in self.discovered.get(sandbox.name, {}) if f.lower() not in known]
        return [f for f in flows if self.shard.owns(f)] if self.shard else flows

    def adopt_restored(self) -> None:
        """After the state file was loaded: flows it holds for a discovering sandbox count as
        discovered until discovery says otherwise, so a discovery error at start does not drop
        their accounting; flows of sandboxes or flows no longer configured are dropped."""
        by_name = {s.name: s for s in self.config.sandboxes}
        for sandbox, flow_id in list(self.ledger.flows):
            cfg = by_name.get(sandbox)
            if cfg is not None and cfg.discover is not None and flow_id not in cfg.flows:
                self.discovered.setdefault(sandbox, {}).setdefault(flow_id, Flow(id=flow_id))
        self._watch()

    def _watch(self) -> None:
        watched = [(s.name, f) for s in self.config.sandboxes for f in self.flows_of(s)]
        self.ledger.retain(watched, [s.name for s in self.config.sandboxes])
        for sandbox, flow_id in watched:
            self.ledger.flow(sandbox, flow_id)
        for name in [n for n in self.discovered if n not in {s.name for s in self.config.sandboxes}]:
            del self.discovered[name]

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
        started = time.monotonic()
        try:
            await self._cycle()
        finally:
            self.last_cycle_seconds = time.monotonic() - started

    async def _cycle(self) -> None:
        if self._pending is not None:
            (self.config, self.client), self._pending = self._pending, None
            self._discovered_at.clear()  # the discover settings may have changed
            self._watch()
        now = self.clock()
        due = [
            s
            for s in self.config.sandboxes
            if s.discover is not None
            and now - self._discovered_at.get(s.name, float("-inf")) >= self.config.discovery_interval
        ]
        if due:
            await asyncio.gather(*(self.discover(s) for s in due))
            self._watch()
            for s in due:  # the listing carried each flow's metadata: no GET /flows/{id} needed now
                for flow in self.discovered.get(s.name, {}).values():
                    self.ledger.set_flow(self.ledger.flow(s.name, flow.id), flow, now)
        await asyncio.gather(*(self._poll_sandbox(s.name, tuple(self.flows_of(s))) for s in self.config.sandboxes))
        self.cycles += 1

    async def discover(self, sandbox: SandboxConfig) -> None:
        """List the sandbox's flows with the server-side filters the API has, then apply ours
        (the API has no 'like' operator, so name matching is client-side). On error the previous
        list stays."""
        d = sandbox.discover
        assert d is not None
        properties = [f"state=={','.join(d.states)}"]
        if d.flow_spec_ids:
            properties.append(f"flowSpec.id=={','.join(d.flow_spec_ids)}")
        try:
            flows = await self.client.list_flows(sandbox.name, properties)
        except (ApiError, TokenError) as e:
            log.warning(
                "sandbox %s: discovery failed, keeping the previous %d flow(s): %s",
                sandbox.name,
                len(self.discovered.get(sandbox.name, {})),
                e,
            )
            return
        states = {s.lower() for s in d.states}
        specs = set(d.flow_spec_ids)
        excluded = {f.lower() for f in d.exclude}
        found = {
            f.id: f
            for f in flows
            if (f.state or "").lower() in states  # the filters again, should the API ignore one
            and (not specs or f.flow_spec_id in specs)
            and (sandbox.include_destination_flows or not f.is_destination)
            and f.id.lower() not in excluded
            and d.matches_name(f.name)
        }
        before = set(self.discovered.get(sandbox.name, {}))
        added, removed = set(found) - before, before - set(found)
        if added or removed:
            log.info(
                "sandbox %s: discovery found %d flow(s) (+%d, -%d)", sandbox.name, len(found), len(added), len(removed)
            )
        self.discovered[sandbox.name] = found
        self._discovered_at[sandbox.name] = self.clock()
        self.ledger.sandboxes[sandbox.name].discovery_success = self.clock()

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
            remaining = self.config.poll_interval - (time.monotonic() - started)
            if remaining > 0 and not stop.is_set():
                waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
                try:
                    await asyncio.wait(waiters, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for w in waiters:
                        w.cancel()

    def strategy_of(self, sandbox: str) -> str:
        if self.config.fetch_strategy == "per_flow" or self.ledger.sandboxes[sandbox].batch_fallbacks:
            return "per_flow"
        return "batched"

    async def _poll_sandbox(self, sandbox: str, flow_ids: tuple[str, ...]) -> None:
        started = time.monotonic()
        state = self.ledger.sandboxes[sandbox]
        results: list[bool] | None = None
        if self.strategy_of(sandbox) == "batched":
            try:
                results = await self._poll_batched(sandbox, list(flow_ids))
            except _BatchRefused as e:
                state.batch_fallbacks += 1
                log.warning(
                    "sandbox %s: Adobe refused a batched query (%s); polling its flows one by one from now on",
                    sandbox,
                    e,
                )
        if results is None:
            results = list(await asyncio.gather(*(self._poll_flow(self.ledger.flow(sandbox, f)) for f in flow_ids)))
        state.strategy = self.strategy_of(sandbox)
        state.poll_duration = time.monotonic() - started
        if all(results):
            state.last_success = self.clock()

    async def _poll_batched(self, sandbox: str, flow_ids: list[str]) -> list[bool]:
        """The batched strategy: metadata, new runs and runs in flight for many flows per request.

        1. `GET /flows?property=id==a,b,…` for flows whose metadata is due; a flow not listed is gone.
        2. `GET /runs?property=flowId==a,b,…&property=createdAt>T`: runs created since each flow's
           last listing, less `batch_overlap` (the whole lookback for a flow not yet listed).
        3. `GET /runs?property=id==x,y,…`: the runs still in flight that step 2 did not return.
        A flow whose requests fail is down for this cycle and applies nothing; the next cycle asks
        again from its last good listing, so nothing is missed. Returns per flow: polled without error."""
        now = self.clock()
        window_start = now - self.config.lookback
        states = [self.ledger.flow(sandbox, f) for f in flow_ids]
        failed: set[str] = set()

        async def batch(call, chunk: list[FlowState], what: str):
            try:
                return await call
            except ApiError as e:
                if e.status == 400:
                    raise _BatchRefused(str(e)) from None
                log.warning("sandbox %s: %s for %d flow(s) failed: %s", sandbox, what, len(chunk), e)
            except TokenError as e:
                log.warning("sandbox %s: %s failed: %s", sandbox, what, e)
            failed.update(s.flow_id for s in chunk)
            return None

        # 1. Metadata, for the flows that are due.
        due = [
            s
            for s in states
            if s.gone or s.meta_fetched_at is None or now - s.meta_fetched_at >= self.config.metadata_refresh
        ]
        chunks = _chunks(due)
        answers = await asyncio.gather(
            *(
                batch(self.client.list_flows(sandbox, [f"id=={','.join(s.flow_id for s in c)}"]), c, "flow metadata")
                for c in chunks
            )
        )
        for chunk, flows in zip(chunks, answers):
            if flows is None:
                continue
            found = {f.id.lower(): f for f in flows}
            for s in chunk:
                flow = found.get(s.flow_id.lower())
                if flow is None:
                    if not s.gone:
                        log.warning(
                            "sandbox %s flow %s: not listed: deleted, or hidden from this credential by "
                            "access labels; its series leave /metrics until it is found again",
                            sandbox,
                            s.flow_id,
                        )
                    self.ledger.mark_gone(s)
                else:
                    if s.gone:
                        log.info("sandbox %s flow %s: found again", sandbox, s.flow_id)
                    self.ledger.set_flow(s, flow, now)

        # 2. New runs: flows grouped by how far back they need to look.
        active = [s for s in states if not s.gone and s.flow_id not in failed]

        def since(s: FlowState) -> float:
            if not s.baselined or s.listed_until is None:
                return window_start
            return max(window_start, s.listed_until - self.config.batch_overlap)

        active.sort(key=since)
        chunks = _chunks(active)
        answers = await asyncio.gather(
            *(
                batch(
                    self.client.find_runs(
                        sandbox,
                        [
                            f"flowId=={','.join(s.flow_id for s in c)}",
                            f"createdAt>{int(min(since(s) for s in c) * 1000)}",
                        ],
                    ),
                    c,
                    "listing runs",
                )
                for c in chunks
            )
        )
        by_flow: dict[str, dict[str, Run]] = {s.flow_id.lower(): {} for s in active}
        for runs in answers:
            for r in runs or ():
                if r.flow_id is not None and r.flow_id.lower() in by_flow:
                    by_flow[r.flow_id.lower()][r.id] = r

        # 3. Runs still in flight that the listing did not bring back.
        listed = [s for s in active if s.flow_id not in failed]
        owner: dict[str, FlowState] = {}
        for s in listed:
            got = by_flow[s.flow_id.lower()]
            for run_id, seen in s.seen.items():
                if not seen.completed and run_id not in got and (seen.created or 0) > window_start:
                    owner[run_id] = s
        chunks = _chunks(list(owner))
        answers = await asyncio.gather(
            *(
                batch(
                    self.client.find_runs(sandbox, [f"id=={','.join(c)}"]),
                    list({id(owner[i]): owner[i] for i in c}.values()),
                    "runs in flight",
                )
                for c in chunks
            )
        )
        for runs in answers:
            for r in runs or ():
                s = owner.get(r.id)
                if s is not None:
                    by_flow[s.flow_id.lower()][r.id] = r

        # 4. Apply, flow by flow, what arrived whole. Thousands of flows take a while: let the event
        # loop breathe every hundred (scrapes serve the last rendering, so this is safe).
        results = []
        for i, s in enumerate(states):
            if i and i % 100 == 0:
                await asyncio.sleep(0)
            if s.gone:
                results.append(True)
                continue
            if s.flow_id in failed:
                self.ledger.mark_down(s)
                results.append(False)
                continue
            facts = [
                run_facts(r)
                for r in by_flow[s.flow_id.lower()].values()
                if r.created is not None and r.created > window_start
            ]
            self.ledger.apply_runs(s, facts, window_start, complete=not s.baselined)
            s.listed_until = now
            results.append(True)
        return results

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
            if r.created is not None
            and r.created > window_start
            and (r.flow_id is None or r.flow_id.lower() == state.flow_id.lower())
        ]
        counted = self.ledger.apply_runs(state, facts, window_start, complete=True)
        if counted:
            log.debug("%s: %d newly completed run(s) counted", where, counted)
        return True

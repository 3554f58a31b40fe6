"""The batched strategy: metadata, new runs and runs in flight for many flows a request.

1. `GET /flows?property=id==a,b,…` for flows whose metadata is due; a flow not listed is gone.
   A failed metadata listing costs the flows their `up`, not their runs.
2. At the same time, `GET /runs?property=flowId==a,b,…&property=createdAt>T`: runs created since
   each flow's newest run Adobe returned, less `batch_overlap`. T is Adobe's own clock, never ours.
   Every `reconcile_interval` the whole lookback window is listed instead, and what the regular
   listings missed (late listings, a clock step) is counted, once.
3. `GET /runs?property=id==x,y,…`: the runs still in flight that step 2 did not return; one that
   the answer lacks was deleted and leaves in-flight.
4. Apply, flow by flow, what arrived whole.

The canary: each cycle one flow of the sandbox (in turn) is also listed on its own, before the
batched listing; a run it shows that the batched listing lacks means Adobe does not honour the
list, and the sandbox goes per-flow, loudly. Request lines are sized to `max_url_length`
(listings.py). A flow whose requests fail is down for this cycle and applies nothing.
"""

from __future__ import annotations

import asyncio
import logging

from exporter.adobe.models import Run
from exporter.adobe.question import incomplete, order_of
from exporter.adobe.runfacts import run_facts
from exporter.fetch.listings import Lister, flow_id
from exporter.fetch.strategy import BatchRefused, FetchContext
from exporter.ledger.records import FlowState
from exporter.support.logs import fields

log = logging.getLogger(__name__)

APPLY_SLICE = 100  # flows applied between two yields to the event loop


class Batched:
    name = "batched"

    async def poll(self, ctx: FetchContext, sandbox: str, flow_ids: list[str]) -> list[bool]:
        cycle = _Cycle(ctx, sandbox, [ctx.ledger.flow(sandbox, f) for f in flow_ids])
        canary = await cycle.canary()
        # Metadata and new runs at once: a flow the metadata finds gone has its runs dropped at
        # apply; one found again is listed from the next cycle on.
        _, by_flow = await asyncio.gather(cycle.metadata(), cycle.new_runs())
        cycle.check_canary(canary, by_flow)
        await cycle.runs_in_flight(by_flow)
        results = await cycle.apply(by_flow)
        cycle.caps.regrow_limits(cycle.lister.shrunk)
        return results


class _Cycle:
    """One batched poll of one sandbox: the flows, and those whose requests failed."""

    def __init__(self, ctx: FetchContext, sandbox: str, states: list[FlowState]) -> None:
        self.ctx = ctx
        self.sandbox = sandbox
        self.states = states
        self.lister = Lister(ctx, sandbox)
        self.caps = self.lister.caps
        self.now = ctx.clock()
        self.window_start = ctx.window_start(self.now)
        self.reconcile = self.caps.reconcile_due(ctx.config.reconcile_interval)
        self.failed: set[str] = set()  # flows whose runs could not be listed: down, nothing applied
        self.no_metadata: set[str] = set()  # flows whose metadata could not be refreshed: runs still count
        self.active = [s for s in states if not s.gone]
        self.cut: set[str] = set()  # flows whose runs listing a next link cut short: nothing concluded
        self.newest_returned: float | None = None  # the newest createdAt of this cycle's listings
        self.unordered: set[str] = set()  # flows whose cut listing's runs were not newest first
        self.listed_to: dict[str, float] = {}  # by flow: the newest createdAt its chunk's listing returned

    def regular_since(self, s: FlowState) -> float:
        """Where the flow's regular listing starts: the newest createdAt Adobe returned for it
        (Adobe's clock), less the overlap runs have been seen to need; the whole window for a flow
        not yet listed."""
        if not s.baselined or s.listed_until is None:
            return self.window_start
        return max(self.window_start, s.listed_until - self.caps.overlap(self.ctx.config.batch_overlap))

    def since(self, s: FlowState) -> float:
        return self.window_start if self.reconcile else self.regular_since(s)

    async def metadata(self) -> None:
        refresh = self.ctx.config.metadata_refresh
        due = [s for s in self.states if s.gone or s.meta_fetched_at is None or self.now - s.meta_fetched_at >= refresh]
        chunks = self.lister.chunks(due, flow_id, lambda ids: [f"id=={','.join(ids)}"], "/flows", "flows")
        answers = await self.lister.each(
            chunks,
            flow_id,
            lambda c: self.lister.flows([s.flow_id for s in c]),
            "flow metadata",
            self.no_metadata,
            "flows",
        )
        for chunk, flows in answers:
            found = {f.id.lower(): f for f in flows}
            for s in chunk:
                if s.flow_id.lower() in found or not incomplete(flows):  # not listed in a cut answer: not gone
                    self._take_metadata(s, found.get(s.flow_id.lower()))

    def _take_metadata(self, s: FlowState, flow) -> None:
        where = fields(sandbox=self.sandbox, flow_id=s.flow_id)
        if flow is None:
            if not s.gone:
                log.warning(
                    "not listed: deleted, or hidden from this credential by access labels; its series "
                    "leave /metrics until it is found again",
                    extra=where,
                )
            self.ctx.ledger.mark_gone(s)
        else:
            if s.gone:
                log.info("flow found again", extra=where)
            self.ctx.ledger.set_flow(s, flow, self.now)

    async def new_runs(self) -> dict[str, dict[str, Run]]:
        """Runs created since each flow's bound, by flow (lower-case id) and run id. Flows are
        sorted by bound, so a chunk's shared bound (its smallest) costs little."""
        active = sorted(self.active, key=self.since)
        chunks = self.lister.chunks(
            active, flow_id, lambda ids: [f"flowId=={','.join(ids)}", f"createdAt>{2**41}"], "/runs", "runs"
        )
        answers = await self.lister.each(
            chunks,
            flow_id,
            lambda c: self.lister.runs_of([s.flow_id for s in c], round(min(map(self.since, c)) * 1000)),
            "listing runs",
            self.failed,
            "runs",
        )
        await self.probe_empty(answers)
        by_flow: dict[str, dict[str, Run]] = {}
        for chunk, runs in answers:
            mine = {s.flow_id.lower(): s for s in chunk}
            # Every flow of the chunk was listed up to the newest run the listing returned: the
            # chunk's next listing resumes from there (each flow's own newest would re-list the
            # newest run of every other flow of the chunk, cycle after cycle).
            newest = max((r.created for r in runs if r.created is not None), default=None)
            if newest is not None:
                self.newest_returned = newest if self.newest_returned is None else max(newest, self.newest_returned)
            for s in chunk:
                by_flow[s.flow_id.lower()] = {}
                if incomplete(runs):  # cut short: what it lacks may be older, so no bound moves
                    self.cut.add(s.flow_id)
                    if order_of(r.created for r in runs) != "ok":  # unknown too: what it lacks may be newer
                        self.unordered.add(s.flow_id)
                elif newest is not None:
                    self.listed_to[s.flow_id] = newest
            for r in runs:
                if r.flow_id is not None and r.flow_id.lower() in mine:
                    by_flow[r.flow_id.lower()][r.id] = r
        return by_flow

    async def canary(self) -> tuple[FlowState, set[str]] | None:
        """One flow (in turn) listed on its own, with the bound the batched listing will use."""
        listed = self.active
        if len(listed) < 2:
            return None
        s = listed[self.caps.canary_turn % len(listed)]
        self.caps.canary_turn += 1
        try:
            runs = await self.lister.runs_of([s.flow_id], round(self.since(s) * 1000))
        except Exception as e:  # a failed canary says nothing about lists
            log.debug("canary listing failed: %s", e, extra=fields(sandbox=self.sandbox, flow_id=s.flow_id))
            return None
        return s, {r.id for r in runs}

    def check_canary(self, canary: tuple[FlowState, set[str]] | None, by_flow: dict[str, dict[str, Run]]) -> None:
        """The batched listing came after the canary's: every run the canary saw must be in it.
        If not, nothing of this cycle's listings is applied (BatchRefused)."""
        if canary is None or canary[0].flow_id in self.failed or canary[0].flow_id in self.cut:
            return
        s, seen_alone = canary
        missing = seen_alone - set(by_flow.get(s.flow_id.lower(), {}))
        if missing:
            self.caps.canary_disagreements += 1
            self.misread(f"flow {s.flow_id} listed alone shows {len(missing)} run(s) the batched listing lacks")

    def misread(self, what: str) -> None:
        self.caps.lists = "literal"
        raise BatchRefused(f"{what}: Adobe does not read flowId==a,b as a list", "lists_misread")

    async def probe_empty(self, answers: list[tuple[list[FlowState], list[Run]]]) -> None:
        """While lists are unproven, an empty answer to a list of flows is checked flow by flow
        until one shows runs (then the list was misread) or none does (then it was right). A
        non-empty answer proves them."""
        if self.caps.lists == "ok":
            return
        if any(runs and len(chunk) > 1 for chunk, runs in answers):
            self.caps.lists = "ok"
            return
        for chunk, runs in answers:
            if runs or len(chunk) < 2:
                continue
            for s in chunk:
                if await self.lister.runs_of([s.flow_id], round(self.since(s) * 1000)):
                    self.misread(f"flow {s.flow_id} has runs a listing of {len(chunk)} flows did not show")

    async def runs_in_flight(self, by_flow: dict[str, dict[str, Run]]) -> None:
        """Look up the runs the ledger has in flight that the listing did not bring back; those
        the answer lacks are gone (deleted) and leave in-flight."""
        owner: dict[str, FlowState] = {}
        for s in self.active:
            got = by_flow.get(s.flow_id.lower())
            if got is None:
                continue
            for run_id, seen in s.seen.items():
                if not seen.completed and run_id not in got and (seen.created or 0) > self.window_start:
                    owner[run_id] = s
        failed: set[str] = set()
        chunks = self.lister.chunks(list(owner), str, lambda ids: [f"id=={','.join(ids)}"], "/runs", "ids")
        answers = await self.lister.each(chunks, str, self.lister.runs_by_id, "runs in flight", failed, "ids")
        self.failed.update(owner[r].flow_id for r in failed)
        for asked, runs in answers:
            found = {r.id: r for r in runs}
            for run_id in asked:
                s = owner[run_id]
                if run_id in found:
                    by_flow[s.flow_id.lower()][run_id] = found[run_id]
                elif self.caps.fallback is None and not incomplete(runs):  # else nothing is concluded
                    self.ctx.ledger.forget_in_flight(s, [run_id])

    async def apply(self, by_flow: dict[str, dict[str, Run]]) -> list[bool]:
        """Apply each flow's runs; thousands of flows take a while, so let the event loop breathe
        every APPLY_SLICE flows (scrapes serve the last rendering, so this is safe)."""
        results = []
        for i, s in enumerate(self.states):
            if i and i % APPLY_SLICE == 0:
                await asyncio.sleep(0)
            if s.gone or (s.flow_id not in self.failed and s.flow_id.lower() not in by_flow):
                results.append(True)  # gone, or found again this cycle
            elif s.flow_id in self.failed:
                self.ctx.ledger.mark_down(s)
                results.append(False)
            else:
                self._apply_flow(s, by_flow[s.flow_id.lower()].values())
                results.append(s.flow_id not in self.no_metadata)
        return results

    def _note_late(self, s: FlowState, facts: list) -> None:
        """Runs Adobe listed only after a newer run of the same flow: how late listings come is
        undocumented, so it is measured, and the overlap follows it. On a reconciliation, the
        completed ones the regular listings had missed are counted now, once, and reported."""
        assert s.listed_until is not None
        bound = self.regular_since(s)
        for f in facts:
            if f.created is None or f.created >= s.listed_until or f.run_id in s.seen:
                continue
            self.caps.saw_late(s.listed_until - f.created)
            if self.reconcile and f.completed and f.created <= bound:
                self.caps.reconciled_runs += 1

    def _apply_flow(self, s: FlowState, runs) -> None:
        facts = [run_facts(r) for r in runs if r.order_time is not None and r.order_time > self.window_start]
        newest = self.listed_to.get(s.flow_id)
        if s.listed_until is not None and newest is not None:
            newest = max(newest, s.listed_until)  # only forward
        if s.baselined and s.listed_until is not None:
            self._note_late(s, facts)
        cut = s.flow_id in self.cut
        complete = self.reconcile or not s.baselined or (s.cut_horizon is not None and s.listed_until is None)
        self.ctx.ledger.apply_runs(
            s,
            facts,
            self.window_start,
            complete=complete and not cut,
            listed_until=newest,
            cut=cut,
            newest_returned=self.newest_returned if s.flow_id in self.unordered else None,
        )
        if s.flow_id in self.no_metadata:  # counted, but the poll was not whole
            self.ctx.ledger.mark_down(s)

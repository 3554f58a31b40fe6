"""The batched strategy: metadata, new runs and runs in flight for up to 100 flows a request.

1. `GET /flows?property=id==a,b,…` for flows whose metadata is due; a flow not listed is gone.
   A failed metadata listing costs the flows their `up`, not their runs.
2. (at the same time as 1) `GET /runs?property=flowId==a,b,…&property=createdAt>T`: runs created since each flow's last
   listing, less `batch_overlap` (the whole lookback for a flow not yet listed).
3. `GET /runs?property=id==x,y,…`: the runs still in flight that step 2 did not return.
4. Apply, flow by flow, what arrived whole.

A flow whose requests fail is down for this cycle and applies nothing; the next cycle asks again
from its last good listing, so nothing is missed. Adobe answering 400 to a list query raises
BatchRefused: the poller then polls the sandbox flow by flow.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterable
from typing import TypeVar

from exporter.auth import TokenError
from exporter.client import ApiError
from exporter.fetch import BatchRefused, FetchContext
from exporter.flowstate import FlowState
from exporter.logs import fields
from exporter.models import Flow, Run
from exporter.translate import run_facts

log = logging.getLogger(__name__)

BATCH_IDS = 100  # IDs per filter: 100 UUIDs make a ~3.7 KB query string, well under URL limits
APPLY_SLICE = 100  # flows applied between two yields to the event loop

T = TypeVar("T")


def chunks(items: list[T], n: int = BATCH_IDS) -> list[list[T]]:
    return [items[i : i + n] for i in range(0, len(items), n)]


class Batched:
    name = "batched"

    async def poll(self, ctx: FetchContext, sandbox: str, flow_ids: list[str]) -> list[bool]:
        cycle = _Cycle(ctx, sandbox, [ctx.ledger.flow(sandbox, f) for f in flow_ids])
        # Metadata and new runs at once: a flow the metadata finds gone has its runs dropped at
        # apply; one found again is listed from the next cycle on.
        _, by_flow = await asyncio.gather(cycle.metadata(), cycle.new_runs())
        await cycle.runs_in_flight(by_flow)
        return await cycle.apply(by_flow)


class _Cycle:
    """One batched poll of one sandbox: the flows, and those whose requests failed."""

    def __init__(self, ctx: FetchContext, sandbox: str, states: list[FlowState]) -> None:
        self.ctx = ctx
        self.sandbox = sandbox
        self.states = states
        self.now = ctx.clock()
        self.window_start = ctx.window_start(self.now)
        self.failed: set[str] = set()  # flows whose runs could not be listed: down, nothing applied
        self.no_metadata: set[str] = set()  # flows whose metadata could not be refreshed: runs still count

    async def ask(
        self, call: Awaitable[T], chunk: Iterable[FlowState], what: str, failed: set[str] | None = None
    ) -> T | None:
        """One listing for a chunk of flows; on failure the chunk's flows go into `failed`
        (by default self.failed: down this cycle, nothing applied)."""
        chunk = list(chunk)
        try:
            return await call
        except ApiError as e:
            if e.status == 400:
                raise BatchRefused(str(e)) from None
            log.warning("%s for %d flow(s) failed: %s", what, len(chunk), e, extra=fields(sandbox=self.sandbox))
        except TokenError as e:
            log.warning("%s failed: %s", what, e, extra=fields(sandbox=self.sandbox))
        (self.failed if failed is None else failed).update(s.flow_id for s in chunk)
        return None

    async def metadata(self) -> None:
        refresh = self.ctx.config.metadata_refresh
        due = [s for s in self.states if s.gone or s.meta_fetched_at is None or self.now - s.meta_fetched_at >= refresh]
        parts = chunks(due)
        answers = await asyncio.gather(
            *(
                self.ask(
                    self.ctx.client.list_flows(self.sandbox, [f"id=={','.join(s.flow_id for s in c)}"]),
                    c,
                    "flow metadata",
                    self.no_metadata,
                )
                for c in parts
            )
        )
        for chunk, flows in zip(parts, answers):
            if flows is not None:
                self._take_metadata(chunk, flows)

    def _take_metadata(self, chunk: list[FlowState], flows: list[Flow]) -> None:
        found = {f.id.lower(): f for f in flows}
        for s in chunk:
            flow = found.get(s.flow_id.lower())
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

    def since(self, s: FlowState) -> float:
        """Where the flow's next listing starts: its last listing less the overlap."""
        if not s.baselined or s.listed_until is None:
            return self.window_start
        return max(self.window_start, s.listed_until - self.ctx.config.batch_overlap)

    async def new_runs(self) -> dict[str, dict[str, Run]]:
        """Runs created since each flow's last listing, by flow (lower-case id) and run id."""
        active = sorted((s for s in self.states if not s.gone and s.flow_id not in self.failed), key=self.since)
        parts = chunks(active)
        answers = await asyncio.gather(
            *(
                self.ask(
                    self.ctx.client.find_runs(
                        self.sandbox,
                        [
                            f"flowId=={','.join(s.flow_id for s in c)}",
                            f"createdAt>{int(min(map(self.since, c)) * 1000)}",
                        ],
                    ),
                    c,
                    "listing runs",
                )
                for c in parts
            )
        )
        by_flow: dict[str, dict[str, Run]] = {s.flow_id.lower(): {} for s in active}
        for runs in answers:
            for r in runs or ():
                if r.flow_id is not None and r.flow_id.lower() in by_flow:
                    by_flow[r.flow_id.lower()][r.id] = r
        return by_flow

    async def runs_in_flight(self, by_flow: dict[str, dict[str, Run]]) -> None:
        """Look up the runs the ledger has in flight that the listing did not bring back."""
        owner: dict[str, FlowState] = {}
        for s in self.states:
            if s.gone or s.flow_id in self.failed:
                continue
            got = by_flow[s.flow_id.lower()]
            for run_id, seen in s.seen.items():
                if not seen.completed and run_id not in got and (seen.created or 0) > self.window_start:
                    owner[run_id] = s
        parts = chunks(list(owner))
        answers = await asyncio.gather(
            *(
                self.ask(
                    self.ctx.client.find_runs(self.sandbox, [f"id=={','.join(c)}"]),
                    {id(owner[i]): owner[i] for i in c}.values(),
                    "runs in flight",
                )
                for c in parts
            )
        )
        for runs in answers:
            for r in runs or ():
                flow = owner.get(r.id)
                if flow is not None:
                    by_flow[flow.flow_id.lower()][r.id] = r

    async def apply(self, by_flow: dict[str, dict[str, Run]]) -> list[bool]:
        """Apply each flow's runs; thousands of flows take a while, so let the event loop breathe
        every APPLY_SLICE flows (scrapes serve the last rendering, so this is safe)."""
        ledger = self.ctx.ledger
        results = []
        for i, s in enumerate(self.states):
            if i and i % APPLY_SLICE == 0:
                await asyncio.sleep(0)
            if s.gone or s.flow_id.lower() not in by_flow:  # gone, or found again this cycle
                results.append(True)
            elif s.flow_id in self.failed:
                ledger.mark_down(s)
                results.append(False)
            else:
                runs = by_flow[s.flow_id.lower()].values()
                facts = [run_facts(r) for r in runs if r.created is not None and r.created > self.window_start]
                ledger.apply_runs(s, facts, self.window_start, complete=not s.baselined, listed_until=self.now)
                if s.flow_id in self.no_metadata:  # counted, but the poll was not whole
                    ledger.mark_down(s)
                results.append(s.flow_id not in self.no_metadata)
        return results

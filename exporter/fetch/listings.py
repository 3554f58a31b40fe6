"""The batched strategy's listings, each checked against its question.

Every item must match what was asked: its flowId among the chunk's, its createdAt above the bound,
its id among those looked up. An answer cut short by a next link stays marked so (Partial). An item that breaks a filter shows Adobe ignored the filter: it is
recorded (log once, a self-metric) and filtered on our side.

A refused multi-ID request is learned from by trying, never by reading the refusal's words
(gateways word a long line in many ways, or not at all): any refusal that is not about auth,
existence or throttling is first taken to be about size, and the chunk is asked again as two
halves, down to single IDs. Only a two-ID list refused on its first page, as sent, while single
IDs of the same listing are answered shows that lists themselves are refused: BatchRefused.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from exporter.adobe.client import PAGE_LIMIT, ApiError
from exporter.adobe.errors import UrlTooLong, refuses_request
from exporter.adobe.ims import TokenError
from exporter.adobe.models import Flow, Run
from exporter.adobe.question import Partial, incomplete
from exporter.fetch.chunking import fit
from exporter.fetch.strategy import BatchRefused, FetchContext
from exporter.ledger.records import FlowState
from exporter.support.logs import fields

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


class Lister:
    """One sandbox's listings for one cycle. `failed` collects the IDs whose listing failed."""

    def __init__(self, ctx: FetchContext, sandbox: str) -> None:
        self.ctx = ctx
        self.sandbox = sandbox
        self.caps = ctx.caps(sandbox)
        self.shrunk: set[str] = set()  # listings whose request line was too long this cycle

    def chunks(
        self,
        items: Sequence[T],
        ident: Callable[[T], str],
        params: Callable[[list[str]], list[str]],
        path: str,
        kind: str,
    ) -> list[list[T]]:
        """Chunks for the `kind` of listing. Runs looked up by ID come one each: a chunk of them is
        never larger than the page Adobe serves, so each is one page and needs no token."""
        limit = self.caps.limit(kind)
        stats = self.ctx.client.listing_stats.get(self.sandbox)
        if kind == "ids" and stats is not None and stats.largest_full_page:
            limit = min(limit, stats.largest_full_page)
        url = f"{self.ctx.config.adobe.base_url}{path}"
        return fit(items, ident, lambda ids: _query(params(ids), path), url, self.ctx.client.max_url_length, limit)

    async def each(
        self,
        chunks: list[list[T]],
        ident: Callable[[T], str],
        call: Callable[[list[T]], Awaitable[R]],
        what: str,
        failed: set[str],
        kind: str,
    ) -> list[tuple[list[T], R]]:
        """`call` for every chunk at once (the client's semaphore bounds what is in flight); a
        refused chunk of several IDs is split in two and asked again (see the module's
        docstring); a chunk that fails otherwise adds its IDs to `failed`."""
        results: list[tuple[list[T], R]] = []
        queue = [c for c in chunks if c]
        pair_refused = single_answered = False
        limit_before = self.caps.limit(kind)
        while queue:
            answers = await asyncio.gather(*(self._one(c, call) for c in queue), return_exceptions=True)
            retry: list[list[T]] = []
            for chunk, answer in zip(queue, answers):
                if len(chunk) > 1 and refuses_request(answer):
                    pair_refused |= len(chunk) == 2 and _question_refused(answer)
                    self.caps.shrink(kind, len(chunk))
                    self.shrunk.add(kind)
                    retry += [chunk[: len(chunk) // 2], chunk[len(chunk) // 2 :]]
                elif isinstance(answer, (ApiError, TokenError)):
                    self._failed(what, chunk, ident, answer, failed)
                elif isinstance(answer, BaseException):
                    raise answer
                else:
                    single_answered |= len(chunk) == 1
                    results.append((chunk, answer))
            queue = retry
        if pair_refused and single_answered:  # the refusals were of lists, not of sizes
            self.caps.restore_limit(kind, limit_before)
            raise BatchRefused(f"{what}: a list of two flows was refused while single flows were answered")
        return results

    @staticmethod
    async def _one(chunk: list[T], call: Callable[[list[T]], Awaitable[R]]) -> R:
        return await call(chunk)

    def _failed(self, what: str, chunk: list, ident: Callable, e: Exception, failed: set[str]) -> None:
        log.warning("%s for %d flow(s) failed: %s", what, len(chunk), e, extra=fields(sandbox=self.sandbox))
        failed.update(ident(x) for x in chunk)

    # --- the three listings -------------------------------------------------------------------

    async def flows(self, ids: list[str]) -> list[Flow]:
        asked = {i.lower() for i in ids}
        flows = await self.ctx.client.list_flows(self.sandbox, [f"id=={','.join(ids)}"])
        kept = [f for f in flows if f.id.lower() in asked]
        if len(kept) < len(flows):
            self.caps.filter_ignored(self.sandbox, "flows", "id")
        return Partial(kept) if incomplete(flows) else kept

    async def runs_of(self, ids: list[str], after_ms: int) -> list[Run]:
        """Runs of these flows created after `after_ms` (Adobe's clock, from its own answers)."""
        asked = {i.lower() for i in ids}
        runs = await self.ctx.client.find_runs(self.sandbox, [f"flowId=={','.join(ids)}", f"createdAt>{after_ms}"])
        kept = []
        for r in runs:
            if r.flow_id is None:  # no run of a flow (another collection's item, or broken)
                continue
            if r.flow_id.lower() not in asked:
                self.caps.filter_ignored(self.sandbox, "runs", "flowId")
                continue
            if r.created is not None and r.created * 1000 <= after_ms:
                self.caps.filter_ignored(self.sandbox, "runs", "createdAt")  # kept: the ledger dedups
            elif self.caps.created_filter == "unknown" and r.created is not None:
                self.caps.created_filter = "ok"
            kept.append(r)
        return Partial(kept) if incomplete(runs) else kept

    async def runs_by_id(self, run_ids: list[str]) -> list[Run]:
        asked = set(run_ids)
        runs = await self.ctx.client.find_runs(self.sandbox, [f"id=={','.join(run_ids)}"])
        kept = [r for r in runs if r.id in asked]
        if len(kept) < len(runs):
            self.caps.filter_ignored(self.sandbox, "runs", "id")
        return Partial(kept) if incomplete(runs) else kept


def _question_refused(answer: object) -> bool:
    """Whether Adobe refused a listing's question itself: its first page, as sent. A page after
    it (whose line carries a token too) or our own budget's refusal before sending says nothing
    of whether lists are answered."""
    if isinstance(answer, UrlTooLong) and answer.status is None:
        return False
    return isinstance(answer, ApiError) and answer.first_page


def _query(properties: list[str], path: str) -> list[tuple[str, str]]:
    """The query a listing sends (as the client builds it), for sizing the request line."""
    extra = [("orderby", "-createdAt")] if path == "/runs" else []
    return [("property", p) for p in properties] + extra + [("limit", str(PAGE_LIMIT))]


def flow_id(s: FlowState) -> str:
    return s.flow_id

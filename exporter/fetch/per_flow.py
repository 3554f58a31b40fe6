"""The per-flow strategy: each flow's metadata (when due) and every run within lookback, one flow
at a time (all flows concurrently; the client's semaphore bounds requests in flight).

Each poll is a complete view of the flow's window, so the ledger can also drop runs in flight that
Adobe no longer lists."""

from __future__ import annotations

import asyncio
import logging

from exporter.adobe.client import ApiError, NotFound
from exporter.adobe.ims import TokenError
from exporter.adobe.question import incomplete
from exporter.adobe.runfacts import run_facts
from exporter.fetch.strategy import FetchContext
from exporter.ledger.records import FlowState
from exporter.support.logs import fields

log = logging.getLogger(__name__)

GONE = "not found: deleted, or hidden from this credential by access labels; its series leave /metrics until it is found again"


class PerFlow:
    name = "per_flow"

    async def poll(self, ctx: FetchContext, sandbox: str, flow_ids: list[str]) -> list[bool]:
        return list(await asyncio.gather(*(poll_flow(ctx, ctx.ledger.flow(sandbox, f)) for f in flow_ids)))


async def poll_flow(ctx: FetchContext, state: FlowState) -> bool:
    """Poll one flow; True if it was polled without error (a gone flow counts as polled)."""
    now = ctx.clock()
    window_start = ctx.window_start(now)
    where = fields(sandbox=state.sandbox, flow_id=state.flow_id)
    try:
        metadata_ok = await _refresh_metadata(ctx, state, now)
        runs = await ctx.client.list_runs(state.sandbox, state.flow_id, window_start)
    except NotFound as e:
        if not state.gone:
            log.warning("%s (%s)", GONE, e, extra=where)
        ctx.ledger.mark_gone(state)
        return True
    except (ApiError, TokenError) as e:
        log.warning("poll failed: %s", e, extra=where)
        ctx.ledger.mark_down(state)
        return False
    except Exception:  # a bug must cost one flow one cycle, not the process
        log.exception("poll failed unexpectedly", extra=where)
        ctx.ledger.mark_down(state)
        return False

    facts = [
        run_facts(r)
        for r in runs
        # The API filters on both, but our accounting must not depend on it: a run older than
        # the window would be forgotten and could then be counted a second time.
        if r.order_time is not None
        and r.order_time > window_start
        and (r.flow_id is None or r.flow_id.lower() == state.flow_id.lower())
    ]
    # An answer a next link cut short holds true runs, not all: none in flight is dropped for it.
    cut = incomplete(runs)
    counted = ctx.ledger.apply_runs(state, facts, window_start, complete=not cut, cut=cut)
    if counted:
        log.debug("%d newly completed run(s) counted", counted, extra=where)
    if not metadata_ok:  # counted, but the poll was not whole
        ctx.ledger.mark_down(state)
    return metadata_ok


async def _refresh_metadata(ctx: FetchContext, state: FlowState, now: float) -> bool:
    """GET /flows/{id} when due; False if that failed (other than 404, which means gone and is
    raised): the flow's runs are still listed and counted, with the metadata it had."""
    if state.meta_fetched_at is not None and now - state.meta_fetched_at < ctx.config.metadata_refresh:
        return True
    try:
        flow = await ctx.client.get_flow(state.sandbox, state.flow_id)
    except NotFound:
        raise
    except (ApiError, TokenError) as e:
        log.warning("flow metadata not refreshed: %s", e, extra=fields(sandbox=state.sandbox, flow_id=state.flow_id))
        return False
    if state.gone:
        log.info("flow found again", extra=fields(sandbox=state.sandbox, flow_id=state.flow_id))
    ctx.ledger.set_flow(state, flow, now)
    return True

"""`--check`'s report of how this organisation's Flow Service behaves where Adobe's docs are
silent, read from what the daemon's first cycle learned: `--check` runs that cycle (full-size
chunks of the configured and discovered flows, every page, each sandbox, with the real fetch
strategies, into a ledger of its own that no state file sees), so its verdict is the one the
daemon reaches, not the one a few small probes would suggest (probes of two flows never reach
a second page, where long tokens make request lines too long).

Reported per sandbox: the strategy the cycle polled with, whether `flowId==a,b` lists, whether
`createdAt>` and `orderby` are honoured, the IDs a request the cycle ended with, the largest page
served, and how continuation tokens behave (the longest, and its bytes per ID of the question it
continued).
"""

from __future__ import annotations

from dataclasses import dataclass

from exporter.adobe.client import FlowServiceClient
from exporter.adobe.continuation import ListingStats
from exporter.adobe.errors import ApiError
from exporter.adobe.ims import TokenError
from exporter.adobe.models import Run
from exporter.adobe.question import order_of
from exporter.fetch.capabilities import Capabilities


@dataclass(frozen=True)
class Verdict:
    """What one sandbox's first cycle found: the daemon starts from exactly this."""

    strategy: str  # batched | per_flow: what the cycle polled the sandbox with
    fallback: str | None  # why per_flow although batched is configured (lists_refused, lists_misread)
    lists: str  # ok | refused | literal | unknown
    created_filter: str  # ok | ignored | unknown
    orderby: str  # ok | ignored | unknown
    chunk: int  # IDs a batched request may carry after the cycle
    largest_page: int
    longest_token: int  # bytes
    token_ids: int  # IDs in the question whose listing brought the longest token (0: none known)
    # Whether tokens carry the question they continue (yes: a later page may follow the link as
    # given, the shorter line; no: our filters go with every token), as the cycle learned it by
    # asking one page both ways; unknown where no listing reached a second page.
    tokens_carry_query: str = "unknown"

    @property
    def token_bytes_per_id(self) -> float | None:
        """Bytes of the longest token per ID of its question: tokens that carry the query grow
        with the chunk (~50 bytes an ID), tokens that hold a position do not."""
        return self.longest_token / self.token_ids if self.longest_token and self.token_ids else None

    def describe(self, configured: str) -> str:
        if configured == "per_flow":
            strategy = "per_flow (configured)"
        elif self.fallback is not None:
            strategy = f"per_flow ({self.fallback}; batching retried every batch_retry_interval)"
        else:
            strategy = self.strategy
        per_id = self.token_bytes_per_id
        tokens = f"longest continuation token: {self.longest_token} bytes"
        if per_id is not None:
            tokens += f" ({per_id:.0f} bytes per ID of a question of {self.token_ids})"
        return (
            f"lists (flowId==a,b): {self.lists}; createdAt> filter: {self.created_filter}; orderby: {self.orderby}; "
            f"largest page: {self.largest_page} item(s); {tokens}; tokens carry the query: {self.tokens_carry_query}; "
            f"IDs a request: {self.chunk}; strategy: {strategy}"
        )


def verdict(
    caps: Capabilities, stats: ListingStats, token_ids: int, polled_with: str | None, alone: tuple[str, str]
) -> Verdict:
    """The sandbox's verdict from what its cycle recorded (`polled_with`: the ledger's strategy),
    and `alone`, what single flows' listings showed of orderby and createdAt> (one_flow): the
    cycle's finding of the filter wins where it has one."""
    return Verdict(
        strategy=polled_with or "unknown",
        fallback=caps.fallback,
        lists=caps.lists,
        created_filter=caps.created_filter if caps.created_filter != "unknown" else alone[1],
        orderby=alone[0],
        chunk=caps.chunk_limit,
        largest_page=stats.largest_page,
        longest_token=stats.longest_token,
        token_ids=token_ids,
        tokens_carry_query=stats.tokens_carry_query,
    )


async def one_flow(client: FlowServiceClient, sandbox: str, flow_ids: list[str], after_ms: int) -> tuple[str, str]:
    """Whether `orderby=-createdAt` and `createdAt>` are honoured, from single flows' listings:
    nothing the cycle does depends on the order, and a per-flow cycle never learns the filter."""
    for flow in flow_ids[:3]:
        try:
            runs = await client.find_runs(sandbox, [f"flowId=={flow}", f"createdAt>{after_ms}"])
        except (ApiError, TokenError):
            return "unknown", "unknown"
        order = order_of(r.created for r in runs)  # we ask for orderby=-createdAt
        if order != "unknown":
            return order, await _created(client, sandbox, runs)
    return "unknown", "unknown"


async def _created(client: FlowServiceClient, sandbox: str, runs: list[Run]) -> str:
    """Ask for runs after the median createdAt: an older one in the answer means it was ignored."""
    times = sorted(r.created for r in runs if r.created is not None)
    flow = next((r.flow_id for r in runs if r.flow_id), None)
    if len(times) < 2 or flow is None:
        return "unknown"
    bound = times[len(times) // 2]
    try:
        answer = await client.find_runs(sandbox, [f"flowId=={flow}", f"createdAt>{int(bound * 1000)}"])
    except (ApiError, TokenError):
        return "unknown"
    return "ignored" if any(r.created is not None and r.created <= bound for r in answer) else "ok"

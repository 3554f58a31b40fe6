"""`--check`'s report of how this organisation's Flow Service behaves where Adobe's docs are
silent: whether `flowId==a,b` lists, `createdAt>` and `orderby` are honoured, the page size it
serves, the longest continuation token, and so the strategy the daemon will use. Day one against
a real organisation then shows how its Adobe behaves.
"""

from __future__ import annotations

from dataclasses import dataclass

from exporter.adobe.client import FlowServiceClient
from exporter.adobe.errors import ApiError
from exporter.adobe.ims import TokenError
from exporter.adobe.models import Run


@dataclass
class Findings:
    lists: str = "unknown"  # ok | refused | literal | unknown (no runs to tell by)
    created_filter: str = "unknown"  # ok | ignored | unknown
    orderby: str = "unknown"  # ok | ignored | unknown

    def strategy(self, configured: str) -> str:
        if configured == "per_flow":
            return "per_flow (configured)"
        if self.lists in ("refused", "literal"):
            return f"per_flow (Adobe's ID lists: {self.lists}; batching retried every batch_retry_interval)"
        return "batched"


async def probe(client: FlowServiceClient, sandbox: str, flow_ids: list[str], after_ms: int) -> Findings:
    """A few listings of up to two of the sandbox's flows, compared with each other."""
    found = Findings()
    if not flow_ids:
        return found
    alone = {f: await client.find_runs(sandbox, [f"flowId=={f}", f"createdAt>{after_ms}"]) for f in flow_ids[:2]}
    runs = [r for rs in alone.values() for r in rs]
    found.orderby = _order(runs if len(alone) == 1 else next(iter(alone.values())))
    if len(alone) == 2:
        found.lists = await _lists(client, sandbox, alone, after_ms)
    found.created_filter = await _created(client, sandbox, runs)
    return found


async def _lists(client: FlowServiceClient, sandbox: str, alone: dict[str, list[Run]], after_ms: int) -> str:
    expected = {r.id for rs in alone.values() for r in rs}
    try:
        together = await client.find_runs(sandbox, [f"flowId=={','.join(alone)}", f"createdAt>{after_ms}"])
    except ApiError as e:
        return "refused" if e.status == 400 else "unknown"
    got = {r.id for r in together}
    if not expected:
        return "unknown"
    return "ok" if expected <= got else "literal"


async def _created(client: FlowServiceClient, sandbox: str, runs: list[Run]) -> str:
    """Ask for runs after the median createdAt: an older one in the answer means it was ignored."""
    times = sorted(r.created for r in runs if r.created is not None)
    if len(times) < 2:
        return "unknown"
    bound = times[len(times) // 2]
    flow = next(r.flow_id for r in runs if r.flow_id)
    try:
        answer = await client.find_runs(sandbox, [f"flowId=={flow}", f"createdAt>{int(bound * 1000)}"])
    except (ApiError, TokenError):
        return "unknown"
    return "ignored" if any(r.created is not None and r.created <= bound for r in answer) else "ok"


def _order(runs: list[Run]) -> str:
    """We ask for `orderby=-createdAt`: newest first, or it was ignored."""
    times = [r.created for r in runs if r.created is not None]
    if len(times) < 2:
        return "unknown"
    return "ok" if all(a >= b for a, b in zip(times, times[1:])) else "ignored"
